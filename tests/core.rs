//! Issue #2: the front door, routing, proxying, errors and operations, against a running gateway
//! over real TLS.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{Harness, Reply, edit, raw_request};

const RANGE: &str = "start_date=2025-01-01&end_date=2025-01-31";

async fn problem(response: reqwest::Response) -> (u16, Value, reqwest::header::HeaderMap) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    assert_eq!(
        headers["content-type"], "application/problem+json",
        "status {status}"
    );
    (status, response.json().await.unwrap(), headers)
}

#[tokio::test]
async fn proxies_a_permitted_request_with_a_rebuilt_query_and_clean_headers() {
    let h = Harness::start().await;
    let response = h
        .get(
            "/v1/customers/C0000001/orders?end_date=2025-01-31&start_date=2025-01-01",
            &[
                ("authorization", &h.alice()),
                ("cookie", "session=secret"),
                ("x-auth-subject", "admin"),
                ("x-request-id", "trace-42"),
                ("accept", "application/json"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["x-request-id"], "trace-42");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        headers["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age=")
    );
    assert!(headers.get("server").is_none() && headers.get("x-powered-by").is_none());
    assert_eq!(headers["ratelimit-limit"], "20");
    assert_eq!(headers["ratelimit-remaining"], "19");
    let seen = h.upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].target,
        "/api/orders?customer_id=C0000001&start_date=2025-01-01&end_date=2025-01-31&page_size=20"
    );
    let up = &seen[0].headers;
    for gone in ["authorization", "cookie", "x-api-key"] {
        assert!(up.get(gone).is_none(), "{gone} reached the upstream");
    }
    assert_eq!(
        up["x-auth-subject"], "alice",
        "the client's X-Auth-Subject was replaced"
    );
    assert_eq!(up["x-auth-kind"], "jwt");
    assert_eq!(up["x-auth-scopes"], "orders:read");
    assert_eq!(up["x-forwarded-for"], "127.0.0.1");
    assert_eq!(up["x-forwarded-proto"], "https");
    assert_eq!(up["x-request-id"], "trace-42");
    assert_eq!(up["accept"], "application/json");
}

#[tokio::test]
async fn speaks_http2_and_http11_over_tls_12_and_13() {
    let h = Harness::start().await;
    let auth = h.alice();
    let path = format!("/v1/customers/C0000001/orders?{RANGE}");
    let h2 = h
        .client
        .get(h.url(&path))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(h2.version(), reqwest::Version::HTTP_2);
    assert_eq!(h2.status(), 200);
    let h1 = support::client(&h.keys, None, false)
        .get(h.url(&path))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(h1.version(), reqwest::Version::HTTP_11);
    assert_eq!(h1.status(), 200);
    // A TLS 1.2-only client is served under min_version = "1.2" ...
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(h.keys.ca.pem().as_bytes()).unwrap())
        .unwrap();
    let tls12 = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let c12 = reqwest::Client::builder()
        .tls_backend_preconfigured(tls12.clone())
        .build()
        .unwrap();
    assert_eq!(
        c12.get(h.url(&path))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // ... and refused under min_version = "1.3".
    let strict =
        Harness::with(|p| edit(p, &[("min_version = \"1.2\"", "min_version = \"1.3\"")])).await;
    let c12 = reqwest::Client::builder()
        .tls_backend_preconfigured(tls12)
        .build()
        .unwrap();
    assert!(
        c12.get(strict.url(&path)).send().await.is_err(),
        "TLS 1.2 handshake must fail"
    );
    // Plain HTTP to the TLS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}{path}", h.addr.port()))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
}

use rustls_pki_types::pem::PemObject as _;

#[tokio::test]
async fn routing_refuses_unknown_paths_methods_and_unsafe_paths_without_calling_upstream() {
    let h = Harness::start().await;
    let auth = h.alice();
    let (status, body, _) = problem(h.get("/v1/nothing", &[("authorization", &auth)]).await).await;
    assert_eq!(
        (status, body["type"].as_str().unwrap()),
        (404, "https://ordergate.dev/problems/not_found")
    );
    let response = h
        .client
        .post(h.url("/v1/orders/O2025010100000001"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    let (status, body, headers) = problem(response).await;
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "GET");
    assert_eq!(body["instance"], headers["x-request-id"].to_str().unwrap());
    for path in [
        "/v1/orders/../customers/C0000001/orders",
        "/v1/orders/%2e%2e",
        "/v1//orders/O2025010100000001",
        "/v1/orders/O2025%2F0101",
        "/v1/orders/O2025%5C0101",
        "/v1/orders/O2025%C0%AF",
        "/v1/orders/O2025%00",
        "/v1/orders/O2025%zz",
    ] {
        let (status, body) = raw_request(
            &h,
            &format!("GET {path} HTTP/1.1"),
            &[("authorization", &auth)],
        )
        .await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("problems/bad_request"), "{path}: {body}");
    }
    assert_eq!(
        h.upstream.count(),
        0,
        "nothing unmatched reaches the upstream"
    );
}

