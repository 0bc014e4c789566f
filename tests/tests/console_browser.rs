//! The web console in headless Chromium, against a real api, workers, Kafka and Redis: log in,
//! watch a kind's pending count change after publishing (htmx refreshes the overview in
//! place), find a dead letter, replay it after its dry run and see the job succeed; look at the
//! schedules, consumers and feeds pages; a hostile payload is shown as text and runs nothing.
//! Every page is screenshotted into target/console-screenshots/, and the browser's console
//! must stay free of errors (a CSP violation would be one).

use std::time::Duration;

use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::FutureRecord,
};
use serde_json::json;
use sluice_core::{headers, retry::Delay, schedules::ScheduleConfig, status::Status};
use sluice_tests::{
    api_client, browser::Browser, post_json, receiver::Receiver, TestEnv, TEST_TOKEN,
};

const SLOW: Duration = Duration::from_secs(30);

async fn log_in(browser: &Browser, base: &str) {
    browser.goto(&format!("{base}/console")).await;
    assert_eq!(browser.current_url().await, format!("{base}/console/login"));
    browser.screenshot("login").await;
    browser.fill("#token", TEST_TOKEN).await;
    browser.submit("form.login").await;
    browser
        .wait_for_text("h1", "Overview", Duration::from_secs(10))
        .await;
}

