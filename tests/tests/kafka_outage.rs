//! With the broker down the API answers 503 within its bound instead of hanging or lying with a
//! 202; with the broker back it accepts jobs again without a restart. This test stops the shared
//! broker, so it lives alone in its own test binary (cargo runs test binaries one at a time).

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use rdkafka::Message;
use sluice_core::{codec::SchemaRegistry, json::string_field};
use sluice_tests::{env_script, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_down_gives_503_within_the_bound_and_kafka_back_works_without_restart() {
    let mut env = TestEnv::new().await;
    let bound = Duration::from_secs(3);
    env.config.api.publish_timeout = bound;
    let api = env.start_api().await;
    let http = sluice_tests::api_client();
    let url = format!("http://{}/v1/jobs/noop", api.info);
    // Each request carries its own payload, so what reached Kafka can be told apart.
    let post = |payload: String| {
        http.post(&url)
            .body(format!(r#"{{"payload":"{payload}"}}"#))
            .send()
    };
    let mut accepted = BTreeSet::new();

    assert_eq!(post("before".into()).await.unwrap().status(), 202);
    accepted.insert("before".to_owned());

    env_script("kafka-stop");
    let result = std::panic::AssertUnwindSafe(async {
        let started = Instant::now();
        let response = post("refused".into()).await.unwrap();
        let elapsed = started.elapsed();
        assert_eq!(response.status(), 503);
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("retry later"));
        // The bound plus scheduling slack; without the bound librdkafka would wait 300 s.
        assert!(
            elapsed < bound + Duration::from_secs(3),
            "503 took {elapsed:?}"
        );
        let ready = http
            .get(format!("http://{}/readyz", api.info))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 503);
    });
    let outage = futures::FutureExt::catch_unwind(result).await;
    env_script("kafka-start");
    if let Err(panic) = outage {
        std::panic::resume_unwind(panic);
    }

    // While the broker comes back, a request may time out after its record reached the broker
    // (librdkafka cannot tell then whether it was written): a 503 then says "not known to be
    // stored, retry", and the record may or may not be in Kafka. Those are told apart below.
    let mut uncertain = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for attempt in 1.. {
        assert!(
            Instant::now() < deadline,
            "the api did not accept jobs again within 60 s"
        );
        let payload = format!("after-{attempt}");
        match post(payload.clone()).await.map(|r| r.status()) {
            Ok(status) if status == 202 => {
                accepted.insert(payload);
                break;
            }
            _ => {
                uncertain.insert(payload);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    // Longer than the publish bound: anything still queued in librdkafka would have gone out.
    tokio::time::sleep(bound + Duration::from_secs(1)).await;
    let in_kafka: Vec<String> = env
        .read_all(&env.topics().jobs("noop"))
        .iter()
        .map(|m| {
            let value = SchemaRegistry::embedded()
                .decode("noop", m.payload().unwrap())
                .unwrap()
                .value;
            string_field(&value, "payload").unwrap().to_owned()
        })
        .collect();
    let distinct: BTreeSet<String> = in_kafka.iter().cloned().collect();
    assert_eq!(
        distinct.len(),
        in_kafka.len(),
        "no record twice: {in_kafka:?}"
    );
    assert!(
        !distinct.contains("refused"),
        "the job refused while the broker was down is not in Kafka"
    );
    assert!(
        accepted.is_subset(&distinct),
        "every accepted job is in Kafka: {accepted:?} vs {distinct:?}"
    );
    let unexplained: Vec<&String> = distinct
        .iter()
        .filter(|p| !accepted.contains(*p) && !uncertain.contains(*p))
        .collect();
    assert!(
        unexplained.is_empty(),
        "records nobody sent: {unexplained:?}"
    );
    api.stop().await;
}
