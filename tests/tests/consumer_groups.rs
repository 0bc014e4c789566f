//! `GET /v1/queue/consumers` with a real worker: the kind's worker group lists its member with
//! every lane partition assigned and lag per partition adding up to the pending count; a job
//! failed into a one-minute retry tier shows its tier partition waiting until its due time.

use std::{collections::BTreeSet, time::Duration};

use serde_json::Value;
use sluice_core::{headers::now_millis, lanes::Priority, retry::Delay, status::Status};
use sluice_tests::{api_client, eventually, get_json, receiver::Receiver, TestEnv};

const KIND: &str = "webhook";

fn webhook_job(url: &str) -> String {
    format!(r#"{{"url":"{url}","event_type":"e","payload":"{{}}"}}"#)
}

/// The view of `group` in `/v1/queue/consumers`.
async fn group_view(http: &reqwest::Client, api: std::net::SocketAddr, group: &str) -> Value {
    let body = get_json(http, &format!("http://{api}/v1/queue/consumers")).await;
    let groups = body["groups"].as_array().expect("groups");
    groups
        .iter()
        .find(|g| g["group"] == group)
        .unwrap_or_else(|| panic!("{group} not listed: {body}"))
        .clone()
}

fn assigned(view: &Value) -> BTreeSet<(String, i64)> {
    view["members"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["assignments"].as_array().unwrap().iter())
        .map(|a| {
            (
                a["topic"].as_str().unwrap().to_owned(),
                a["partition"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_worker_group_shows_its_member_every_lane_partition_and_lag_as_pending() {
    let env = TestEnv::with_config(|c| {
        // One job at a time, and that one never answered for a minute: the others stay pending.
        c.worker.concurrency = 1;
        c.kinds
            .get_mut(KIND)
            .unwrap()
            .insert("request_timeout".into(), "60s".into());
    })
    .await;
    // Accepts connections (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", silent.local_addr().unwrap());
    let worker = env.start_worker(&[KIND]).await;
    let api = env.start_api().await;
    let http = api_client();
    let topics = env.topics();
    let group = topics.worker_group(KIND);
    let lanes: Vec<String> = Priority::ALL
        .iter()
        .map(|l| topics.lane(KIND, *l))
        .collect();
    let every_lane_partition: BTreeSet<(String, i64)> = lanes
        .iter()
        .flat_map(|t| (0..3).map(move |p| (t.clone(), p)))
        .collect();

    let view = eventually(
        "the worker's member with every lane partition",
        Duration::from_secs(30),
        || async {
            let view = group_view(&http, api.info, &group).await;
            (view["state"] == "Stable" && every_lane_partition.is_subset(&assigned(&view)))
                .then_some(view)
        },
    )
    .await;
    let members = view["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "one worker, one member: {view}");
    assert!(!members[0]["client_id"].as_str().unwrap().is_empty());
    assert!(!members[0]["host"].as_str().unwrap().is_empty());

    const JOBS: i64 = 6;
    env.publish_jobs(KIND, (0..JOBS).map(|_| webhook_job(&url)))
        .await;
    // The first job hangs and no other starts, so nothing is committed: lag is every job.
    let view = eventually(
        "every job counted as lag",
        Duration::from_secs(20),
        || async {
            let view = group_view(&http, api.info, &group).await;
            (view["lag"] == JOBS).then_some(view)
        },
    )
    .await;
    let stats = get_json(&http, &format!("http://{}/v1/queue/stats", api.info)).await;
    let mut lane_lag = 0;
    for lane in &lanes {
        let topic = &view["topics"][lane];
        let partitions = topic["partitions"].as_array().expect("partitions");
        assert_eq!(partitions.len(), 3, "{lane}: {topic}");
        for (i, p) in partitions.iter().enumerate() {
            assert_eq!(
                p["lag"].as_i64().unwrap(),
                p["high_watermark"].as_i64().unwrap() - p["committed"].as_i64().unwrap()
            );
            // The same partition as /v1/queue/stats sees it.
            assert_eq!(
                p["lag"], stats["topics"][lane]["partitions"][i]["lag"],
                "{lane}/{i}"
            );
            lane_lag += p["lag"].as_i64().unwrap();
        }
    }
    assert_eq!(lane_lag, JOBS, "{view}");
    assert_eq!(stats["kinds"][KIND]["pending"], lane_lag, "{stats}");
    assert!(view["waiting"].as_array().unwrap().is_empty(), "{view}");

    // The other groups sluice uses are listed too, memberless here.
    let body = get_json(&http, &format!("http://{}/v1/queue/consumers", api.info)).await;
    let names: BTreeSet<&str> = body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"].as_str().unwrap())
        .collect();
    for expected in [
        topics.posts_group(),
        topics.follows_group(),
        topics.scheduler_group(),
        topics.delay_group(),
    ] {
        assert!(names.contains(expected.as_str()), "{expected} in {names:?}");
    }
    drop(silent);
    worker.stop().await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_tier_partition_waits_until_its_head_record_is_due() {
    let env = TestEnv::with_config(|c| {
        c.retry.tiers = vec![Delay(Duration::from_secs(60))];
        c.retry.jitter = false;
    })
    .await;
    let receiver = Receiver::start(vec![500]).await;
    let worker = env.start_worker(&[KIND]).await;
    let api = env.start_api().await;
    let http = api_client();
    let topics = env.topics();
    let group = topics.worker_group(KIND);
    let tier = topics.retry(KIND, Duration::from_secs(60));

    let published = now_millis();
    let ids = env.publish_jobs(KIND, [webhook_job(&receiver.url())]).await;
    let store = env.status_store().await;
    env.wait_for_status(&store, &ids[0], Status::Retrying, Duration::from_secs(30))
        .await;
    let view = eventually(
        "the tier partition waiting",
        Duration::from_secs(20),
        || async {
            let view = group_view(&http, api.info, &group).await;
            (!view["waiting"].as_array().unwrap().is_empty()).then_some(view)
        },
    )
    .await;
    let waiting = view["waiting"].as_array().unwrap();
    assert_eq!(waiting.len(), 1, "{view}");
    let entry = &waiting[0];
    assert_eq!(entry["topic"], tier.as_str(), "{view}");
    let due = entry["due_at_ms"].as_i64().unwrap();
    let now = now_millis();
    assert!(due > now, "due {due} is in the future (now {now})");
    assert!(
        due >= published + 60_000 && due <= now + 60_000,
        "due a minute after the failure: {due}, published {published}, now {now}"
    );
    let partition = entry["partition"].as_i64().unwrap();
    let tier_view = &view["topics"][&tier];
    assert_eq!(tier_view["lag"], 1, "{view}");
    assert_eq!(
        tier_view["partitions"][partition as usize]["committed"], entry["offset"],
        "the head record is at the committed offset: {view}"
    );
    // Every lane and the tier are the worker's: its member is assigned the tier too.
    assert!(
        assigned(&view).contains(&(tier.clone(), partition)),
        "{view}"
    );
    worker.stop().await;
    api.stop().await;
}
