//! The `email` kind against real SMTP servers: the environment's Mailpit (a templated welcome
//! email arrives whole), a Mailpit of the test's own that is down and then comes up (the jobs
//! retry, then arrive), and a scripted SMTP listener that answers 550 (dead letter at once).

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::{json, Value};
use sluice_core::status::Status;
use sluice_tests::{eventually, free_port, post_json, TestEnv};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};

const MAILPIT_API: &str = "http://127.0.0.1:8025/api/v1";

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-{what}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The templates `make run` uses and the README shows: `welcome.{subject,txt,html}`.
fn welcome_templates() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/email-templates")
}

/// An environment whose `email` kind sends to `smtp_url`, retrying every second.
async fn email_env(smtp_url: String, templates: Option<PathBuf>) -> TestEnv {
    TestEnv::with_config(move |c| {
        let email = c.kinds.entry("email".into()).or_default();
        email.insert("smtp_url".into(), smtp_url.into());
        email.insert("from".into(), "Sluice Tests <tests@sluice.example>".into());
        email.insert("request_timeout".into(), "5s".into());
        if let Some(dir) = templates {
            email.insert("templates".into(), dir.display().to_string().into());
        }
        email.insert("tiers".into(), json!(["1s"]));
        email.insert("max_attempts".into(), 30.into());
        email.insert("jitter".into(), false.into());
    })
    .await
}

