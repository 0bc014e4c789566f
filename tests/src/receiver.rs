//! A local webhook receiver: records every request and answers with a scripted status.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Instant,
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Router,
};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

#[derive(Default)]
struct Inner {
    requests: Vec<ReceivedRequest>,
    /// Statuses to answer, in order; 200 once they run out.
    script: Vec<u16>,
    /// `Retry-After` seconds sent with 429 and 503 answers.
    retry_after: Option<u64>,
}

#[derive(Clone, Default)]
pub struct Receiver {
    inner: Arc<Mutex<Inner>>,
    pub addr: Option<SocketAddr>,
}

impl Receiver {
    /// Starts a receiver on a free port; `script` lists the statuses of the first answers.
    pub async fn start(script: Vec<u16>) -> Self {
        Self::start_with_retry_after(script, None).await
    }

    /// Like `start`, answering 429 and 503 with `Retry-After: <seconds>`.
    pub async fn start_with_retry_after(script: Vec<u16>, retry_after: Option<u64>) -> Self {
        let mut receiver = Receiver::default();
        {
            let mut inner = receiver.inner.lock().unwrap();
            inner.script = script.into_iter().rev().collect();
            inner.retry_after = retry_after;
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        receiver.addr = Some(listener.local_addr().unwrap());
        let app = Router::new()
            .route("/hook", post(record))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr.unwrap())
    }

    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.inner.lock().unwrap().requests.clone()
    }
}

async fn record(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    let mut inner = receiver.inner.lock().unwrap();
    inner.requests.push(ReceivedRequest {
        headers,
        body,
        at: Instant::now(),
    });
    let status = StatusCode::from_u16(inner.script.pop().unwrap_or(200)).unwrap();
    match inner.retry_after {
        Some(seconds) if matches!(status.as_u16(), 429 | 503) => {
            (status, [("retry-after", seconds.to_string())]).into_response()
        }
        _ => status.into_response(),
    }
}
