//! A test that fails must not hang the whole run.
//!
//! When a test's body panics, its tokio runtime is dropped with the roles it started still
//! running, and dropping a Kafka group consumer waits until librdkafka says it has closed, with no
//! timeout (rust-rdkafka's `BaseConsumer::drop`). Once, after a broker restart, that close never
//! finished: the test binary hung for good and its captured panic message was never printed. This
//! hook prints a test-thread panic straight to stderr (past libtest's capture), and aborts the
//! process if that thread is still alive a minute later.

use std::{
    io::Write,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Once,
    },
    time::Duration,
};

/// How long a panicked test thread may take to unwind (drop its runtime) before the process is
/// aborted.
const UNWIND_LIMIT: Duration = Duration::from_secs(60);

/// Installs the hook once per process.
pub fn install() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default(info);
            let thread = std::thread::current();
            // Tokio's threads panic on purpose in some tests (a handler that panics is caught and
            // failed); only a test's own thread, named after the test, is watched.
            let name = thread.name().unwrap_or_default();
            if name.starts_with("tokio-") || name == "main" {
                return;
            }
            let _ = writeln!(std::io::stderr(), "test thread {name:?} panicked: {info}");
            let finished = EXIT_FLAG.with(|flag| flag.0.clone());
            let name = name.to_owned();
            std::thread::spawn(move || {
                std::thread::sleep(UNWIND_LIMIT);
                if !finished.load(Ordering::Acquire) {
                    let _ = writeln!(
                        std::io::stderr(),
                        "test thread {name:?} is still unwinding {UNWIND_LIMIT:?} after its panic \
                         (a role's Kafka consumer that never closes?): aborting"
                    );
                    std::process::abort();
                }
            });
        }));
    });
}

/// Set when the thread that owns it exits (its thread-locals are dropped).
struct ExitFlag(Arc<AtomicBool>);

impl Drop for ExitFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

thread_local! {
    static EXIT_FLAG: ExitFlag = ExitFlag(Arc::new(AtomicBool::new(false)));
}
