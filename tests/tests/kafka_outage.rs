//! With the broker down the API answers 503 within its bound instead of hanging or lying with a
//! 202; with the broker back it accepts jobs again without a restart. This test stops the shared
//! broker, so it lives alone in its own test binary (cargo runs test binaries one at a time).

use std::time::{Duration, Instant};

use sluice_tests::{env_script, eventually, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_down_gives_503_within_the_bound_and_kafka_back_works_without_restart() {
    let mut env = TestEnv::new().await;
    let bound = Duration::from_secs(3);
    env.config.api.publish_timeout = bound;
    let api = env.start_api().await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/jobs/noop", api.info);
    let post = || http.post(&url).body(r#"{"payload":"outage"}"#).send();
    let mut accepted = 0;

    assert_eq!(post().await.unwrap().status(), 202);
    accepted += 1;

    env_script("kafka-stop");
    let result = std::panic::AssertUnwindSafe(async {
        let started = Instant::now();
        let response = post().await.unwrap();
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

    eventually(
        "the api to accept jobs again",
        Duration::from_secs(60),
        || async {
            let status = post().await.ok()?.status();
            (status == 202).then_some(())
        },
    )
    .await;
    accepted += 1;

    // Exactly the accepted jobs are in Kafka: none of the refused ones slipped in later.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let in_kafka = env.record_count(&env.topics().jobs("noop"));
    assert!(
        in_kafka >= accepted,
        "{in_kafka} records for {accepted} accepted jobs"
    );
    api.stop().await;
}
