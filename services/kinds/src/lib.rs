//! Job kinds: the registry every role reads (`registry`), the extension point a kind implements
//! (`kind::HandlerType`), what a handler is given and answers (`handler`), one file per built-in
//! kind (`noop`, `webhook`, `email`, `image`, `hook`), the handler types of kinds users define (`http`,
//! and `custom` for typed Rust handlers in a worker binary of your own, `typed`), and JSON documents made into records (`prepare`).

pub mod custom;
pub mod email;
pub mod handler;
pub mod hook;
pub mod http;
pub mod image;
pub mod kind;
pub mod noop;
pub mod outgoing;
pub mod prepare;
pub mod registry;
pub mod typed;
pub mod webhook;

pub use handler::{follow_up_id, ErrorClass, FollowUp, Handler, Job, JobFailure, Outcome};
pub use kind::{HandlerType, KindError, Settings};
pub use prepare::{JobError, PreparedJob, Route};
pub use registry::{KindSpec, Registry, HANDLER_TYPES};
pub use typed::{typed, TypedJob};
