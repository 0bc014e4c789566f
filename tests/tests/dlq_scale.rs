//! Dead letters at scale and under contention: two replays of a kind started together send each
//! dead letter once, and the pending count the queue-health exporter keeps costs what is new,
//! not the whole DLQ, while staying right through replays and purges.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use rdkafka::{
    message::{Message, OwnedHeaders},
    producer::FutureRecord,
};
use sluice_core::headers;
use sluice_dlq::{Dlq, DlqError, Filter, PendingCounter, Position, Selector};
use sluice_tests::TestEnv;

/// Writes `count` dead letters of `kind` straight to its DLQ topic, as a worker would; every
/// tenth one has error class `fatal`, the others `decode`.
async fn dead_letters(env: &TestEnv, kind: &str, first: usize, count: usize) {
    let producer = env.producer();
    let topic = env.topics().dead_letters(kind);
    let sends: Vec<_> = (first..first + count)
        .map(|i| {
            let class = if i % 10 == 0 { "fatal" } else { "decode" };
            let record_headers = OwnedHeaders::new()
                .insert(headers::str_header(headers::JOB_ID, &format!("job-{i}")))
                .insert(headers::str_header(headers::ERROR_CLASS, class))
                .insert(headers::str_header(headers::ERROR, "drill"))
                .insert(headers::str_header(headers::DEAD_AT, "1700000000000"));
            let payload = format!("payload {i}");
            let record = FutureRecord::to(&topic)
                .key("k")
                .payload(payload.as_bytes())
                .headers(record_headers);
            producer.send_result(record).expect("queued")
        })
        .collect();
    for delivery in sends {
        delivery.await.expect("delivered").expect("acknowledged");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replays_started_together_send_each_dead_letter_once() {
    let env = TestEnv::new().await;
    let total = 3000;
    dead_letters(&env, "noop", 0, total).await;
    let (first, second) = (
        Dlq::new(&env.config, env.registry()).unwrap(),
        Dlq::new(&env.config, env.registry()).unwrap(),
    );
    let (a, b) = tokio::join!(
        first.replay("noop", &Selector::All, false, |_, _| {}),
        second.replay("noop", &Selector::All, false, |_, _| {}),
    );
    let mut replayed = 0;
    let mut refused = Vec::new();
    for result in [a, b] {
        match result {
            Ok(report) => replayed += report.replayed.len(),
            Err(e @ DlqError::Busy { .. }) => refused.push(e.to_string()),
            Err(e) => panic!("replay failed: {e}"),
        }
    }
    assert_eq!(
        replayed, total,
        "together they replayed every dead letter once"
    );
    assert_eq!(
        refused.len(),
        1,
        "the second replay was refused while the first ran"
    );
    assert!(
        refused[0].contains("`noop` is already running"),
        "{}",
        refused[0]
    );

    let sent = env.read_all(&env.topics().jobs("noop"));
    assert_eq!(sent.len(), total, "each dead letter sent once");
    let origins: BTreeSet<String> = sent
        .iter()
        .map(|m| {
            let h = m.headers().unwrap();
            headers::get(h, headers::REPLAYED_FROM).unwrap().to_owned()
        })
        .collect();
    assert_eq!(origins.len(), total, "from {total} different dead letters");

    // The lease is given back: a later replay runs (and finds nothing left to send).
    let again = first
        .replay("noop", &Selector::All, false, |_, _| {})
        .await
        .unwrap();
    assert!(again.replayed.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pending_count_reads_only_what_is_new_and_stays_right() {
    let env = TestEnv::new().await;
    let base = 50_000;
    dead_letters(&env, "noop", 0, base).await;
    let counter = PendingCounter::new(&env.config);

    let started = Instant::now();
    let full = counter.refresh("noop").await.unwrap();
    let full_read = started.elapsed();
    assert_eq!(full.pending, base);
    assert_eq!(
        full.records_read, base,
        "the first refresh reads the DLQ once"
    );

    let started = Instant::now();
    let idle = counter.refresh("noop").await.unwrap();
    let idle_read = started.elapsed();
    assert_eq!(
        (idle.pending, idle.records_read),
        (base, 0),
        "nothing new, nothing read"
    );
    println!(
        "pending count of {base} dead letters: first refresh {full_read:?}, next {idle_read:?}"
    );

    dead_letters(&env, "noop", base, 20).await;
    let grown = counter.refresh("noop").await.unwrap();
    assert_eq!((grown.pending, grown.records_read), (base + 20, 20));

    // Replay the two `fatal` ones among the new 20 (and only them: pick by offset).
    let dlq = Dlq::new(&env.config, env.registry()).unwrap();
    for offset in [base as i64, base as i64 + 10] {
        let position = Position {
            partition: 0,
            offset,
        };
        let report = dlq
            .replay("noop", &Selector::Position(position), false, |_, _| {})
            .await
            .unwrap();
        assert_eq!(report.replayed.len(), 1);
    }
    let replayed = counter.refresh("noop").await.unwrap();
    assert_eq!(
        (replayed.pending, replayed.records_read),
        (base + 18, 2),
        "two state records read, two fewer pending"
    );

    // Purge what died before the drill's time (all of them), then one more dead letter.
    let purged = dlq.purge("noop", None).await.unwrap();
    assert_eq!(purged, base + 18);
    dead_letters(&env, "noop", base + 20, 1).await;
    let after = counter.refresh("noop").await.unwrap();
    assert_eq!(after.pending, 1, "only the one dead after the purge");
    assert_eq!(after.records_read, base + 18 + 1);

    // The incremental count agrees with a full read of the same state.
    let listed = dlq
        .list(
            "noop",
            &Filter {
                limit: None,
                ..Filter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), after.pending);
    // A fresh counter (a restarted api) reads everything once and agrees too.
    let fresh = PendingCounter::new(&env.config)
        .refresh("noop")
        .await
        .unwrap();
    assert_eq!(fresh.pending, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_while_another_holds_the_lease_is_409_over_http() {
    let env = TestEnv::new().await;
    dead_letters(&env, "noop", 0, 20_000).await;
    let api = env.start_api().await;
    let dlq = Dlq::new(&env.config, env.registry()).unwrap();
    let slow =
        tokio::spawn(async move { dlq.replay("noop", &Selector::All, false, |_, _| {}).await });
    // The background replay reads 20 000 dead letters while holding the lease.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let response = sluice_tests::api_client()
        .post(format!("http://{}/v1/dlq/noop/replay", api.info))
        .json(&serde_json::json!({"all": true}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap();
    let report = slow.await.unwrap().unwrap();
    assert_eq!(report.replayed.len(), 20_000);
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("already running"),
        "{body}"
    );
    api.stop().await;
}
