//! Every refusal the pipeline makes before the proxy, driven through the gateway's tower service
//! with `ServiceExt::oneshot`: no listener, no TLS, no client. Each row pins the status, the
//! problem `type`, and the audit record's reason and detail; the fake order service must never
//! be reached.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use ordergate::context::ConnInfo;
use ordergate::gateway::Gateway;
use ordergate::pipeline::service::GatewayService;
use serde_json::{Value, json};
use support::{FakeUpstream, Keys};
use tempfile::TempDir;
use tower::ServiceExt;

/// A gateway built from the test policy, without any listener.
struct Bare {
    dir: TempDir,
    keys: Keys,
    upstream: Arc<FakeUpstream>,
    gateway: Arc<Gateway>,
}

impl Bare {
    async fn start(change: impl FnOnce(&str) -> String) -> Self {
        support::install();
        let keys = Keys::new();
        let upstream = FakeUpstream::start().await;
        let dir = tempfile::tempdir().unwrap();
        support::write_files(dir.path(), &keys);
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, change(&support::base_policy(&keys, upstream.addr))).unwrap();
        let policy = ordergate::policy::load(&path).unwrap();
        let gateway = Gateway::start(policy, &path).await.unwrap();
        Self {
            dir,
            keys,
            upstream,
            gateway,
        }
    }

    /// The service of one TLS 1.3 connection from `127.0.0.<host>`.
    fn service(&self, host: u8) -> GatewayService {
        let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)), 40_000);
        let conn = ConnInfo {
            tls_version: Some("TLSv1.3"),
            ..ConnInfo::plain(peer)
        };
        GatewayService::new(self.gateway.clone(), Arc::new(conn))
    }

    fn alice(&self) -> String {
        let token = support::token_with(
            &self.keys.es256,
            "alice",
            &["customer"],
            &[("customer_id", json!("C0000001"))],
        );
        format!("Bearer {token}")
    }

    /// Sends one request; returns the status, the `Allow` header and the body as JSON.
    async fn send(&self, host: u8, request: http::Request<Full<Bytes>>) -> (u16, Value) {
        let response = self.service(host).oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Waits (bounded) for the record of `request_id`.
    async fn record_of(&self, request_id: &str) -> Value {
        let path = self.dir.path().join("audit/audit.jsonl");
        for _ in 0..500 {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if let Some(record) = text
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .find(|r| r["request_id"] == request_id)
            {
                return record;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no audit record for {request_id}");
    }
}

/// One row: what is sent, and what must come back and be recorded.
struct Row {
    id: &'static str,
    method: &'static str,
    target: String,
    headers: Vec<(&'static str, String)>,
    body: &'static [u8],
    status: u16,
    reason: &'static str,
    detail: Option<&'static str>,
}

fn row(id: &'static str, method: &'static str, target: impl Into<String>) -> Row {
    Row {
        id,
        method,
        target: target.into(),
        headers: Vec::new(),
        body: b"",
        status: 0,
        reason: "",
        detail: None,
    }
}

impl Row {
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn body(mut self, body: &'static [u8]) -> Self {
        self.body = body;
        self
    }

    fn expect(mut self, status: u16, reason: &'static str, detail: Option<&'static str>) -> Self {
        self.status = status;
        self.reason = reason;
        self.detail = detail;
        self
    }

    fn request(&self) -> http::Request<Full<Bytes>> {
        let mut builder = http::Request::builder()
            .method(self.method)
            .uri(self.target.as_str())
            .header("x-request-id", self.id);
        for (name, value) in &self.headers {
            builder = builder.header(*name, value);
        }
        builder
            .body(Full::new(Bytes::from_static(self.body)))
            .unwrap()
    }
}

const RANGE: &str = "start_date=2026-01-01&end_date=2026-01-31";

#[tokio::test]
async fn every_refusal_before_the_proxy_is_answered_and_recorded_without_a_socket() {
    let g = Bare::start(|p| p.to_owned()).await;
    let alice = g.alice();
    let erp = g.keys.erp_key.clone();
    let own = format!("/v1/customers/C0000001/orders?{RANGE}");
    let other = format!("/v1/customers/C0000002/orders?{RANGE}");
    let too_big = format!("{own}&page_size=1000");
    let unknown = format!("{own}&sort=desc");
    let key_in_query = format!("{own}&api_key=x");
    let prefix_in_query = format!("{own}&cursor=ogk_abc");
    let rows = vec![
        row("no-route", "GET", "/v2/orders").expect(404, "not_found", None),
        row("admin-probe", "GET", "/admin/config").expect(404, "not_found", None),
        row("wrong-method", "DELETE", "/v1/orders/O2025010100000001").expect(
            405,
            "method_not_allowed",
            None,
        ),
        row(
            "dot-segment",
            "GET",
            "/v1/orders/../raw/orders/O2025010100000001",
        )
        .expect(400, "bad_request", Some("path_dot_segment")),
        row("encoded-dot", "GET", "/v1/orders/%2e%2e/raw").expect(
            400,
            "bad_request",
            Some("path_dot_segment"),
        ),
        row("encoded-slash", "GET", "/v1/orders/O2025%2F0101").expect(
            400,
            "bad_request",
            Some("path_encoded_separator"),
        ),
        row("empty-segment", "GET", "/v1//orders/O2025010100000001").expect(
            400,
            "bad_request",
            Some("path_empty_segment"),
        ),
        row("bad-escape", "GET", "/v1/orders/O2025%zz").expect(
            400,
            "bad_request",
            Some("path_bad_encoding"),
        ),
        row("two-credentials", "GET", own.clone())
            .header("authorization", alice.clone())
            .header("x-api-key", erp.clone())
            .expect(400, "bad_request", Some("two_credentials")),
        row("key-in-query", "GET", key_in_query)
            .header("authorization", alice.clone())
            .expect(400, "bad_request", Some("api_key_in_query")),
        row("key-prefix-in-query", "GET", prefix_in_query)
            .header("authorization", alice.clone())
            .expect(400, "bad_request", Some("api_key_in_query")),
        row("no-credential", "GET", own.clone()).expect(
            401,
            "unauthenticated",
            Some("missing_credential"),
        ),
        row("forged-token", "GET", own.clone())
            .header("authorization", format!("{}x", alice))
            .expect(401, "unauthenticated", Some("bad_signature")),
        row("unknown-key", "GET", own.clone())
            .header("x-api-key", "ogk_not_a_real_key")
            .expect(401, "unauthenticated", Some("unknown_api_key")),
        row("no-scope", "GET", "/v1/orders/O2025010100000001")
            .header("authorization", alice.clone())
            .expect(403, "forbidden", Some("scope_missing")),
        row("not-the-owner", "GET", other)
            .header("authorization", alice.clone())
            .expect(403, "forbidden", Some("owner_mismatch")),
        row("page-too-big", "GET", too_big)
            .header("authorization", alice.clone())
            .expect(400, "invalid_parameter", Some("invalid_value")),
        row("unknown-param", "GET", unknown)
            .header("authorization", alice.clone())
            .expect(400, "invalid_parameter", Some("unknown_parameter")),
        row("missing-param", "GET", "/v1/customers/C0000001/orders")
            .header("authorization", alice.clone())
            .expect(400, "invalid_parameter", Some("missing_parameter")),
        row("get-with-body", "GET", own.clone())
            .header("authorization", alice.clone())
            .body(b"{}")
            .expect(400, "bad_request", Some("body_not_allowed")),
        row("body-too-large", "GET", own.clone())
            .header("authorization", alice.clone())
            .body(&[b'a'; 2048])
            .expect(413, "payload_too_large", None),
        row("huge-headers", "GET", own.clone())
            .header("authorization", alice.clone())
            .header("x-padding", "p".repeat(9 * 1024))
            .expect(431, "bad_request", Some("headers_too_large")),
    ];
    for (i, row) in rows.iter().enumerate() {
        // Each row from its own address: no bucket or abuse count carries over between rows.
        let host = u8::try_from(i + 10).unwrap();
        let (status, problem) = g.send(host, row.request()).await;
        assert_eq!(status, row.status, "{}: {problem}", row.id);
        assert_eq!(
            problem["type"],
            format!("https://ordergate.dev/problems/{}", row.reason),
            "{}",
            row.id
        );
        assert_eq!(problem["instance"], row.id, "{}", row.id);
        let record = g.record_of(row.id).await;
        assert_eq!(record["status"], row.status, "{}: {record}", row.id);
        assert_eq!(record["reason"], row.reason, "{}: {record}", row.id);
        assert_eq!(record["decision"], "deny", "{}: {record}", row.id);
        assert_eq!(record["detail"], json!(row.detail), "{}: {record}", row.id);
        assert_eq!(record["tls"]["version"], "TLSv1.3", "{}: {record}", row.id);
    }
    assert_eq!(g.upstream.count(), 0, "a refusal reached the order service");
}

#[tokio::test]
async fn failed_authentication_from_one_address_is_limited_without_a_socket() {
    // The per-IP bucket for failed authentication holds 10, refilled too slowly to matter.
    let g = Bare::start(|p| {
        support::edit(
            p,
            &[(
                "per_ip_unauthenticated = { rate = \"30/min\", burst = 10 }",
                "per_ip_unauthenticated = { rate = \"1/min\", burst = 10 }",
            )],
        )
    })
    .await;
    let own = format!("/v1/customers/C0000001/orders?{RANGE}");
    let attempt = |n: usize| {
        http::Request::get(own.as_str())
            .header("x-request-id", format!("guess-{n}"))
            .header("x-api-key", format!("ogk_guess_{n}"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    for n in 0..10 {
        let (status, _) = g.send(7, attempt(n)).await;
        assert_eq!(status, 401, "guess {n}");
    }
    let (status, problem) = g.send(7, attempt(10)).await;
    assert_eq!(status, 429, "{problem}");
    assert_eq!(
        problem["type"],
        "https://ordergate.dev/problems/rate_limited"
    );
    let record = g.record_of("guess-10").await;
    assert_eq!(record["reason"], "rate_limited", "{record}");
    assert_eq!(record["detail"], "failed_auth_ip_limit", "{record}");
    // Another address is not charged for these guesses.
    let (status, _) = g.send(8, attempt(11)).await;
    assert_eq!(status, 401);
    assert_eq!(g.upstream.count(), 0);
}

#[tokio::test]
async fn an_address_with_too_many_denials_is_frozen_without_a_socket() {
    let g = Bare::start(|p| support::edit(p, &[("max_denials = 1000", "max_denials = 3")])).await;
    let own = format!("/v1/customers/C0000001/orders?{RANGE}");
    let denied = |id: String| {
        http::Request::get(own.as_str())
            .header("x-request-id", id)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let mut frozen_after = None;
    for n in 0..6 {
        let (status, _) = g.send(9, denied(format!("denied-{n}"))).await;
        if status == 403 {
            frozen_after = Some(n);
            break;
        }
        assert_eq!(status, 401, "denial {n}");
    }
    let n = frozen_after.expect("the address was never frozen");
    assert!(n >= 3, "frozen after only {n} denials");
    let record = g.record_of(&format!("denied-{n}")).await;
    assert_eq!(record["reason"], "frozen", "{record}");
    assert_eq!(record["detail"], "ip_frozen", "{record}");
    // Even a valid credential from that address is refused now.
    let request = http::Request::get(own.as_str())
        .header("authorization", g.alice())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, problem) = g.send(9, request).await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["type"], "https://ordergate.dev/problems/frozen");
    assert_eq!(g.upstream.count(), 0);
}

/// A request body that panics when read: the pipeline reads the body at the validation stage.
struct Exploding;

impl http_body::Body for Exploding {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        panic!("exploding body (secret-in-panic-message)");
    }
}

#[tokio::test]
async fn a_panic_inside_the_service_is_a_500_problem_with_its_record() {
    let g = Bare::start(|p| p.to_owned()).await;
    let stack = ordergate::pipeline::service::layered(g.service(5));
    let request = http::Request::get(format!("/v1/customers/C0000001/orders?{RANGE}"))
        .header("x-request-id", "exploding")
        .header("authorization", g.alice())
        .body(Exploding)
        .unwrap();
    let response = stack.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(response.headers()["x-request-id"], "exploding");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let problem: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        problem["type"],
        "https://ordergate.dev/problems/internal_error"
    );
    assert!(!String::from_utf8_lossy(&body).contains("secret"));
    let record = g.record_of("exploding").await;
    assert_eq!(record["status"], 500, "{record}");
    assert_eq!(record["reason"], "internal_error", "{record}");
    assert_eq!(record["detail"], "panic", "{record}");
    assert_eq!(record["route"], "customer-orders", "{record}");
    assert_eq!(record["principal"]["id"], "alice", "{record}");
    assert_eq!(g.upstream.count(), 0);
    // Without a client id (or with one the gateway refuses), the panic's answer carries the id
    // of its record all the same.
    for sent in [None, Some("bad id with spaces")] {
        let mut request = http::Request::get(format!("/v1/customers/C0000001/orders?{RANGE}"))
            .header("authorization", g.alice());
        if let Some(sent) = sent {
            request = request.header("x-request-id", sent);
        }
        let response = stack
            .clone()
            .oneshot(request.body(Exploding).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_ne!(Some(id.as_str()), sent);
        let record = g.record_of(&id).await;
        assert_eq!(record["detail"], "panic", "{record}");
    }
    // The gateway goes on serving.
    let (status, _) = g
        .send(
            5,
            http::Request::get("/v2/none")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_embedded_service_without_a_client_address_fails_closed() {
    let g = Bare::start(|p| p.to_owned()).await;
    let embedded = GatewayService::embedded(g.gateway.clone());
    let request = || {
        http::Request::get(format!("/v1/customers/C0000001/orders?{RANGE}"))
            .header("authorization", g.alice())
            .header("x-request-id", "no-address")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let response = embedded.clone().oneshot(request()).await.unwrap();
    assert_eq!(response.status(), 500);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let problem: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        problem["type"],
        "https://ordergate.dev/problems/internal_error"
    );
    assert_eq!(g.upstream.count(), 0);
    // With axum's connection info the same request is served, and recorded with that address.
    let mut request = request();
    let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 77)), 50_000);
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    let response = embedded.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    drop(response.into_body().collect().await.unwrap());
    assert_eq!(g.upstream.count(), 1);
    let record = g.record_of("no-address").await;
    assert_eq!(record["client_ip"], "127.0.0.77", "{record}");
    assert_eq!(record["tls"]["version"], Value::Null, "{record}");
}

#[tokio::test]
async fn a_request_dropped_before_its_answer_is_still_recorded() {
    let g = Bare::start(|p| p.to_owned()).await;
    g.upstream.set_default(support::Reply::Hang);
    let request = http::Request::get(format!("/v1/customers/C0000001/orders?{RANGE}"))
        .header("authorization", g.alice())
        .header("x-request-id", "left-early")
        .body(Full::new(Bytes::new()))
        .unwrap();
    // The caller gives up while the order service hangs: the pipeline future is dropped.
    let call = g.service(6).oneshot(request);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), call)
            .await
            .is_err()
    );
    let record = g.record_of("left-early").await;
    assert_eq!(record["reason"], "internal_error", "{record}");
    assert_eq!(record["detail"], "abandoned", "{record}");
    assert_eq!(record["route"], "customer-orders", "{record}");
}
