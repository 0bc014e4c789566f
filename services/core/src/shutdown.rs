//! One cancellation token per process: SIGINT or SIGTERM starts a graceful drain; a second signal
//! exits at once with status 130.

use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first SIGINT/SIGTERM and exits the process on the second.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received; draining (send again to exit at once)");
        token.cancel();
        wait_for_signal().await;
        tracing::warn!("second shutdown signal; exiting without draining");
        std::process::exit(130);
    });
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
