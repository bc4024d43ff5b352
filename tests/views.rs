//! Issue 10, items 5 and 6: views fail closed on the answer's shape, and nothing in the upstream
//! response headers bypasses them (allow-listed headers, no validators of the unfiltered body, no
//! conditional requests on routes with views).

mod support;

use serde_json::{Value, json};
use support::{Harness, Reply};

const ORDERS: &str = "/v1/customers/C0000001/orders?start_date=2025-01-01&end_date=2025-01-31";
const DETAIL: &str = "/v1/orders/O2025010100000001";
const RAW: &str = "/v1/raw/orders/O2025010100000001";
const PHONE: &str = "13812345678";
const CARD: &str = "6222021234567890128";

/// Headers an order service might send that must never reach a caller.
const LEAKY: [(&str, &str); 10] = [
    ("set-cookie", "JSESSIONID=abc; Path=/"),
    (
        "link",
        "</api/customers/C0000001?phone=13812345678>; rel=customer",
    ),
    (
        "content-location",
        "/api/orders/O2025010100000001?phone=13812345678",
    ),
    ("x-customer-phone", "13812345678"),
    ("x-debug-sql", "select * from orders"),
    (
        "digest",
        "sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",
    ),
    (
        "content-digest",
        "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
    ),
    (
        "repr-digest",
        "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
    ),
    ("content-md5", "Q2hlY2sgSW50ZWdyaXR5IQ=="),
    ("server", "OrderService/2.3"),
];

const VALIDATORS: [(&str, &str); 2] = [
    ("etag", "\"sha1-of-the-full-body\""),
    ("last-modified", "Wed, 02 Dec 2026 00:00:00 GMT"),
];

fn agent(h: &Harness) -> String {
    format!("Bearer {}", h.token("agent", &["customer_service"], &[]))
}

fn upstream_reply(status: u16, body: String) -> Reply {
    let mut headers = vec![
        ("content-type", "application/json"),
        ("content-language", "zh-CN"),
    ];
    headers.extend(LEAKY);
    headers.extend(VALIDATORS);
    Reply::Headers(status, headers, body)
}

#[tokio::test]
async fn upstream_response_headers_outside_the_allow_list_never_reach_the_caller() {
    let h = Harness::start().await;
    let order = support::sample_order("O2025010100000001").to_string();
    // A route with views: neither leaky headers nor validators of the unfiltered body.
    h.upstream.queue([upstream_reply(200, order.clone())]);
    let viewed = h.get(DETAIL, &[("x-api-key", &h.keys.logistics_key)]).await;
    assert_eq!(viewed.status(), 200);
    let headers = viewed.headers().clone();
    for (name, _) in LEAKY.iter().chain(&VALIDATORS) {
        assert!(headers.get(*name).is_none(), "{name} reached the caller");
    }
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["content-language"], "zh-CN");
    let length: usize = headers["content-length"].to_str().unwrap().parse().unwrap();
    let body = viewed.bytes().await.unwrap();
    assert_eq!(
        length,
        body.len(),
        "the filtered body's length, not the upstream's"
    );
    assert!(length < order.len());
    // A route without views: the body is the upstream's, so its validators may pass; nothing else.
    h.upstream.queue([upstream_reply(200, order.clone())]);
    let raw = h.get(RAW, &[("x-api-key", &h.keys.erp_key)]).await;
    assert_eq!(raw.status(), 200);
    for (name, _) in &LEAKY {
        assert!(
            raw.headers().get(*name).is_none(),
            "{name} reached the caller"
        );
    }
    for (name, value) in &VALIDATORS {
        assert_eq!(raw.headers()[*name], *value);
    }
    // Error answers are shaped the same way.
    h.upstream.queue([upstream_reply(
        404,
        json!({"title": "not found"}).to_string(),
    )]);
    let missing = h.get(DETAIL, &[("x-api-key", &h.keys.logistics_key)]).await;
    assert_eq!(missing.status(), 404);
    for (name, _) in LEAKY.iter().chain(&VALIDATORS) {
        assert!(missing.headers().get(*name).is_none(), "{name} on a 404");
    }
}