#[tokio::test]
async fn request_ids_are_kept_when_valid_and_made_otherwise() {
    let h = Harness::start().await;
    let kept = h
        .get("/v1/nothing", &[("x-request-id", "abc.DEF_123-x")])
        .await;
    assert_eq!(kept.headers()["x-request-id"], "abc.DEF_123-x");
    for bad in ["has space", &"x".repeat(65), "semi;colon"] {
        let made = h.get("/v1/nothing", &[("x-request-id", bad)]).await;
        let id = made.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(id.starts_with("og-") && id != bad);
        let body: Value = made.json().await.unwrap();
        assert_eq!(body["instance"], id.as_str());
    }
}

#[tokio::test]
async fn limits_headers_bodies_and_time() {
    let h = Harness::start().await;
    let erp = h.keys.erp_key.clone();
    // Oversized headers: 431 (problem+json when just over, a bare 431 far over).
    let big = "x".repeat(9 * 1024);
    let (status, _) = raw_request(
        &h,
        "GET /v1/orders/O2025010100000001 HTTP/1.1",
        &[("x-padding", &big)],
    )
    .await;
    assert_eq!(status, 431);
    // Bodies over max_request_body: 413, before the upstream sees anything.
    let url = h.url("/v1/orders/O2025010100000001/notes");
    let response = h
        .client
        .post(&url)
        .header("x-api-key", &erp)
        .body(vec![b'a'; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let chunked =
        reqwest::Body::wrap_stream(futures_util_stream(vec![vec![b'a'; 700], vec![b'b'; 700]]));
    let response = h
        .client
        .post(&url)
        .header("x-api-key", &erp)
        .body(chunked)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        413,
        "a streamed body is cut off at the limit too"
    );
    assert_eq!(h.upstream.count(), 0);
    // A body within the limit is forwarded as sent.
    let response = h
        .client
        .post(&url)
        .header("x-api-key", &erp)
        .header("content-type", "text/plain")
        .body("call before noon")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = h.upstream.requests();
    assert_eq!(seen[0].body, b"call before noon");
    assert_eq!(seen[0].headers["content-type"], "text/plain");
}

fn futures_util_stream(
    chunks: Vec<Vec<u8>>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    struct S(std::collections::VecDeque<Vec<u8>>);
    impl futures_core::Stream for S {
        type Item = Result<Vec<u8>, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.pop_front().map(Ok))
        }
    }
    S(chunks.into())
}

#[tokio::test]
async fn slow_clients_are_dropped_after_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = Harness::with(|p| {
        edit(
            p,
            &[(
                "header_read_timeout = \"2s\"",
                "header_read_timeout = \"300ms\"",
            )],
        )
    })
    .await;
    let mut stream = support::raw_tls(&h).await;
    stream
        .write_all(b"GET /v1/orders/O2025010100000001 HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "the slow client was not cut off");
    // A client that never finishes the TLS handshake is cut off too.
    let mut tcp = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    tcp.write_all(b"\x16\x03\x01").await.unwrap();
    let mut buf = [0u8; 16];
    let ended = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await;
    assert!(
        matches!(ended, Ok(Ok(0)) | Ok(Err(_))),
        "half a handshake was not cut off: {ended:?}"
    );
}

