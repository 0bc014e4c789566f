//! Retry tiers: failed jobs wait in `jobs.<kind>.retry.<delay>` topics without blocking anything
//! else, run again when due (never early), and end in the DLQ when they cannot succeed.

use std::time::Duration;

use rdkafka::{message::Message, producer::FutureRecord};
use sluice_core::{headers, retry::Delay, status::Status};
use sluice_tests::{eventually, receiver::Receiver, TestEnv};

fn tiers(list: &[u64]) -> Vec<Delay> {
    list.iter()
        .map(|s| Delay(Duration::from_secs(*s)))
        .collect()
}

fn webhook_job(receiver: &Receiver) -> String {
    format!(
        r#"{{"url":"{}","event_type":"e","payload":"{{}}"}}"#,
        receiver.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_that_fails_twice_succeeds_on_the_third_attempt_after_the_tier_delays() {
    let env = TestEnv::with_config(|c| {
        c.retry.tiers = tiers(&[2, 4]);
        c.retry.jitter = false;
    })
    .await;
    let receiver = Receiver::start(vec![500, 503]).await;
    let worker = env.start_worker(&["webhook"]).await;
    let ids = env.publish_jobs("webhook", [webhook_job(&receiver)]).await;
    let store = env.status_store().await;
    let status = env
        .wait_for_status(&store, &ids[0], Status::Succeeded, Duration::from_secs(30))
        .await;
    assert_eq!(status.attempts, 3);
    // Each failed attempt's own error, oldest first; its lane and trace with every update.
    let errors: Vec<(u32, &str)> = status
        .errors
        .iter()
        .map(|e| (e.attempt, e.error.as_str()))
        .collect();
    assert_eq!(
        errors,
        vec![(1, "receiver answered 500"), (2, "receiver answered 503")]
    );
    assert!(status.errors[0].at < status.errors[1].at);
    assert_eq!(status.lane, Some(sluice_core::lanes::Priority::Normal));
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);
    let original = &env.read_all(&env.topics().jobs("webhook"))[0];
    let traceparent = headers::get(original.headers().unwrap(), headers::TRACEPARENT);
    assert_eq!(
        status.trace_id.as_deref(),
        traceparent.and_then(headers::trace_id),
        "the trace id of the traceparent the job carried"
    );
    for (gap, tier) in [
        (requests[1].at - requests[0].at, 2),
        (requests[2].at - requests[1].at, 4),
    ] {
        let tier = Duration::from_secs(tier);
        assert!(
            gap >= tier,
            "retried after {gap:?}, before the {tier:?} tier delay"
        );
        assert!(
            gap < tier + Duration::from_secs(1),
            "retried {:?} late",
            gap - tier
        );
    }
    // Every delivery carries the job id: the receiver can deduplicate on it.
    assert!(requests
        .iter()
        .all(|r| r.headers["webhook-id"] == ids[0].as_str()));
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_that_always_fails_is_dead_lettered_after_max_attempts_with_every_header() {
    let env = TestEnv::with_config(|c| {
        c.retry.tiers = tiers(&[1]);
        c.retry.max_attempts = 3;
        c.retry.jitter = false;
    })
    .await;
    let receiver = Receiver::start(vec![500; 10]).await;
    let worker = env.start_worker(&["webhook"]).await;
    let ids = env.publish_jobs("webhook", [webhook_job(&receiver)]).await;
    let store = env.status_store().await;
    let status = env
        .wait_for_status(
            &store,
            &ids[0],
            Status::DeadLettered,
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(status.attempts, 3);
    assert_eq!(status.last_error.as_deref(), Some("receiver answered 500"));
    let attempts: Vec<u32> = status.errors.iter().map(|e| e.attempt).collect();
    assert_eq!(
        attempts,
        vec![1, 2, 3],
        "every attempt's error, the last one too"
    );
    assert!(status
        .errors
        .iter()
        .all(|e| e.error == "receiver answered 500"));
    assert_eq!(receiver.requests().len(), 3);

    let dead = env.read_all(&env.topics().dead_letters("webhook"));
    assert_eq!(dead.len(), 1);
    let original = env.read_all(&env.topics().jobs("webhook"));
    let (dead, original) = (&dead[0], &original[0]);
    assert_eq!(
        dead.payload(),
        original.payload(),
        "the original bytes, unchanged"
    );
    assert_eq!(dead.key(), original.key());
    let header = |name| headers::get(dead.headers().unwrap(), name).map(str::to_owned);
    assert_eq!(header(headers::JOB_ID).as_deref(), Some(ids[0].as_str()));
    assert_eq!(header(headers::ATTEMPT).as_deref(), Some("3"));
    assert_eq!(header(headers::ERROR_CLASS).as_deref(), Some("retryable"));
    assert_eq!(
        header(headers::ERROR).as_deref(),
        Some("receiver answered 500")
    );
    assert_eq!(
        header(headers::ORIGINAL_TOPIC),
        Some(env.topics().jobs("webhook"))
    );
    assert_eq!(
        header(headers::ORIGINAL_OFFSET),
        Some(original.offset().to_string())
    );
    assert_eq!(
        header(headers::ORIGINAL_PARTITION),
        Some(original.partition().to_string())
    );
    for kept in [
        headers::ENQUEUED_AT,
        headers::TRACEPARENT,
        headers::DUE_AT,
        headers::DEAD_AT,
    ] {
        assert!(header(kept).is_some(), "{kept} is missing");
    }
    let original_headers = original.headers().unwrap();
    assert_eq!(
        header(headers::TRACEPARENT).as_deref(),
        headers::get(original_headers, headers::TRACEPARENT),
        "the trace travels with the job"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_waiting_in_its_tier_does_not_delay_fresh_jobs() {
    let env = TestEnv::with_config(|c| {
        c.retry.tiers = tiers(&[8]);
        c.retry.jitter = false;
    })
    .await;
    let worker = env.start_worker(&["noop"]).await;
    let slow = env
        .publish_jobs("noop", [r#"{"fail_attempts":1}"#.to_owned()])
        .await;
    let store = env.status_store().await;
    env.wait_for_status(&store, &slow[0], Status::Retrying, Duration::from_secs(20))
        .await;
    let fresh = env
        .publish_jobs(
            "noop",
            (0..30).map(|i| format!(r#"{{"payload":"fresh {i}"}}"#)),
        )
        .await;
    eventually(
        "fresh jobs to finish while the retry waits",
        Duration::from_secs(20),
        || async {
            (env.count_with_status(&store, &fresh, Status::Succeeded)
                .await
                == 30)
                .then_some(())
        },
    )
    .await;
    let waiting = store.get(&slow[0]).await.unwrap().unwrap();
    assert_eq!(waiting.status, Status::Retrying, "the retry is not due yet");
    let done = env
        .wait_for_status(&store, &slow[0], Status::Succeeded, Duration::from_secs(20))
        .await;
    assert_eq!(done.attempts, 2);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_and_unknown_fingerprints_are_dead_lettered_at_once_with_their_bytes() {
    let env = TestEnv::new().await;
    let producer = env.producer();
    let topic = env.topics().jobs("webhook");
    let mut unknown = vec![0xC3, 0x01];
    unknown.extend_from_slice(&0xdead_beef_u64.to_le_bytes());
    unknown.extend_from_slice(b"\x02hi");
    let garbage = b"\xff\xfe not a record".to_vec();
    for bytes in [&garbage, &unknown] {
        producer
            .send(
                FutureRecord::to(&topic).key("k").payload(bytes),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let receiver = Receiver::start(vec![]).await;
    let behind = env.publish_jobs("webhook", [webhook_job(&receiver)]).await;
    let worker = env.start_worker(&["webhook"]).await;
    let store = env.status_store().await;
    env.wait_for_status(
        &store,
        &behind[0],
        Status::Succeeded,
        Duration::from_secs(30),
    )
    .await;
    let dead = eventually("two dead letters", Duration::from_secs(10), || async {
        let dead = env.read_all(&env.topics().dead_letters("webhook"));
        (dead.len() == 2).then_some(dead)
    })
    .await;
    let mut payloads: Vec<&[u8]> = dead.iter().map(|m| m.payload().unwrap()).collect();
    payloads.sort();
    let mut expected: Vec<&[u8]> = vec![&unknown, &garbage];
    expected.sort();
    assert_eq!(payloads, expected, "bytes intact");
    for message in &dead {
        let class = headers::get(message.headers().unwrap(), headers::ERROR_CLASS);
        assert_eq!(class, Some("decode"));
        let id = headers::get(message.headers().unwrap(), headers::JOB_ID).unwrap();
        assert!(
            id.starts_with(&format!("{topic}-")),
            "a stable id from the position: {id}"
        );
    }
    let unknown_error = dead
        .iter()
        .find(|m| m.payload() == Some(&unknown[..]))
        .and_then(|m| headers::get(m.headers().unwrap(), headers::ERROR).map(str::to_owned));
    assert_eq!(
        unknown_error.as_deref(),
        Some("unknown schema fingerprint 00000000deadbeef")
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handler_past_its_timeout_is_cancelled_retried_and_dead_lettered_as_timeout() {
    let env = TestEnv::with_config(|c| {
        c.retry.tiers = tiers(&[1]);
        c.retry.max_attempts = 2;
        c.retry.timeout = Duration::from_millis(300);
    })
    .await;
    let worker = env.start_worker(&["noop"]).await;
    let ids = env
        .publish_jobs("noop", [r#"{"sleep_ms":5000}"#.to_owned()])
        .await;
    let store = env.status_store().await;
    let status = env
        .wait_for_status(
            &store,
            &ids[0],
            Status::DeadLettered,
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(status.attempts, 2);
    assert!(status.last_error.unwrap().contains("timeout"));
    let dead = env.read_all(&env.topics().dead_letters("noop"));
    assert_eq!(
        headers::get(dead[0].headers().unwrap(), headers::ERROR_CLASS),
        Some("timeout")
    );
    worker.stop().await;
}

/// Records in a tier partition are not all due in the order they sit in: a `Retry-After` (or
/// jitter) can put a later due time in front. The one due sooner must not wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_due_sooner_is_not_held_up_by_one_due_later_in_the_same_partition() {
    let env = TestEnv::with_config(|c| {
        c.topics.partitions = 1;
        c.retry.tiers = tiers(&[1]);
        c.retry.jitter = false;
    })
    .await;
    let patient = Receiver::start_with_retry_after(vec![503], Some(6)).await;
    let quick = Receiver::start(vec![500]).await;
    let worker = env.start_worker(&["webhook"]).await;
    let store = env.status_store().await;
    let later = env.publish_jobs("webhook", [webhook_job(&patient)]).await;
    env.wait_for_status(&store, &later[0], Status::Retrying, Duration::from_secs(20))
        .await;
    let sooner = env.publish_jobs("webhook", [webhook_job(&quick)]).await;
    env.wait_for_status(
        &store,
        &sooner[0],
        Status::Succeeded,
        Duration::from_secs(20),
    )
    .await;
    let quick_requests = quick.requests();
    let gap = quick_requests[1].at - quick_requests[0].at;
    assert!(
        gap < Duration::from_millis(2500),
        "waited {gap:?} behind the later retry"
    );
    assert_eq!(
        store.get(&later[0]).await.unwrap().unwrap().status,
        Status::Retrying,
        "the Retry-After is honoured"
    );
    env.wait_for_status(
        &store,
        &later[0],
        Status::Succeeded,
        Duration::from_secs(20),
    )
    .await;
    let patient_requests = patient.requests();
    assert!(patient_requests[1].at - patient_requests[0].at >= Duration::from_secs(6));
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panicking_handler_is_caught_and_retried_as_class_panic() {
    let env = TestEnv::with_config(|c| {
        c.retry.tiers = tiers(&[1]);
        c.retry.jitter = false;
    })
    .await;
    let worker = env.start_worker(&["noop"]).await;
    let ids = env
        .publish_jobs("noop", [r#"{"panic_attempts":1}"#.to_owned()])
        .await;
    let store = env.status_store().await;
    let status = env
        .wait_for_status(&store, &ids[0], Status::Succeeded, Duration::from_secs(20))
        .await;
    assert_eq!(
        status.attempts, 2,
        "the worker survived the panic and retried"
    );
    assert_eq!(
        status.last_error.as_deref(),
        Some("panic: noop asked to panic on attempt 1")
    );
    let retried = env.read_all(&env.topics().retry("noop", Duration::from_secs(1)));
    assert_eq!(
        headers::get(retried[0].headers().unwrap(), headers::ERROR_CLASS),
        Some("panic")
    );
    worker.stop().await;
}
