//! Issue 10: regressions for the holes an adversarial review found (request bodies, the token
//! cache, the size of a 400), end to end against a running gateway.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use support::{Harness, edit};

const ORDER: &str = "/v1/orders/O2025010100000001";

#[tokio::test]
async fn get_body_is_refused_and_never_reaches_the_upstream() {
    let h = Harness::start().await;
    let erp = h.keys.erp_key.clone();
    // What a desynchronising client would send: a whole second request as the GET's body.
    let smuggled = "GET /api/orders/O2025010100000002 HTTP/1.1\r\nHost: x\r\n\r\n";
    for (id, body) in [
        ("get-body-1", reqwest::Body::from(smuggled)),
        ("get-body-2", {
            let chunks: Vec<Result<&'static str, std::io::Error>> = vec![Ok("GET /api/"), Ok("x")];
            reqwest::Body::wrap_stream(futures_stream(chunks))
        }),
    ] {
        let response = h
            .client
            .get(h.url(ORDER))
            .header("x-api-key", &erp)
            .header("x-request-id", id)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{id}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(
            problem["type"],
            "https://ordergate.dev/problems/bad_request"
        );
        let record = h.record_of(id).await;
        assert_eq!(record["detail"], "body_not_allowed");
    }
    assert_eq!(h.upstream.count(), 0, "no byte of a GET body went upstream");
    // An empty body is no body.
    let response = h
        .client
        .get(h.url(ORDER))
        .header("x-api-key", &erp)
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(h.upstream.requests()[0].body.is_empty());
}

#[tokio::test]
async fn a_declared_body_goes_upstream_only_as_validated() {
    let h = Harness::start().await;
    let erp = h.keys.erp_key.clone();
    let url = h.url(&format!("{ORDER}/notes"));
    // The route declares text/plain: JSON, a binary body or a foreign parameter are refused.
    for (ct, body, id) in [
        ("application/json", "{\"note\":1}", "note-json"),
        ("text/plain", "nul\u{0}byte", "note-nul"),
        ("text/plain; boundary=evil", "hi", "note-param"),
    ] {
        let response = h
            .client
            .post(&url)
            .header("x-api-key", &erp)
            .header("content-type", ct)
            .header("x-request-id", id)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{ct}");
        assert_eq!(h.record_of(id).await["detail"], "body_invalid");
    }
    assert_eq!(h.upstream.count(), 0);
    let response = h
        .client
        .post(&url)
        .header("x-api-key", &erp)
        .header("content-type", "TEXT/plain; charset=UTF-8")
        .body("call before noon")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = &h.upstream.requests()[0];
    assert_eq!(seen.body, b"call before noon");
    assert_eq!(
        seen.headers["content-type"], "text/plain",
        "rebuilt, not copied"
    );
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test]
async fn a_fractional_exp_ends_the_cached_token_too() {
    let h = Harness::with(|p| edit(p, &[("leeway = \"30s\"", "leeway = \"0s\"")])).await;
    // Valid now (for 1.5 s at least, so a slow first request is still in time), cached on first
    // use, expired two or three seconds later.
    let exp = now_secs().floor() + 2.5;
    let token = h.token(
        "alice",
        &["customer"],
        &[("customer_id", json!("C0000001")), ("exp", json!(exp))],
    );
    let path = "/v1/customers/C0000001/orders?start_date=2025-01-01&end_date=2025-01-31";
    let bearer = format!("Bearer {token}");
    let first = h.get(path, &[("authorization", &bearer)]).await;
    assert_eq!(first.status(), 200);
    // Wait for the clock (there is no event to wait for): until exp's whole second has passed.
    let deadline = exp.floor() + 1.05;
    while now_secs() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = h
        .get(
            path,
            &[("authorization", &bearer), ("x-request-id", "late")],
        )
        .await;
    assert_eq!(second.status(), 401, "the cache must not outlive exp");
    assert_eq!(h.record_of("late").await["detail"], "token_expired");
}

/// The 400 for a query of `pieces` unknown parameters besides the required ones: its problem
/// document, after checking the answer is small.
async fn bounded_400(h: &Harness, pieces: usize) -> Value {
    let erp = h.keys.erp_key.clone();
    let query: String = (0..pieces).map(|i| format!("u{i}=1&")).collect();
    let response = h
        .get(
            &format!(
                "/v1/customers/C0000001/orders?{query}start_date=2025-01-01&end_date=2025-01-31"
            ),
            &[("x-api-key", &erp)],
        )
        .await;
    assert_eq!(response.status(), 400);
    let body = response.bytes().await.unwrap();
    assert!(body.len() < 4096, "{} bytes", body.len());
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test]
async fn a_400_answer_is_bounded_whatever_the_query() {
    let h = Harness::start().await;
    // 600 pieces are more than a query may have: one violation says so, whatever they are.
    let problem = bounded_400(&h, 600).await;
    let errors = problem["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e["reason"] == "too many parameters (at most 64)"),
        "{problem}"
    );
    // Under the piece limit, the list itself is bounded.
    let problem = bounded_400(&h, 60).await;
    let errors = problem["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 20);
    assert_eq!(errors[19]["reason"], "41 more violations not listed");
}

fn futures_stream<T: Unpin>(items: Vec<T>) -> impl futures_core::Stream<Item = T> + Unpin {
    struct Items<T>(std::collections::VecDeque<T>);
    impl<T: Unpin> futures_core::Stream for Items<T> {
        type Item = T;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<T>> {
            std::task::Poll::Ready(self.0.pop_front())
        }
    }
    Items(items.into())
}
