//! Outcome counts per kind, lane and minute, and in-flight counts per kind and lane, read back
//! from Redis as the console reads them, after jobs ran through a real worker.

use std::time::Duration;

use sluice_core::{
    headers::now_millis,
    in_flight::read_in_flight,
    lanes::Priority,
    outcomes::{self, OutcomeCounts},
    retry::Delay,
    status::Status,
};
use sluice_tests::{eventually, TestEnv};

fn counts(succeeded: u64, retried: u64, dead_lettered: u64) -> OutcomeCounts {
    OutcomeCounts {
        succeeded,
        retried,
        dead_lettered,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_outcome_is_counted_once_in_its_kind_lane_and_minute() {
    let env = TestEnv::with_config(|c| {
        c.retry.tiers = vec![Delay(Duration::from_secs(1))];
        c.retry.max_attempts = 2;
        c.retry.jitter = false;
    })
    .await;
    let worker = env.start_worker(&["noop"]).await;
    // high: 3 succeed at once; normal: 2 fail once, then succeed; low: 2 fail twice, dead.
    let mut bodies = vec![r#"{"priority":"high"}"#.to_owned(); 3];
    bodies.extend(vec![r#"{"fail_attempts":1}"#.to_owned(); 2]);
    bodies.extend(vec![
        r#"{"fail_attempts":5,"priority":"low"}"#.to_owned();
        2
    ]);
    let ids = env.publish_jobs("noop", bodies).await;
    let store = env.status_store().await;
    for (i, id) in ids.iter().enumerate() {
        let wanted = if i >= 5 {
            Status::DeadLettered
        } else {
            Status::Succeeded
        };
        env.wait_for_status(&store, id, wanted, Duration::from_secs(30))
            .await;
    }

    let redis = env.redis().await;
    let prefix = &env.config.redis.key_prefix;
    let kinds = vec!["noop".to_owned(), "webhook".to_owned()];
    let expected_total = counts(5, 4, 2);
    // Counters are written beside the statuses: a moment after them at most.
    let read = eventually(
        "the counts of every outcome",
        Duration::from_secs(5),
        || async {
            let read = outcomes::read(&redis, prefix, &kinds, 60, now_millis())
                .await
                .expect("Redis answers");
            (read["noop"].sum_last(5) == expected_total).then_some(read)
        },
    )
    .await;
    let noop = &read["noop"];
    assert_eq!(noop.total.succeeded.len(), 60);
    assert_eq!(noop.lanes[&Priority::High].sum_last(60), counts(3, 0, 0));
    assert_eq!(noop.lanes[&Priority::Normal].sum_last(60), counts(2, 2, 0));
    assert_eq!(noop.lanes[&Priority::Low].sum_last(60), counts(0, 2, 2));
    assert_eq!(noop.sum_last(60), expected_total);
    // Everything happened in the last minute or two: older minutes are empty.
    assert_eq!(noop.total.sum_last(2), expected_total);
    assert_eq!(noop.total.succeeded[..58].iter().sum::<u64>(), 0);
    assert_eq!(read["webhook"].sum_last(60), OutcomeCounts::default());
    let minute_start = noop.start_ms + 59 * 60_000;
    assert!(minute_start <= now_millis() && now_millis() < minute_start + 120_000);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_being_handled_are_in_flight_per_lane_until_they_finish() {
    let env = TestEnv::new().await;
    let worker = env.start_worker(&["noop"]).await;
    let redis = env.redis().await;
    let prefix = env.config.redis.key_prefix.clone();
    let kinds = vec!["noop".to_owned()];
    let read = || {
        let (redis, prefix, kinds) = (redis.clone(), prefix.clone(), kinds.clone());
        async move {
            read_in_flight(&redis, &prefix, &kinds, now_millis())
                .await
                .expect("Redis answers")
                .remove("noop")
                .expect("every kind asked for is answered")
        }
    };
    let mut bodies = vec![r#"{"sleep_ms":5000,"priority":"high"}"#.to_owned(); 2];
    bodies.push(r#"{"sleep_ms":5000,"priority":"low"}"#.to_owned());
    let ids = env.publish_jobs("noop", bodies).await;
    let busy = eventually("3 jobs in flight", Duration::from_secs(10), || async {
        let now = read().await;
        (now.total == 3).then_some(now)
    })
    .await;
    assert_eq!(busy.lanes[&Priority::High], 2);
    assert_eq!(busy.lanes[&Priority::Low], 1);
    assert_eq!(busy.lanes[&Priority::Normal], 0);
    assert_eq!(busy.workers, 1);

    let store = env.status_store().await;
    for id in &ids {
        env.wait_for_status(&store, id, Status::Succeeded, Duration::from_secs(20))
            .await;
    }
    let idle = eventually("nothing in flight", Duration::from_secs(5), || async {
        let now = read().await;
        (now.total == 0).then_some(now)
    })
    .await;
    assert_eq!(idle.workers, 1, "an idle worker still reports");

    worker.stop().await;
    let stopped = read().await;
    assert_eq!(stopped.workers, 0, "a stopped worker took its entries out");
}
