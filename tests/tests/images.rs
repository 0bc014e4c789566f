//! Image uploads, end to end on the real broker, Redis and storage: `POST /v1/uploads/images`
//! streams the image into storage and answers 202 at once; an `image` worker makes the
//! thumbnails (EXIF orientation applied, metadata gone, never enlarged), stores them next to the
//! original and the api serves them read-only. Hostile files dead-letter at once; bad uploads
//! are clear errors that leave nothing behind; `notify_url` becomes a signed webhook; the S3
//! path runs against a real S3-compatible server (s3s-fs).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use image::ImageFormat;
use rdkafka::message::Message;
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};
use sluice_core::headers;
use sluice_tests::{
    eventually, get_json, receiver::Receiver, s3::S3Server, webhook_signature, TestEnv,
};
use sluice_thumbnail::samples;

fn photo(width: u32, height: u32) -> Vec<u8> {
    samples::jpeg(width, height)
}

fn form(bytes: Vec<u8>, file_name: &str, content_type: &str) -> Form {
    Form::new().part(
        "file",
        Part::bytes(bytes)
            .file_name(file_name.to_owned())
            .mime_str(content_type)
            .unwrap(),
    )
}

async fn upload(http: &reqwest::Client, base: &str, form: Form) -> (u16, Value) {
    let response = http
        .post(format!("{base}/v1/uploads/images"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// The upload once its job is final (`?wait=` holds the request until then).
async fn finished(http: &reqwest::Client, base: &str, job_id: &str) -> Value {
    eventually(
        "the image job to finish",
        Duration::from_secs(60),
        || async {
            let status =
                get_json(http, &format!("{base}/v1/uploads/images/{job_id}?wait=10s")).await;
            matches!(
                status["status"].as_str(),
                Some("succeeded" | "dead_lettered")
            )
            .then_some(status)
        },
    )
    .await
}

async fn fetch(http: &reqwest::Client, base: &str, url: &str) -> (String, Vec<u8>) {
    let response = http.get(format!("{base}{url}")).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    (content_type, response.bytes().await.unwrap().to_vec())
}

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// Checks each variant of a succeeded upload: served by the api, decodes to the size the
/// result states, fits its box, and carries no EXIF block.
async fn check_variants(
    http: &reqwest::Client,
    base: &str,
    upload: &Value,
    expected: &[(u32, u32)],
) {
    let variants = upload["variants"].as_array().unwrap();
    assert_eq!(variants.len(), expected.len(), "{upload}");
    for (variant, &(width, height)) in variants.iter().zip(expected) {
        assert_eq!(
            (variant["width"].as_u64(), variant["height"].as_u64()),
            (Some(width.into()), Some(height.into())),
            "{variant}"
        );
        let (content_type, bytes) = fetch(http, base, variant["url"].as_str().unwrap()).await;
        assert_eq!(content_type, "image/jpeg");
        assert_eq!(bytes.len() as u64, variant["bytes"].as_u64().unwrap());
        let decoded = image::load_from_memory_with_format(&bytes, ImageFormat::Jpeg).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (width, height));
        assert!(
            !bytes.windows(4).any(|w| w == b"Exif"),
            "metadata is stripped from {}",
            variant["key"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_uploaded_photo_becomes_thumbnails_the_api_serves() {
    let env = TestEnv::new().await;
    let api = env.start_api().await;
    let worker = env.start_worker(&["image"]).await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);

    // A phone photo: stored 1600 × 1200, displayed 1200 × 1600 (EXIF orientation 6).
    let original = samples::with_orientation(&photo(1600, 1200), 6);
    let response = http
        .post(format!("{base}/v1/uploads/images"))
        .multipart(form(original.clone(), "photo.jpg", "image/jpeg"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let accepted: Value = response.json().await.unwrap();
    let job_id = accepted["job_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/v1/uploads/images/{job_id}"));
    assert_eq!(accepted["status"], "queued");
    assert_eq!(accepted["original"]["content_type"], "image/jpeg");
    assert_eq!(accepted["original"]["bytes"], original.len());

    let done = finished(&http, &base, &job_id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["original"]["width"], 1200,
        "orientation applied: {done}"
    );
    assert_eq!(done["original"]["height"], 1600);
    check_variants(&http, &base, &done, &[(600, 800), (150, 200)]).await;
    let (_, stored) = fetch(&http, &base, done["original"]["url"].as_str().unwrap()).await;
    assert_eq!(stored, original, "the original is stored byte for byte");
    let status = get_json(&http, &format!("{base}/v1/jobs/{job_id}")).await;
    assert_eq!(status["result"]["variants"], done["variants"]);

    // A raw body works too, and its type comes from its bytes, not from its header. A small
    // image is never enlarged.
    let response = http
        .post(format!("{base}/v1/uploads/images"))
        .header("content-type", "text/plain")
        .body(samples::png(300, 100))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    assert_eq!(accepted["original"]["content_type"], "image/png");
    assert!(accepted["original"]["key"]
        .as_str()
        .unwrap()
        .ends_with("/original.png"));
    let done = finished(&http, &base, accepted["job_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    check_variants(&http, &base, &done, &[(300, 100), (200, 67)]).await;

    worker.stop().await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_images_dead_letter_at_once_and_the_worker_moves_on() {
    let env = TestEnv::new().await;
    let api = env.start_api().await;
    let worker = env.start_worker(&["image"]).await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);

    let photo = photo(640, 480);
    let cases = [
        (
            "bomb.png",
            samples::bomb_png(100_000, 100_000),
            "over the limit",
        ),
        ("cut.jpg", photo[..photo.len() / 2].to_vec(), "truncated"),
    ];
    let mut jobs = Vec::new();
    for (name, bytes, error) in cases {
        let (status, accepted) = upload(&http, &base, form(bytes, name, "image/jpeg")).await;
        assert_eq!(status, 202, "{name}: {accepted}");
        jobs.push((name, accepted["job_id"].as_str().unwrap().to_owned(), error));
    }
    // A non-image under an image name, put in storage by someone else and enqueued directly.
    let storage = sluice_storage::Storage::open(&env.config.storage).unwrap();
    storage
        .put(
            "images/elsewhere/original.jpg",
            "just text, not a JPEG".into(),
        )
        .await
        .unwrap();
    let response = http
        .post(format!("{base}/v1/jobs/image"))
        .json(&json!({"object": "images/elsewhere/original.jpg"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    jobs.push((
        "text.jpg",
        accepted["job_id"].as_str().unwrap().to_owned(),
        "not a JPEG",
    ));

    for (name, job_id, error) in &jobs {
        let done = finished(&http, &base, job_id).await;
        assert_eq!(done["status"], "dead_lettered", "{name}: {done}");
        assert_eq!(done["attempts"], 1, "{name}: fatal, never retried");
        let last_error = done["last_error"].as_str().unwrap_or_default();
        assert!(last_error.contains(error), "{name}: {last_error}");
    }
    let dead = env.read_all(&env.topics().dead_letters("image"));
    assert_eq!(dead.len(), 3);
    for record in &dead {
        let class = headers::get(record.headers().unwrap(), headers::ERROR_CLASS);
        assert_eq!(class, Some("fatal"));
    }

    // The worker is still there for the next photo.
    let (status, accepted) = upload(&http, &base, form(photo, "ok.jpg", "image/jpeg")).await;
    assert_eq!(status, 202);
    let done = finished(&http, &base, accepted["job_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    worker.stop().await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_uploads_are_clear_errors_and_leave_nothing_behind() {
    let env = TestEnv::with_config(|c| c.api.upload_limit_bytes = 100_000).await;
    let api = env.start_api().await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);
    let big = photo(2000, 2000);
    assert!(big.len() > 100_000);

    let text = b"hello, I am a text file with a .jpg name".to_vec();
    let cases: Vec<(&str, Form, u16, &str)> = vec![
        (
            "text named .jpg",
            form(text.clone(), "cat.jpg", "image/jpeg"),
            415,
            "not a JPEG, PNG, WebP or GIF",
        ),
        (
            "over the limit",
            form(big.clone(), "big.jpg", "image/jpeg"),
            413,
            "100000",
        ),
        (
            "no file field",
            Form::new().text("notify_url", "http://example.com/x"),
            400,
            "no `file` field",
        ),
        (
            "unknown field",
            form(samples::png(10, 10), "a.png", "image/png").text("colour", "blue"),
            400,
            "unknown form field `colour`",
        ),
        (
            "bad notify_url",
            form(samples::png(10, 10), "a.png", "image/png").text("notify_url", "ftp://x"),
            400,
            "notify_url",
        ),
        (
            "empty file",
            form(Vec::new(), "a.png", "image/png"),
            400,
            "empty",
        ),
    ];
    for (name, form, status, words) in cases {
        let (got, body) = upload(&http, &base, form).await;
        assert_eq!(got, status, "{name}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(words), "{name}: {error}");
    }
    let raw = |body: Vec<u8>| {
        http.post(format!("{base}/v1/uploads/images"))
            .header("content-type", "image/jpeg")
            .body(body)
            .send()
    };
    assert_eq!(raw(big).await.unwrap().status(), 413);
    assert_eq!(raw(text).await.unwrap().status(), 415);
    assert_eq!(raw(Vec::new()).await.unwrap().status(), 400);
    let missing = http
        .get(format!("{base}/v1/uploads/images/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    let left = files_under(Path::new(&env.config.storage.url));
    assert!(left.is_empty(), "a refused upload leaves nothing: {left:?}");
    assert_eq!(env.record_count(&env.topics().jobs("image")), 0);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notify_url_gets_a_signed_webhook_with_the_result() {
    let env = TestEnv::new().await;
    let receiver = Receiver::start(vec![]).await;
    let api = env.start_api().await;
    let worker = env.start_worker(&["image", "webhook"]).await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);

    let form = form(photo(1000, 500), "p.jpg", "image/jpeg").text("notify_url", receiver.url());
    let (status, accepted) = upload(&http, &base, form).await;
    assert_eq!(status, 202, "{accepted}");
    let job_id = accepted["job_id"].as_str().unwrap().to_owned();
    let requests = eventually("the webhook to arrive", Duration::from_secs(60), || async {
        let requests = receiver.requests();
        (!requests.is_empty()).then_some(requests)
    })
    .await;
    let request = &requests[0];
    let header = |name: &str| request.headers[name].to_str().unwrap().to_owned();
    let webhook_id = header("webhook-id");
    assert_eq!(
        webhook_id,
        format!("{job_id}.1"),
        "derived from the image job's id"
    );
    assert_eq!(
        header("webhook-signature"),
        webhook_signature(&webhook_id, &header("webhook-timestamp"), &request.body)
    );
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["event"], "image.processed");
    assert_eq!(body["job_id"], job_id);
    // The follow-up webhook can arrive before the image job's final status is written (status
    // never holds a job up): wait for it.
    let done = get_json(
        &http,
        &format!("{base}/v1/uploads/images/{job_id}?wait=10s"),
    )
    .await;
    assert_eq!(body["image"]["variants"], done["variants"]);
    assert_eq!(body["image"]["variants"][0]["width"], 800);
    worker.stop().await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stored_files_cannot_be_read_from_outside_the_storage_root() {
    let outside = std::env::temp_dir().join(format!("sluice-escape-{}", uuid::Uuid::new_v4()));
    let root = outside.join("root");
    std::fs::create_dir_all(root.join("images/a")).unwrap();
    std::fs::write(outside.join("secret.txt"), "the secret").unwrap();
    std::fs::write(root.join("images/a/800.jpg"), "inside").unwrap();
    let root_url = root.display().to_string();
    let env = TestEnv::with_config(move |c| c.storage.url = root_url).await;
    let api = env.start_api().await;
    let addr = api.info;

    let inside = tokio::task::spawn_blocking(move || {
        sluice_tests::raw_get_status(addr, "/files/images/a/800.jpg")
    });
    assert_eq!(inside.await.unwrap(), 200);
    for target in [
        "/files/../secret.txt",
        "/files/images/../../secret.txt",
        "/files/%2e%2e/secret.txt",
        "/files/%2E%2E%2Fsecret.txt",
        "/files/images/a/..%2f..%2f..%2fsecret.txt",
        "/files/..%5csecret.txt",
        "/files/%2fetc%2fpasswd",
        "/files//etc/passwd",
        "/files/images/a/800.jpg%00.txt",
        "/files/images/./a/800.jpg",
        &format!("/files/{}", outside.join("secret.txt").display()),
    ] {
        let target = target.to_owned();
        let status = tokio::task::spawn_blocking({
            let target = target.clone();
            move || sluice_tests::raw_get_status(addr, &target)
        })
        .await
        .unwrap();
        assert!(
            status == 404 || status == 400,
            "{target} must not be served: {status}"
        );
    }
    api.stop().await;
    let _ = std::fs::remove_dir_all(outside);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_and_thumbnails_live_in_an_s3_bucket_when_configured() {
    let s3 = S3Server::start("sluice").await;
    let options = s3.options();
    let env = TestEnv::with_config(move |c| {
        c.storage.url = "s3://sluice/uploads".into();
        c.storage.options = options.into_iter().collect();
    })
    .await;
    let api = env.start_api().await;
    let worker = env.start_worker(&["image"]).await;
    let http = sluice_tests::api_client();
    let base = format!("http://{}", api.info);

    // Over one 5 MiB part, so the upload goes to S3 as a multipart upload.
    let original = photo(4000, 3000);
    let original = if original.len() > 5 << 20 {
        original
    } else {
        let mut padded = original.clone();
        // Bytes after a JPEG's end-of-image marker are ignored by decoders.
        padded.extend(std::iter::repeat_n(0u8, (5 << 20) + 1000 - original.len()));
        padded
    };
    let (status, accepted) = upload(
        &http,
        &base,
        form(original.clone(), "big.jpg", "image/jpeg"),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let job_id = accepted["job_id"].as_str().unwrap().to_owned();
    let done = finished(&http, &base, &job_id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    check_variants(&http, &base, &done, &[(800, 600), (200, 150)]).await;

    let in_bucket = s3.root.join("sluice/uploads/images").join(&job_id);
    let stored = std::fs::read(in_bucket.join("original.jpg")).unwrap();
    assert_eq!(
        stored, original,
        "the original is in the bucket byte for byte"
    );
    assert!(in_bucket.join("800.jpg").is_file());
    assert!(in_bucket.join("200.jpg").is_file());
    worker.stop().await;
    api.stop().await;
    let _ = std::fs::remove_dir_all(&s3.root);
}
