//! `handler = "custom"`: a kind whose handler is Rust code in a worker binary of your own (see
//! `typed` and `examples/typed-worker`), registered with `sluice_worker::Worker::handler`. The
//! registry knows the kind (so the api accepts it, `topics ensure` creates its topics, stats
//! and the DLQ tools see it); the stock `sluice worker` leaves it to that binary.

use std::sync::Arc;

use crate::{
    handler::Handler,
    kind::{no_settings, HandlerType, KindError, Settings},
};

pub struct Custom;

impl HandlerType for Custom {
    fn name(&self) -> &'static str {
        "custom"
    }

    fn built_in(&self) -> bool {
        false
    }

    fn runs_in_stock_worker(&self) -> bool {
        false
    }

    fn check(&self, kind: &str, settings: &Settings) -> Result<(), KindError> {
        no_settings(kind, settings)
    }

    fn build(
        &self,
        kind: &str,
        _: &Settings,
        _: &sluice_core::Config,
    ) -> Result<Arc<dyn Handler>, KindError> {
        Err(KindError::key(
            kind,
            "handler",
            "is `custom`: run the worker binary that registers its handler \
             (`Worker::handler`), not the stock `sluice worker`",
        ))
    }
}
