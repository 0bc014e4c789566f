//! The feed model, shared by the api (which validates and produces social events and serves feed
//! reads) and the fanout role (which applies the events): users post, follow and unfollow; each
//! reads a home feed of the newest posts of everyone they follow. Posts of authors under the
//! celebrity threshold are pushed into every follower's feed on write; posts of authors at or
//! over it are kept only in the author's recent-posts list and merged in on read.
//! docs/architecture.md §8 has the whole model.

pub mod events;
pub mod follower_cache;
pub mod follows;
pub mod graph;
pub mod read;
mod read_single;
pub mod summary;