#[tokio::test]
async fn conditional_headers_are_not_forwarded_on_routes_with_views() {
    let h = Harness::start().await;
    let conditional = [
        ("if-none-match", "\"guess\""),
        ("if-modified-since", "Wed, 02 Dec 2026 00:00:00 GMT"),
        ("if-match", "\"guess\""),
        ("if-unmodified-since", "Wed, 02 Dec 2026 00:00:00 GMT"),
        ("if-range", "\"guess\""),
        ("range", "bytes=0-10"),
    ];
    let mut with_key = vec![("x-api-key", h.keys.logistics_key.as_str())];
    with_key.extend(conditional);
    assert_eq!(h.get(DETAIL, &with_key).await.status(), 200);
    let sent = h.upstream.requests().pop().unwrap();
    for (name, _) in &conditional {
        assert!(sent.headers.get(*name).is_none(), "{name} went upstream");
    }
    let mut with_agent = vec![("authorization", agent(&h))];
    with_agent.extend(conditional.iter().map(|(k, v)| (*k, v.to_string())));
    let pairs: Vec<(&str, &str)> = with_agent.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(h.get(ORDERS, &pairs).await.status(), 200);
    let sent = h.upstream.requests().pop().unwrap();
    assert!(sent.headers.get("if-none-match").is_none());
    // Without views a conditional request still works end to end.
    h.upstream
        .queue([Reply::Headers(304, VALIDATORS.to_vec(), String::new())]);
    let mut with_erp = vec![("x-api-key", h.keys.erp_key.as_str())];
    with_erp.extend(conditional);
    let not_modified = h.get(RAW, &with_erp).await;
    assert_eq!(not_modified.status(), 304);
    assert_eq!(not_modified.headers()["etag"], VALIDATORS[0].1);
    let sent = h.upstream.requests().pop().unwrap();
    assert_eq!(sent.headers["if-none-match"], "\"guess\"");
    assert_eq!(
        sent.headers["if-modified-since"],
        "Wed, 02 Dec 2026 00:00:00 GMT"
    );
    for name in ["if-match", "if-unmodified-since", "if-range", "range"] {
        assert!(sent.headers.get(name).is_none(), "{name} went upstream");
    }
}

#[tokio::test]
async fn a_304_on_a_route_with_views_carries_no_validator_or_length() {
    let h = Harness::start().await;
    let mut headers = VALIDATORS.to_vec();
    headers.extend(LEAKY);
    h.upstream
        .queue([Reply::Headers(304, headers, String::new())]);
    let response = h.get(DETAIL, &[("x-api-key", &h.keys.logistics_key)]).await;
    assert_eq!(response.status(), 304);
    for (name, _) in LEAKY.iter().chain(&VALIDATORS) {
        assert!(response.headers().get(*name).is_none(), "{name} on a 304");
    }
    assert!(
        response.headers().get("content-length").is_none(),
        "the unfiltered body's length"
    );
}

#[tokio::test]
async fn an_error_answer_carrying_the_same_fields_is_filtered() {
    let h = Harness::start().await;
    h.upstream.queue([Reply::Json(
        409,
        json!({"type": "about:blank", "title": "conflict", "status": 409,
               "customer": {"Phone": PHONE, "email": "zhang.san@example.com"},
               "payment": {"card_number": CARD},
               "errors": [{"order": {"payment": CARD}}]}),
    )]);
    let response = h.get(ORDERS, &[("authorization", &agent(&h))]).await;
    assert_eq!(response.status(), 409);
    let body = response.text().await.unwrap();
    assert!(!body.contains(PHONE) && !body.contains(CARD), "{body}");
    let problem: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["customer"]["Phone"], "138****5678");
    assert_eq!(problem["customer"]["email"], "z***@example.com");
    assert_eq!(problem["title"], "conflict");
}

#[tokio::test]
async fn a_reshaped_answer_is_filtered_for_each_persona() {
    let h = Harness::start().await;
    // Customer service: orders as an object keyed by id, keys in another case.
    h.upstream.queue([Reply::Json(
        200,
        json!({"orders": {"O1": {"order_id": "O1", "Payment": {"card_number": CARD},
                                 "Customer": {"PHONE": PHONE}}},
               "next_cursor": "abc"}),
    )]);
    let body = h
        .get(ORDERS, &[("authorization", &agent(&h))])
        .await
        .text()
        .await
        .unwrap();
    assert!(!body.contains(PHONE) && !body.contains(CARD), "{body}");
    assert!(body.contains("138****5678"), "{body}");
    // Logistics: the allowed `shipping` arriving as an array still has its phone masked.
    h.upstream.queue([Reply::Json(
        200,
        json!({"order_id": "O1", "status": "paid",
               "shipping": [{"phone": "13987654321", "carrier": "SF Express"}]}),
    )]);
    let shipped: Value = h
        .get(DETAIL, &[("x-api-key", &h.keys.logistics_key)])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        shipped,
        json!({"order_id": "O1", "status": "paid",
               "shipping": [{"phone": "139****4321", "carrier": "SF Express"}]})
    );
}
