//! Prometheus plumbing shared by the roles: each role owns a `Registry` (so tests can run several
//! roles in one process), with process metrics and build info registered in it.

use prometheus::{Encoder, IntGaugeVec, Opts, Registry, TextEncoder};

/// A registry holding `sluice_build_info` and the process collector.
pub fn new_registry(role: &str) -> Registry {
    let registry = Registry::new();
    let build_info = IntGaugeVec::new(
        Opts::new(
            "sluice_build_info",
            "Always 1; labels name the build and the role.",
        ),
        &["version", "role"],
    )
    .expect("static metric definition");
    build_info
        .with_label_values(&[env!("CARGO_PKG_VERSION"), role])
        .set(1);
    registry
        .register(Box::new(build_info))
        .expect("fresh registry");
    #[cfg(target_os = "linux")]
    registry
        .register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("fresh registry");
    registry
}

/// The registry in Prometheus text exposition format.
pub fn render(registry: &Registry) -> String {
    let mut buffer = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buffer)
        .expect("text encoding of gathered metrics");
    String::from_utf8(buffer).expect("exposition text is UTF-8")
}

/// Registers a collector that was just built from a static definition.
pub fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    registry
        .register(Box::new(c.clone()))
        .expect("metric names are unique per registry");
    c
}