fn assert_no_console_errors(errors: Vec<sluice_tests::browser::LogEntry>) {
    assert!(errors.is_empty(), "browser console errors: {errors:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_engineer_logs_in_watches_the_queue_and_replays_a_dead_letter() {
    let env = TestEnv::with_config(|c| {
        c.retry.tiers = vec![Delay(Duration::from_secs(1))];
        c.retry.max_attempts = 3;
        c.retry.jitter = false;
        c.schedules.push(ScheduleConfig {
            name: "nightly-report".into(),
            cron: Some("0 2 * * *".into()),
            kind: "noop".into(),
            ..ScheduleConfig::default()
        });
    })
    .await;
    let api = env.start_api().await;
    let base = format!("http://{}", api.info);
    let http = api_client();
    // Three failures make a dead letter; the fourth call (the replay) succeeds.
    let receiver = Receiver::start(vec![500, 500, 500]).await;
    let worker = env.start_worker(&["webhook"]).await;
    let browser = Browser::start().await;

    log_in(&browser, &base).await;
    let session = browser
        .cookie("sluice_console")
        .await
        .expect("a session cookie");
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(session.secure(), Some(true));
    assert_eq!(
        session.same_site().map(|s| s.to_string()),
        Some("Strict".into())
    );
    assert!(!session.value().contains(TEST_TOKEN));
    assert_eq!(browser.execute("return document.cookie;", vec![]).await, "");

    // No noop worker runs, so published noop jobs stay pending; the overview refreshes itself.
    let pending = r#"tr[data-kind="noop"][data-lane="normal"] td.pending"#;
    assert_eq!(browser.text(pending).await, "0");
    for _ in 0..3 {
        let body = post_json(&http, &format!("{base}/v1/jobs/noop"), json!({})).await;
        assert!(body["job_id"].is_string(), "{body}");
    }
    browser.wait_for_text(pending, "3", SLOW).await;

    // A webhook job that fails every attempt.
    let job =
        json!({"url": receiver.url(), "event_type": "order.shipped", "payload": "{\"order\":9}"});
    let body = post_json(&http, &format!("{base}/v1/jobs/webhook"), job).await;
    let job_id = body["job_id"].as_str().unwrap().to_owned();
    let store = env.status_store().await;
    env.wait_for_status(&store, &job_id, Status::DeadLettered, SLOW)
        .await;

    // The overview counts the two retries and the dead letter, per minute over 5 minutes.
    browser.goto(&format!("{base}/console")).await;
    let webhook = r#"tr[data-kind="webhook"][data-lane="normal"]"#;
    browser
        .wait_for_text(&format!("{webhook} td.retried"), "0.40/min", SLOW)
        .await;
    browser
        .wait_for_text(&format!("{webhook} td.dead"), "0.20/min", SLOW)
        .await;
    assert!(
        browser
            .find_all(&format!("{webhook} svg.spark polyline"))
            .await
            .len()
            == 2
    );
    browser.screenshot("overview").await;

    browser.click(r#"a[href="/console/dead-letters"]"#).await;
    browser.wait_for_text("h1", "Dead letters", SLOW).await;
    browser
        .click(r#"a[href="/console/dead-letters/webhook"]"#)
        .await;
    browser.wait_for_text("#letters", &job_id, SLOW).await;
    assert!(browser
        .text("#letters")
        .await
        .contains("receiver answered 500"));
    browser.screenshot("dead-letters").await;
    browser.click("#letters tbody a").await;
    browser.wait_for_text("h1", "Dead letter 0", SLOW).await;
    assert!(browser.text("#payload").await.contains("order.shipped"));
    browser.screenshot("dead-letter").await;

    // The job's own page: each attempt's error, its lane and trace.
    browser.click("dl.facts a").await;
    browser
        .wait_for_text("#job-errors", "receiver answered 500", SLOW)
        .await;
    assert_eq!(browser.find_all("#job-errors tbody tr").await.len(), 3);
    assert_eq!(browser.text("#job-status").await, "dead_lettered");
    assert_eq!(browser.text("#job-trace").await.len(), 32);
    browser.client().back().await.unwrap();
    browser.wait_for_text("h1", "Dead letter 0", SLOW).await;

    // The dry run first: it says what would be sent, and sends nothing.
    browser.click(r#"a[href$="/replay?offset=0"]"#).await;
    browser.wait_for_text("#dry-run", "Dry run", SLOW).await;
    assert_eq!(browser.text("#replay-count").await, "1");
    assert!(browser.text("#preview").await.contains(&job_id));
    browser.screenshot("replay-preview").await;
    assert_eq!(
        env.job_status(&store, &job_id).await.unwrap().status,
        Status::DeadLettered,
        "a dry run sends nothing"
    );
    browser
        .click(r#"form[action$="/replay"] button[type="submit"]"#)
        .await;
    browser
        .wait_for_text("#replayed", "1 dead letter", SLOW)
        .await;

    // Follow the job: its page refreshes itself until the job is final.
    browser.click("#replayed-jobs a").await;
    browser
        .wait_for_text("#job-status", "succeeded", SLOW)
        .await;
    browser.screenshot("job").await;

    // The other pages.
    browser.goto(&format!("{base}/console/schedules")).await;
    browser.wait_for_text("main", "nightly-report", SLOW).await;
    browser.screenshot("schedules").await;
    browser.goto(&format!("{base}/console/consumers")).await;
    browser
        .wait_for_text("main", &env.topics().worker_group("webhook"), SLOW)
        .await;
    browser.screenshot("consumers").await;
    let fanout = env.start_fanout().await;
    for follower in ["ada", "grace"] {
        let body = post_json(
            &http,
            &format!("{base}/v1/follows"),
            json!({"follower_id": follower, "followee_id": "linus"}),
        )
        .await;
        assert!(body.get("error").is_none(), "{body}");
    }
    let graph = env.graph().await;
    sluice_tests::eventually("both follows applied", SLOW, || async {
        let summary = graph.user_summary("linus").await.ok()?;
        (summary.followers == 2).then_some(())
    })
    .await;
    browser.goto(&format!("{base}/console/feeds")).await;
    browser.fill(r#"input[name="user"]"#, "linus").await;
    browser.submit("form.filters").await;
    browser.wait_for_text("#followers", "2", SLOW).await;
    browser.screenshot("feeds").await;

    assert_no_console_errors(browser.console_errors().await);
    browser.close().await;
    fanout.stop().await;
    worker.stop().await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_dead_letter_is_text_in_the_browser_and_runs_nothing() {
    let env = TestEnv::new().await;
    let api = env.start_api().await;
    let base = format!("http://{}", api.info);
    let hostile = r#"<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">"#;
    let record_headers = OwnedHeaders::new()
        .insert(Header {
            key: headers::JOB_ID,
            value: Some("hostile-1"),
        })
        .insert(Header {
            key: headers::ERROR,
            value: Some(hostile),
        })
        .insert(Header {
            key: headers::ERROR_CLASS,
            value: Some("permanent"),
        })
        .insert(Header {
            key: headers::DEAD_AT,
            value: Some(&headers::now_millis().to_string()),
        });
    env.producer()
        .send(
            FutureRecord::to(&env.topics().dead_letters("noop"))
                .key("hostile-1")
                .payload(hostile)
                .headers(record_headers),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let browser = Browser::start().await;
    log_in(&browser, &base).await;

    browser
        .goto(&format!("{base}/console/dead-letters/noop/letters/0"))
        .await;
    browser.wait_for_text("#payload", "<script>", SLOW).await;
    browser.screenshot("dead-letter-hostile").await;
    assert_eq!(
        browser
            .execute("return window.pwned === undefined;", vec![])
            .await,
        true,
        "nothing of the payload ran"
    );
    assert_eq!(
        browser
            .execute(
                "return document.querySelectorAll('main script, main img').length;",
                vec![]
            )
            .await,
        0,
        "the payload made no elements"
    );
    // Escaped, it is text; were it markup, the CSP would have blocked it and said so here.
    assert_no_console_errors(browser.console_errors().await);
    browser.close().await;
    api.stop().await;
}
