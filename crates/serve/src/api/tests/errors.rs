//! Every bad input gets a 4xx JSON `{error, error_type}` that says what is wrong; garbage never
//! panics the server; a full queue answers 503 with `Retry-After`.

use super::*;
use crate::testing::SPORT;

fn small_limits() -> ServeConfig {
    ServeConfig {
        max_text_chars: 50,
        max_batch_texts: 3,
        body_limit_bytes: 1000,
        ..ServeConfig::default()
    }
}

/// Asserts the answer is a JSON error of this status and type whose message contains `needle`.
fn assert_error(a: &Answer, status: u16, kind: &str, needle: &str) {
    assert_eq!(a.status.as_u16(), status, "{}", a.text());
    assert_eq!(a.headers["content-type"], "application/json");
    let v = a.json();
    let obj = v.as_object().unwrap();
    assert_eq!(obj.len(), 2, "exactly error and error_type: {v}");
    assert_eq!(v["error_type"], kind, "{v}");
    let message = v["error"].as_str().unwrap();
    assert!(message.contains(needle), "{needle:?} not in {message:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_input_says_what_is_wrong() {
    let s = server(small_limits()).await;
    let long = "x".repeat(51);
    let cases: Vec<(&str, String, u16, &str, &str)> = vec![
        (
            "/v1/predict",
            r#"{"text": ""}"#.into(),
            422,
            "empty_text",
            "\"text\" is empty",
        ),
        (
            "/v1/predict",
            r#"{"text": " \t "}"#.into(),
            422,
            "empty_text",
            "only whitespace",
        ),
        (
            "/v1/predict",
            format!(r#"{{"text": "{long}"}}"#),
            422,
            "text_too_long",
            "\"text\" has 51 characters, more than the limit of 50",
        ),
        (
            "/v1/predict",
            r#"{"text": "a""#.into(),
            400,
            "invalid_json",
            "line 1 column",
        ),
        (
            "/v1/predict",
            "not json".into(),
            400,
            "invalid_json",
            "malformed JSON",
        ),
        (
            "/v1/predict",
            "".into(),
            400,
            "invalid_json",
            "the request body is empty",
        ),
        (
            "/v1/predict",
            r#"{"text": 42}"#.into(),
            422,
            "invalid_request",
            "`text` must be a string, found a number (42)",
        ),
        (
            "/v1/predict",
            r#"{"txt": "a"}"#.into(),
            422,
            "invalid_request",
            "unknown field `txt`",
        ),
        (
            "/v1/predict",
            r#"{}"#.into(),
            422,
            "invalid_request",
            "missing field `text`",
        ),
        (
            "/v1/predict",
            r#"["a"]"#.into(),
            422,
            "invalid_request",
            "must be a JSON object",
        ),
        (
            "/v1/predict/batch",
            r#"{"texts": []}"#.into(),
            422,
            "empty_batch",
            "\"texts\" is empty",
        ),
        (
            "/v1/predict/batch",
            r#"{"texts": ["a", "b", "c", "d"]}"#.into(),
            422,
            "batch_too_large",
            "\"texts\" has 4 texts, more than the limit of 3",
        ),
        (
            "/v1/predict/batch",
            format!(r#"{{"texts": ["a", "{long}"]}}"#),
            422,
            "text_too_long",
            "\"texts[1]\" has 51 characters",
        ),
        (
            "/v1/predict/batch",
            r#"{"texts": ["a", ""]}"#.into(),
            422,
            "empty_text",
            "\"texts[1]\" is empty",
        ),
        (
            "/v1/predict/batch",
            r#"{"texts": "a"}"#.into(),
            422,
            "invalid_request",
            "`texts` must be an array of strings",
        ),
        (
            "/v1/predict/batch",
            r#"{"texts": [1]}"#.into(),
            422,
            "invalid_request",
            "`texts[0]` must be a string",
        ),
        (
            "/v1/predict",
            format!(r#"{{"text": "{}"}}"#, "y".repeat(2000)),
            413,
            "payload_too_large",
            "larger than the limit of 1000 bytes",
        ),
    ];
    for (path, body, status, kind, needle) in cases {
        let a = post_json(&s.app, path, body.clone()).await;
        assert_eq!(a.status.as_u16(), status, "{path} {body}: {}", a.text());
        assert_error(&a, status, kind, needle);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_type_route_and_method_errors_are_json() {
    let s = server(small_limits()).await;
    let req = Request::post("/v1/predict")
        .header("content-type", "text/plain")
        .body(Body::from(r#"{"text": "a"}"#))
        .unwrap();
    assert_error(
        &send(&s.app, req).await,
        415,
        "unsupported_media_type",
        "application/json",
    );
    let req = Request::post("/v1/predict")
        .body(Body::from(r#"{"text": "a"}"#))
        .unwrap();
    assert_error(
        &send(&s.app, req).await,
        415,
        "unsupported_media_type",
        "missing Content-Type",
    );
    assert_error(
        &get(&s.app, "/v2/nothing").await,
        404,
        "not_found",
        "no route for GET /v2/nothing",
    );
    assert_error(
        &get(&s.app, "/v1/predict").await,
        405,
        "method_not_allowed",
        "GET is not allowed on /v1/predict",
    );
    let req = Request::delete("/health").body(Body::empty()).unwrap();
    assert_error(
        &send(&s.app, req).await,
        405,
        "method_not_allowed",
        "DELETE",
    );
    // A declared Content-Length over the limit is refused before the body is read (the
    // bodies of the other cases carry no Content-Length and hit the streaming limit).
    let req = Request::post("/v1/predict")
        .header("content-type", "application/json")
        .header("content-length", "5000")
        .body(Body::from(r#"{"text": "a"}"#))
        .unwrap();
    assert_error(
        &send(&s.app, req).await,
        413,
        "payload_too_large",
        "1000 bytes",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_never_panics() {
    let s = server(small_limits()).await;
    let mut bodies: Vec<Vec<u8>> = vec![
        vec![0xff, 0xfe, 0xfd],
        b"{\"text\": \"\xc3\x28\"}".to_vec(),
        "[".repeat(500).into_bytes(),
        "{\"text\":".repeat(200).into_bytes(),
        format!("{{\"text\": {}}}", "9".repeat(400)).into_bytes(),
        b"{\"text\": 1e999999}".to_vec(),
        b"{\"text\": -0.0e-99999}".to_vec(),
        b"null".to_vec(),
        b"{\"text\": null}".to_vec(),
        b"{\"texts\": null}".to_vec(),
        b"[[], {}, null]".to_vec(),
        b"{\"text\": [\"a\"]}".to_vec(),
        b"{\"text\": {\"nested\": true}}".to_vec(),
        b"{\"text\": \"\\ud800\"}".to_vec(),
        b"{\"text\": \"\\u0000\"}".to_vec(),
        b"\"just a string\"".to_vec(),
        b"{\"text\": \"a\"} trailing".to_vec(),
        vec![0u8; 999],
    ];
    // Pseudo-random bytes (a fixed LCG, so failures reproduce).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for len in [1, 7, 64, 500, 999] {
        bodies.push(
            (0..len)
                .map(|_| {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    (x >> 56) as u8
                })
                .collect(),
        );
    }
    for body in bodies {
        for path in ["/v1/predict", "/v1/predict/batch"] {
            let a = post_json(&s.app, path, body.clone()).await;
            let shown = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
            // The NUL text is a valid (if odd) text; everything else is a client error.
            if a.status == StatusCode::OK {
                assert!(
                    shown.contains("\\u0000") && path == "/v1/predict",
                    "{shown}: {}",
                    a.text()
                );
                continue;
            }
            assert!(
                a.status.is_client_error(),
                "{path} {shown:?}: {} {}",
                a.status,
                a.text()
            );
            let v = a.json();
            assert!(v["error"].is_string() && v["error_type"].is_string(), "{v}");
        }
    }
    assert_eq!(predict(&s.app, SPORT).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_with_retry_after() {
    let s = server(ServeConfig {
        queue_capacity: 1,
        max_batch_texts: 1,
        ..ServeConfig::default()
    })
    .await;
    s.gate.set(false);
    let calls = s.gate.calls.load(std::sync::atomic::Ordering::SeqCst);
    let app = s.app.clone();
    let held = tokio::spawn(async move { predict(&app, SPORT).await });
    let gate = Arc::clone(&s.gate);
    wait_until("the model to be busy", async || {
        gate.calls.load(std::sync::atomic::Ordering::SeqCst) > calls
    })
    .await;
    let a = predict(&s.app, "another text entirely").await;
    assert_error(&a, 503, "overloaded", "at capacity");
    assert_eq!(a.headers["retry-after"], "1");
    s.gate.set(true);
    assert_eq!(held.await.unwrap().status, StatusCode::OK);
    assert_eq!(
        predict(&s.app, "another text entirely").await.status,
        StatusCode::OK
    );
    assert!(
        get(&s.app, "/metrics")
            .await
            .text()
            .contains("taxon_queue_rejections_total 1")
    );
}
