//! chromedriver as a child process, and the headless Chromium session it opens.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

/// How long chromedriver gets to answer after its start.
const DRIVER_START: Duration = Duration::from_secs(30);

/// Flags for Chromium in a test: no window; `--no-sandbox` because the tests run as root in a
/// container, where Chromium's sandbox cannot start; `/tmp` instead of a small `/dev/shm`; no
/// GPU; a fixed window so screenshots compare; and none of the first-run, sync, or background
/// network chatter (which only slows a start down on a machine without internet access).
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--window-size=1280,900",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-sync",
    "--disable-component-update",
    "--password-store=basic",
];

/// A running chromedriver with one open session; killed on drop, after the session is ended.
pub(super) struct Driver {
    child: Child,
    port: u16,
    /// Empty once the session was closed cleanly.
    session_id: String,
}

impl Driver {
    /// Starts chromedriver on a free loopback port and opens a headless Chromium session with
    /// the browser's console log enabled. Panics, naming `deploy/chromium.sh`, if either program
    /// is not installed: these tests never skip.
    pub(super) async fn start() -> (Self, Client) {
        let chromium = find_program("chromium");
        find_program("chromedriver");
        let mut last_error = String::new();
        // A free port can be taken between our check and chromedriver's bind: try another then.
        for _ in 0..3 {
            let port = crate::free_port();
            let mut child = Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver starts");
            match wait_until_ready(&mut child, port).await {
                Ok(()) => {
                    let mut driver = Self {
                        child,
                        port,
                        session_id: String::new(),
                    };
                    let client = driver.open_session(&chromium).await;
                    return (driver, client);
                }
                Err(error) => {
                    last_error = error;
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        panic!("chromedriver did not start: {last_error}");
    }

    async fn open_session(&mut self, chromium: &std::path::Path) -> Client {
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": CHROMIUM_ARGS },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "chromedriver could not start Chromium ({}): {error}",
                    chromium.display()
                )
            });
        self.session_id = client
            .session_id()
            .await
            .expect("the session answers")
            .expect("a new session has an id");
        client
    }

    /// The session was ended through the client: nothing left to do on drop but the kill.
    pub(super) fn session_closed(&mut self) {
        self.session_id.clear();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // A test that panicked never reached `Browser::close`: end the session here,
        // synchronously (the runtime may be gone), or Chromium outlives its killed chromedriver.
        if !self.session_id.is_empty() {
            delete_session(self.port, &self.session_id);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of `program` on PATH, or a panic that says how to install it.
fn find_program(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{program}` is not on PATH: the console tests need headless Chromium and \
                 chromedriver; run deploy/chromium.sh (make test runs it) to install them"
            )
        })
}

/// Polls chromedriver's `/status` until it says it is ready; an error if it exits or is slow.
async fn wait_until_ready(child: &mut Child, port: u16) -> Result<(), String> {
    let url = format!("http://127.0.0.1:{port}/status");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + DRIVER_START;
    loop {
        if let Some(status) = child.try_wait().map_err(|error| error.to_string())? {
            return Err(format!("chromedriver exited at start ({status})"));
        }
        if let Ok(response) = http.get(&url).send().await {
            if let Ok(body) = response.json::<Value>().await {
                if body["value"]["ready"] == true {
                    return Ok(());
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("not ready on port {port} after {DRIVER_START:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `DELETE /session/{id}` over a plain socket, blocking, for `Drop`; errors are ignored (the
/// driver is killed right after anyway).
fn delete_session(port: u16, session_id: &str) {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "DELETE /session/{session_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_ok() {
        // chromedriver answers once Chromium has quit; the start of its answer is enough (it
        // keeps the connection open regardless of `Connection: close`).
        let _ = stream.read(&mut [0; 512]);
    }
}
