//! A webhook job, end to end: HTTP API → Kafka → worker → a signed request to a receiver.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde_json::{json, Value};
use sluice_tests::{eventually, receiver::Receiver, webhook_signature, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_posted_webhook_job_is_delivered_once_correctly_signed_and_succeeds() {
    let env = TestEnv::new().await;
    let receiver = Receiver::start(vec![]).await;
    let api = env.start_api().await;
    let worker = env.start_worker(&["webhook"]).await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);

    let payload = r#"{"invoice":"inv_1","amount":4200}"#;
    let response = http
        .post(format!("{base}/v1/jobs/webhook"))
        .json(&json!({"url": receiver.url(), "event_type": "invoice.paid", "payload": payload}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let job_id = body["job_id"].as_str().unwrap().to_owned();
    assert_eq!(body["status"], "queued");
    assert_eq!(location, format!("/v1/jobs/{job_id}"));

    let status = eventually("the job to succeed", Duration::from_secs(30), || {
        let (http, url) = (http.clone(), format!("{base}{location}"));
        async move {
            let status: Value = http.get(url).send().await.ok()?.json().await.ok()?;
            (status["status"] == "succeeded").then_some(status)
        }
    })
    .await;
    assert_eq!(status["kind"], "webhook");
    assert_eq!(status["attempts"], 1);

    // Give a duplicate delivery, if there were one, time to arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "exactly one request");
    let request = &requests[0];
    let header = |name: &str| request.headers[name].to_str().unwrap().to_owned();
    assert_eq!(header("webhook-id"), job_id);
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(request.body.as_ref(), payload.as_bytes());
    let timestamp = header("webhook-timestamp");
    let sent_at: i64 = timestamp.parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - sent_at).abs() < 60, "timestamp is current");
    assert_eq!(
        header("webhook-signature"),
        webhook_signature(&job_id, &timestamp, payload.as_bytes())
    );

    worker.stop().await;
    api.stop().await;
}

/// A producer in another language needs only the documented wire format: single-object Avro
/// with the schema file's fingerprint. This builds the bytes from the .avsc file by hand, with no
/// sluice headers at all, and a plain librdkafka producer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_produced_straight_to_kafka_in_the_wire_format_is_processed() {
    let env = TestEnv::new().await;
    let receiver = Receiver::start(vec![]).await;
    let worker = env.start_worker(&["webhook"]).await;

    let schema_json = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schemas/webhook/v1.avsc"
    ))
    .unwrap();
    let schema = apache_avro_schema(&schema_json);
    let mut value = vec![0xC3, 0x01];
    value.extend_from_slice(
        &sluice_core::codec::rabin_fingerprint(schema.canonical_form().as_bytes()).to_le_bytes(),
    );
    // Avro binary of a record is its fields in order; strings are a zigzag varint length + UTF-8.
    for field in [receiver.url().as_str(), "user.created", r#"{"user":7}"#] {
        avro_string(&mut value, field);
    }

    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &env.config.kafka.bootstrap_servers)
        .create()
        .unwrap();
    let topic = env.topics().jobs("webhook");
    let delivery = producer
        .send(
            FutureRecord::to(&topic).key("user-7").payload(&value),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    producer.flush(Duration::from_secs(5)).unwrap();

    let expected_id = format!("{topic}-{}-{}", delivery.partition, delivery.offset);
    let store = env.status_store().await;
    eventually("the job to succeed", Duration::from_secs(30), || {
        let (store, id) = (store.clone(), expected_id.clone());
        async move {
            store
                .get(&id)
                .await
                .ok()
                .flatten()
                .filter(|s| s.status.as_str() == "succeeded")
        }
    })
    .await;
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].headers["webhook-id"].to_str().unwrap(),
        expected_id
    );
    assert_eq!(requests[0].body.as_ref(), br#"{"user":7}"#);
    worker.stop().await;
}

fn apache_avro_schema(json: &str) -> AvroSchema {
    AvroSchema::parse_str(json).unwrap()
}

use apache_avro::Schema as AvroSchema;

fn avro_string(out: &mut Vec<u8>, s: &str) {
    let mut n = ((s.len() as i64) << 1) as u64; // zigzag of a non-negative length
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(s.as_bytes());
}