#[tokio::test]
async fn over_max_in_flight_answers_503_at_once() {
    let h = Harness::with(|p| {
        edit(
            p,
            &[
                ("max_in_flight = 64", "max_in_flight = 1"),
                ("timeout = \"1s\"", "timeout = \"5s\""),
            ],
        )
    })
    .await;
    h.upstream.queue([Reply::Delay(3000)]);
    let erp = h.keys.erp_key.clone();
    let first = {
        let client = h.client.clone();
        let url = h.url("/v1/orders/O2025010100000001");
        let erp = erp.clone();
        tokio::spawn(async move {
            client
                .get(url)
                .header("x-api-key", erp)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    // Wait until the first request is at the upstream (a readiness signal, not a guess).
    wait_at_upstream(&h).await;
    let started = std::time::Instant::now();
    let (status, body, headers) = problem(
        h.get("/v1/orders/O2025010100000001", &[("x-api-key", &erp)])
            .await,
    )
    .await;
    assert_eq!(
        (status, body["type"].as_str().unwrap()),
        (503, "https://ordergate.dev/problems/overloaded")
    );
    assert!(headers.contains_key("retry-after"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once, not queued behind the first request's 3 s"
    );
    assert_eq!(first.await.unwrap(), 200);
}

#[tokio::test]
async fn connections_beyond_max_connections_are_closed() {
    let h = Harness::with(|p| edit(p, &[("max_connections = 200", "max_connections = 2")])).await;
    let _a = support::raw_tls(&h).await;
    let _b = support::raw_tls(&h).await;
    // Both slots are taken once the handshakes completed.
    let third = support::try_raw_tls(&h, b"http/1.1").await;
    assert!(third.is_err(), "a third connection was served");
}

/// Under per-core threading every worker accepts on a listener of its own; `max_connections`
/// still holds for the process. Counted per worker, four workers would serve up to eight.
#[tokio::test]
async fn per_core_workers_share_one_max_connections() {
    let h = Harness::with(|p| {
        edit(
            p,
            &[(
                "max_connections = 200",
                "max_connections = 2\nworkers = 4\nthreading = \"per-core\"",
            )],
        )
    })
    .await;
    let a = support::raw_tls(&h).await;
    let _b = support::raw_tls(&h).await;
    let mut served = 0;
    for _ in 0..8 {
        served += usize::from(support::try_raw_tls(&h, b"http/1.1").await.is_ok());
    }
    assert_eq!(served, 0, "connections beyond the cap were served");
    // A closed connection gives its slot back once its worker has seen the close (bounded).
    drop(a);
    let mut again = false;
    for _ in 0..200 {
        if support::try_raw_tls(&h, b"http/1.1").await.is_ok() {
            again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(again, "the slot of a closed connection never came back");
}

/// `threading = "shared"`: one work-stealing runtime, the pipeline unchanged.
#[tokio::test]
async fn shared_threading_serves_as_per_core_does() {
    let h = Harness::with(|p| {
        edit(
            p,
            &[(
                "max_connections = 200",
                "max_connections = 200\nthreading = \"shared\"",
            )],
        )
    })
    .await;
    let erp = h.keys.erp_key.clone();
    let response = h
        .get("/v1/orders/O2025010100000001", &[("x-api-key", &erp)])
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn upstream_failures_map_to_502_and_504_and_5xx_bodies_are_replaced() {
    let h = Harness::start().await;
    let erp = h.keys.erp_key.clone();
    let path = "/v1/orders/O2025010100000001";
    h.upstream.queue([Reply::Raw(
        500,
        "text/plain",
        "java.sql.SQLException: at OrderRepository.find".into(),
    )]);
    let response = h.get(path, &[("x-api-key", &erp)]).await;
    let (status, body, _) = problem(response).await;
    assert_eq!(
        (status, body["type"].as_str().unwrap()),
        (500, "https://ordergate.dev/problems/upstream_error")
    );
    assert!(!body.to_string().contains("SQLException"));
    h.upstream.queue([Reply::Hang, Reply::Hang]);
    let (status, body, _) = problem(h.get(path, &[("x-api-key", &erp)]).await).await;
    assert_eq!(
        (status, body["type"].as_str().unwrap()),
        (504, "https://ordergate.dev/problems/gateway_timeout")
    );

    let exposed =
        Harness::with(|p| edit(p, &[("expose_errors = false", "expose_errors = true")])).await;
    // 503 is retried once (GET, retries = 1); the second 503 is passed through as sent.
    let maintenance = Reply::Raw(503, "text/plain", "maintenance until 02:00".into());
    exposed.upstream.queue([maintenance.clone(), maintenance]);
    let response = exposed
        .get(
            "/v1/raw/orders/O2025010100000001",
            &[("x-api-key", &exposed.keys.erp_key)],
        )
        .await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.text().await.unwrap(), "maintenance until 02:00");
    assert_eq!(exposed.upstream.count(), 2);

    // Nothing listens on the upstream port: 502.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let unreachable = Harness::with(|p| {
        let line = p
            .lines()
            .find(|l| l.starts_with("url = "))
            .unwrap()
            .to_owned();
        edit(p, &[(&line, &format!("url = \"http://{dead_addr}\""))])
    })
    .await;
    let (status, body, _) = problem(
        unreachable
            .get(path, &[("x-api-key", &unreachable.keys.erp_key)])
            .await,
    )
    .await;
    assert_eq!(
        (status, body["type"].as_str().unwrap()),
        (502, "https://ordergate.dev/problems/bad_gateway")
    );
}

#[tokio::test]
async fn the_whole_request_is_bounded_by_request_timeout() {
    let h = Harness::with(|p| {
        edit(
            p,
            &[
                ("request_timeout = \"5s\"", "request_timeout = \"300ms\""),
                ("timeout = \"1s\"", "timeout = \"5s\""),
            ],
        )
    })
    .await;
    h.upstream.queue([Reply::Hang]);
    let (status, body, _) = problem(
        h.get(
            "/v1/orders/O2025010100000001",
            &[("x-api-key", &h.keys.erp_key)],
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["type"].as_str().unwrap()),
        (504, "https://ordergate.dev/problems/gateway_timeout")
    );
}

#[tokio::test]
async fn plain_http_only_on_loopback_with_insecure_plaintext() {
    let h = Harness::with(|p| {
        let p = edit(p, &[("shutdown_grace = \"3s\"", "shutdown_grace = \"3s\"\ninsecure_plaintext = true")]);
        p.replace("\n[server.tls]\ncert = \"server.crt\"\nkey = \"server.key\"\nmin_version = \"1.2\"\nclient_auth = \"optional\"\nclient_ca = \"partners-ca.pem\"\n", "\n")
            .replace("[[auth.mtls.clients]]\nsubject = \"CN=jd-marketplace,O=JD Partner\"\nroles = [\"marketplace_partner\"]\ntenant = \"acme\"\n", "")
    })
    .await;
    let response = reqwest::Client::new()
        .get(format!("http://{}/v1/orders/O2025010100000001", h.addr))
        .header("x-api-key", &h.keys.erp_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response
            .headers()
            .get("strict-transport-security")
            .is_none()
    );
    assert_eq!(
        h.upstream.requests()[0].headers["x-forwarded-proto"],
        "http"
    );
}

#[tokio::test]
async fn admin_listener_reports_health_readiness_and_metrics() {
    let h = Harness::start().await;
    h.get(
        &format!("/v1/customers/C0000001/orders?{RANGE}"),
        &[("authorization", &h.alice())],
    )
    .await;
    h.get("/v1/nothing", &[]).await;
    let admin = reqwest::Client::new();
    assert_eq!(
        admin
            .get(h.admin_url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        admin
            .get(h.admin_url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = admin
        .get(h.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "ordergate_requests_total",
        "ordergate_request_duration_seconds_bucket",
        "ordergate_upstream_duration_seconds_bucket",
        "ordergate_in_flight",
    ] {
        assert!(metrics.contains(series), "{series} missing from /metrics");
    }
    // Counted, not merely exported at 0 (every known series is, from the start).
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ordergate_requests_total{")
                && l.contains("reason=\"not_found\"")
                && !l.ends_with(" 0"))
    );
}

#[tokio::test]
async fn in_flight_requests_finish_during_graceful_shutdown() {
    let mut h = Harness::start().await;
    h.upstream.queue([Reply::Delay(500)]);
    let client = h.client.clone();
    let url = h.url("/v1/orders/O2025010100000001");
    let erp = h.keys.erp_key.clone();
    let pending = tokio::spawn(async move {
        client
            .get(url)
            .header("x-api-key", erp)
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    wait_at_upstream(&h).await;
    h.stop().await;
    assert_eq!(
        pending.await.unwrap().unwrap(),
        200,
        "the in-flight request was cut off"
    );
    assert!(
        tokio::net::TcpStream::connect(h.addr).await.is_err(),
        "still accepting after shutdown"
    );
    let records = h.audit_records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["status"], 200);
}

#[tokio::test]
async fn trusted_proxies_decide_whose_forwarded_for_is_believed() {
    let h = Harness::with(|p| {
        edit(
            p,
            &[(
                "shutdown_grace = \"3s\"",
                "shutdown_grace = \"3s\"\ntrusted_proxies = [\"127.0.0.0/8\"]",
            )],
        )
    })
    .await;
    h.get(
        "/v1/orders/O2025010100000001",
        &[
            ("x-api-key", &h.keys.erp_key),
            ("x-forwarded-for", "203.0.113.7"),
        ],
    )
    .await;
    assert_eq!(
        h.upstream.requests()[0].headers["x-forwarded-for"],
        "203.0.113.7, 127.0.0.1"
    );
    // A proxy that adds its own line: the client-written first line is not all that goes on.
    h.get(
        "/v1/orders/O2025010100000001",
        &[
            ("x-api-key", &h.keys.erp_key),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "203.0.113.7"),
        ],
    )
    .await;
    assert_eq!(
        h.upstream.requests()[1].headers["x-forwarded-for"],
        "6.6.6.6, 203.0.113.7, 127.0.0.1"
    );
    let untrusting = Harness::start().await;
    untrusting
        .get(
            "/v1/orders/O2025010100000001",
            &[
                ("x-api-key", &untrusting.keys.erp_key),
                ("x-forwarded-for", "203.0.113.7"),
            ],
        )
        .await;
    assert_eq!(
        untrusting.upstream.requests()[0].headers["x-forwarded-for"],
        "127.0.0.1"
    );
}

#[tokio::test]
async fn an_upstream_that_stalls_mid_body_is_cut_off_and_frees_its_slot() {
    let h = Harness::with(|p| {
        edit(
            p,
            &[
                ("max_in_flight = 64", "max_in_flight = 1"),
                ("timeout = \"1s\"", "timeout = \"200ms\""),
            ],
        )
    })
    .await;
    h.upstream.queue([Reply::Stall]);
    let response = h
        .get(
            "/v1/raw/orders/O2025010100000001",
            &[("x-api-key", &h.keys.erp_key), ("x-request-id", "stalled")],
        )
        .await;
    assert_eq!(response.status(), 200, "headers arrived before the stall");
    assert!(
        response.bytes().await.is_err(),
        "the body must not look complete"
    );
    assert_eq!(h.record_of("stalled").await["detail"], "upstream_stalled");
    let next = h
        .get(
            "/v1/raw/orders/O2025010100000001",
            &[("x-api-key", &h.keys.erp_key)],
        )
        .await;
    assert_eq!(next.status(), 200, "the in-flight slot was released");
}

/// A request whose client gave up is finished by the gateway on its own; at shutdown it ends at
/// the cutoff and is recorded as `shutdown` (503), under either threading. Per-core workers
/// must not drop it with their runtime (it would be recorded as abandoned, 500).
#[tokio::test]
async fn a_request_whose_client_left_ends_at_shutdown_as_shutdown() {
    for threading in ["per-core", "shared"] {
        let mut h = Harness::with(move |p| {
            edit(
                p,
                &[(
                    "max_connections = 200",
                    &format!("max_connections = 200\nthreading = \"{threading}\""),
                )],
            )
        })
        .await;
        h.upstream.queue([Reply::Delay(1500)]);
        let gave_up = support::client(&h.keys, None, false)
            .get(h.url("/v1/orders/O2025010100000001"))
            .header("x-api-key", &h.keys.erp_key)
            .header("x-request-id", "impatient")
            .timeout(Duration::from_millis(100))
            .send()
            .await;
        assert!(gave_up.is_err(), "{threading}: the client did not give up");
        // Nothing signals that the gateway saw the client go; it does within a few ms on
        // loopback, and the upstream holds the request for 1.5 s.
        tokio::time::sleep(Duration::from_millis(100)).await;
        h.stop().await;
        let record = h
            .audit_records()
            .into_iter()
            .find(|r| r["request_id"] == "impatient")
            .unwrap_or_else(|| panic!("{threading}: no record"));
        assert_eq!(
            (record["detail"].as_str(), record["status"].as_u64()),
            (Some("shutdown"), Some(503)),
            "{threading}: {record}"
        );
    }
}

/// Waits until the harness's upstream has received its first request (up to 10 s).
async fn wait_at_upstream(h: &Harness) {
    for _ in 0..2000 {
        if h.upstream.count() == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the first request never reached the upstream");
}