/// The message Mailpit (its API at `api`) holds with this `Message-ID` (without brackets).
async fn mailpit_message(http: &reqwest::Client, api: &str, message_id: &str) -> Value {
    let search = format!("{api}/search?query=message-id:{message_id}");
    let id = eventually(
        &format!("message {message_id} in Mailpit"),
        Duration::from_secs(30),
        || async {
            let found: Value = http.get(&search).send().await.ok()?.json().await.ok()?;
            found["messages"][0]["ID"].as_str().map(str::to_owned)
        },
    )
    .await;
    http.get(format!("{api}/message/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_templated_welcome_email_arrives_whole_with_a_message_id_from_the_job_id() {
    let env = email_env("smtp://127.0.0.1:1025".into(), Some(welcome_templates())).await;
    let api = env.start_api().await;
    let worker = env.start_worker(&["email"]).await;
    let http = sluice_tests::api_client();
    let accepted = post_json(
        &http,
        &format!("http://{}/v1/jobs/email", api.info),
        json!({
            "to": ["Ada Lovelace <ada@example.com>", "grace@example.org"],
            "reply_to": "support@sluice.example",
            "template": "welcome",
            "vars": {"name": "Ada & <Grace>", "team": "engines"},
        }),
    )
    .await;
    let job_id = accepted["job_id"].as_str().expect("202 with a job id");
    let store = env.status_store().await;
    let done = env
        .wait_for_status(&store, job_id, Status::Succeeded, Duration::from_secs(30))
        .await;
    let message_id = format!("{job_id}@sluice.example");
    assert_eq!(
        done.result.as_ref().unwrap()["message_id"],
        format!("<{message_id}>")
    );

    let message = mailpit_message(&http, MAILPIT_API, &message_id).await;
    assert_eq!(message["MessageID"], message_id);
    assert_eq!(message["Subject"], "Welcome, Ada & <Grace>!");
    let to: Vec<&str> = message["To"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["Address"].as_str().unwrap())
        .collect();
    assert_eq!(to, ["ada@example.com", "grace@example.org"]);
    assert_eq!(message["To"][0]["Name"], "Ada Lovelace");
    assert_eq!(message["ReplyTo"][0]["Address"], "support@sluice.example");
    assert_eq!(message["From"]["Address"], "tests@sluice.example");
    assert_eq!(
        message["Text"].as_str().unwrap().trim(),
        "Hello Ada & <Grace>, your team is engines."
    );
    // The HTML part escapes what it is given: a variable is text, never markup.
    assert_eq!(
        message["HTML"].as_str().unwrap().trim(),
        "<p>Hello <b>Ada &amp; &lt;Grace&gt;</b>, your team is engines.</p>"
    );

    // A bad address is a 400 naming the field, before anything is queued.
    let refused = http
        .post(format!("http://{}/v1/jobs/email", api.info))
        .json(&json!({"to": ["ada@example.com", "no at sign"], "subject": "x", "text": "y"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("to[1]"), "{body}");
    worker.stop().await;
    api.stop().await;
}

/// A Mailpit of this test's own, so that stopping it disturbs no other test.
struct OwnMailpit {
    child: Child,
    http: u16,
    data: PathBuf,
}

impl OwnMailpit {
    fn binary() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/bin/mailpit")
    }

    async fn start(smtp: u16, http: u16, data: PathBuf) -> Self {
        let child = Command::new(Self::binary())
            .arg("--database")
            .arg(data.join("mailpit.db"))
            .args(["--smtp", &format!("127.0.0.1:{smtp}")])
            .args(["--listen", &format!("127.0.0.1:{http}")])
            .args(["--smtp-auth-accept-any", "--smtp-auth-allow-insecure"])
            .args(["--disable-version-check", "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the environment built mailpit into .cache/bin (deploy/env.sh up)");
        let probe = reqwest::Client::new();
        eventually("our mailpit ready", Duration::from_secs(20), || async {
            let ready = probe
                .get(format!("http://127.0.0.1:{http}/readyz"))
                .send()
                .await
                .ok()?;
            ready.status().is_success().then_some(())
        })
        .await;
        Self { child, http, data }
    }

    fn api(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1", self.http)
    }
}

impl Drop for OwnMailpit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_sent_while_the_smtp_server_is_down_retry_and_arrive_once_it_is_back() {
    let (smtp, http_port) = (free_port(), free_port());
    let env = email_env(format!("smtp://127.0.0.1:{smtp}"), None).await;
    let worker = env.start_worker(&["email"]).await;
    let ids = env
        .publish_jobs(
            "email",
            (0..3).map(|i| {
                json!({"to": [format!("user{i}@example.com")], "subject": format!("outage {i}"), "text": "queued while down"})
                    .to_string()
            }),
        )
        .await;
    let store = env.status_store().await;
    for id in &ids {
        let retrying = env
            .wait_for_status(&store, id, Status::Retrying, Duration::from_secs(30))
            .await;
        let error = retrying.last_error.unwrap_or_default();
        assert!(error.contains("SMTP"), "{error}");
    }

    let mailpit = OwnMailpit::start(smtp, http_port, temp_dir("mailpit")).await;
    let http = sluice_tests::api_client();
    for id in &ids {
        let done = env
            .wait_for_status(&store, id, Status::Succeeded, Duration::from_secs(60))
            .await;
        assert!(done.attempts >= 2, "failed while down, then sent: {done:?}");
        let message = mailpit_message(&http, &mailpit.api(), &format!("{id}@sluice.example")).await;
        assert_eq!(
            message["Text"].as_str().unwrap().trim(),
            "queued while down"
        );
    }
    let all: Value = http
        .get(format!("{}/messages", mailpit.api()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["total"], 3, "each job sent once: {all}");
    worker.stop().await;
}

/// An SMTP server that accepts the session and refuses every recipient with `reply`.
async fn refusing_smtp_server(reply: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 refusing.test ESMTP\r\n").await?;
                while let Some(line) = lines.next_line().await? {
                    let verb = line.split_whitespace().next().unwrap_or("").to_uppercase();
                    let answer = match verb.as_str() {
                        "EHLO" | "HELO" => "250 refusing.test\r\n".to_owned(),
                        "RCPT" => format!("{reply}\r\n"),
                        "QUIT" => {
                            write.write_all(b"221 bye\r\n").await?;
                            break;
                        }
                        _ => "250 OK\r\n".to_owned(),
                    };
                    write.write_all(answer.as_bytes()).await?;
                }
                Ok::<_, std::io::Error>(())
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_550_reply_dead_letters_at_once_with_the_servers_reply_as_the_error() {
    let port = refusing_smtp_server("550 5.1.1 <nobody@example.com>: mailbox unavailable").await;
    let env = email_env(format!("smtp://127.0.0.1:{port}"), None).await;
    let worker = env.start_worker(&["email"]).await;
    let ids = env
        .publish_jobs(
            "email",
            [
                json!({"to": ["nobody@example.com"], "subject": "hi", "text": "bounce"})
                    .to_string(),
            ],
        )
        .await;
    let store = env.status_store().await;
    let dead = env
        .wait_for_status(
            &store,
            &ids[0],
            Status::DeadLettered,
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(dead.attempts, 1, "a 5xx is fatal: no retries");
    let error = dead.last_error.unwrap_or_default();
    assert!(
        error.contains("550") && error.contains("mailbox unavailable"),
        "{error}"
    );
    assert_eq!(env.record_count(&env.topics().dead_letters("email")), 1);
    worker.stop().await;
}
