//! HTTP/2 and the connection layer: clients that stop reading (receive window left at 0), idle
//! connections, per-client limits, readiness under saturation, and HEAD over both protocols.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject as _;
use serde_json::Value;
use support::{Harness, edit};

const ORDERS: &str = "/v1/customers/C0000001/orders?start_date=2025-01-01&end_date=2025-01-31";
const RAW: &str = "/v1/raw/orders/O2024010100001";

/// An order far larger than HTTP/2's initial connection window (64 KiB), so a client that
/// never opens its windows cannot take it whole into the gateway's send buffers.
fn big_order() -> support::Reply {
    let items: Vec<Value> = (0..4000)
        .map(
            |i| serde_json::json!({"sku": format!("SKU-{i:08}"), "qty": i, "note": "x".repeat(40)}),
        )
        .collect();
    support::Reply::Json(
        200,
        serde_json::json!({"order_id": "O2024010100001", "status": "paid", "items": items}),
    )
}

/// A TLS connection to the gateway offering only `h2`.
async fn h2_tls(h: &Harness) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tls = support::raw_tls_offering(h, b"h2").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls
}

/// An HTTP/2 client that never opens its receive window: the gateway can send headers but no
/// byte of any body. Returns the request handle and the connection task (it ends when the
/// gateway closes the connection).
async fn zero_window_client(
    h: &Harness,
) -> (
    SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<Result<(), hyper::Error>>,
) {
    h2_connect(h, Some(0)).await
}

/// An HTTP/2 client with ordinary windows.
async fn h2_client(
    h: &Harness,
) -> (
    SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<Result<(), hyper::Error>>,
) {
    h2_connect(h, None).await
}

/// An HTTP/2 connection, its stream window fixed at `window` (none: hyper's adaptive one).
async fn h2_connect(
    h: &Harness,
    window: Option<u32>,
) -> (
    SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<Result<(), hyper::Error>>,
) {
    let io = TokioIo::new(h2_tls(h).await);
    let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    if let Some(window) = window {
        builder
            .initial_stream_window_size(window)
            .adaptive_window(false);
    }
    let (send, conn) = builder.handshake(io).await.unwrap();
    (send, tokio::spawn(conn))
}

/// Sends a GET for the large raw order on `send` and returns the response head (the body is
/// never read).
async fn held_request(
    h: &Harness,
    send: &mut SendRequest<Empty<Bytes>>,
    id: &str,
) -> hyper::Response<hyper::body::Incoming> {
    send.ready().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), send.send_request(raw_order(h, id)))
        .await
        .expect("the response head arrives without any window")
        .unwrap()
}

async fn ready(h: &Harness) -> u16 {
    h.client
        .get(h.admin_url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn zero_window_streams_are_aborted_as_send_stalled_while_others_are_served() {
    let mut h = Harness::with(|p| {
        edit(
            p,
            &[
                ("max_in_flight = 64", "max_in_flight = 2"),
                (
                    "shutdown_grace = \"3s\"",
                    "shutdown_grace = \"3s\"\nsend_stall_timeout = \"3s\"",
                ),
            ],
        )
    })
    .await;
    h.upstream.set_default(big_order());
    let (mut send, conn) = zero_window_client(&h).await;
    let first = held_request(&h, &mut send, "held-1").await;
    assert_eq!(first.status(), 200);
    // One stream held: another client is still served in full, and the gateway is ready.
    let other = h.get(RAW, &[("x-api-key", &h.keys.erp_key)]).await;
    assert_eq!(other.status(), 200);
    let full = other.bytes().await.unwrap().len() as u64;
    assert!(full > 200_000);
    assert_eq!(ready(&h).await, 200);
    // Both in-flight slots held: readiness says so instead of promising service.
    let second = held_request(&h, &mut send, "held-2").await;
    assert_eq!(second.status(), 200);
    assert_eq!(ready(&h).await, 503);
    // The stalled streams are aborted: the connection ends, the slots come back.
    let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(ended.is_ok(), "the stalled connection was not aborted");
    for id in ["held-1", "held-2"] {
        let record = h.record_of(id).await;
        assert_eq!(record["detail"], "send_stalled", "{record}");
        assert_eq!(record["status"], 200);
        // Cut short: the client never held a complete answer.
        assert!(
            record["bytes_out"].as_u64().unwrap() < full,
            "{full}: {record}"
        );
    }
    assert_eq!(ready(&h).await, 200);
    let after = h.get(RAW, &[("x-api-key", &h.keys.erp_key)]).await;
    assert_eq!(after.status(), 200);
    h.stop().await;
}

#[tokio::test]
async fn a_client_address_cannot_hold_more_than_max_connections_per_ip() {
    let mut h = Harness::with(|p| {
        edit(
            p,
            &[("max_connections_per_ip = 200", "max_connections_per_ip = 2")],
        )
    })
    .await;
    let (_a, conn_a) = zero_window_client(&h).await;
    let (_b, conn_b) = zero_window_client(&h).await;
    // The third connection from 127.0.0.1 is closed at once: its handshake fails.
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(h.keys.ca.pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let third = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .expect("the refused connection is closed, not left hanging");
    assert!(third.is_err(), "a third connection was accepted");
    // Closing one frees its place.
    conn_a.abort();
    drop(_a);
    let mut served = false;
    for _ in 0..100 {
        let fresh = support::client(&h.keys, None, true);
        if let Ok(r) = fresh
            .get(h.url(ORDERS))
            .header("authorization", h.alice())
            .send()
            .await
        {
            assert_eq!(r.status(), 200);
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "the freed place was not given to a new connection");
    conn_b.abort();
    h.stop().await;
}

#[tokio::test]
async fn idle_http2_connections_are_closed_after_idle_timeout() {
    let mut h = Harness::with(|p| {
        edit(
            p,
            &[(
                "shutdown_grace = \"3s\"",
                "shutdown_grace = \"3s\"\nidle_timeout = \"300ms\"",
            )],
        )
    })
    .await;
    let (mut send, conn) = zero_window_client(&h).await;
    let request = http::Request::get(h.url("/v1/nothing"))
        .body(Empty::new())
        .unwrap();
    let answered = send.send_request(request).await.unwrap();
    assert_eq!(answered.status(), 404);
    drop(answered);
    let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(ended.is_ok(), "the idle connection was kept open");
    assert!(
        ended.unwrap().unwrap().is_ok(),
        "closed with GOAWAY, not an error"
    );
    h.stop().await;
}

fn head_route(policy: &str) -> String {
    format!(
        "{policy}\n[[routes]]\nid = \"order-exists\"\nmethod = \"HEAD\"\npath = \"/v1/exists/orders/{{order_id}}\"\nupstream_path = \"/api/orders/{{order_id}}\"\nrequire_scopes = [\"orders:read:full\"]\n[routes.params.order_id]\ntype = \"string\"\npattern = \"^O[0-9]{{8,16}}$\"\n"
    )
}

async fn head_over(h: &Harness, h2: bool, path: &str, id: &str) -> (reqwest::Response, Value) {
    let client = support::client(&h.keys, None, h2);
    let response = client
        .head(h.url(path))
        .header("x-api-key", &h.keys.erp_key)
        .header("x-request-id", id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("HEAD over h2={h2} failed: {e:?}"));
    let expected = if h2 {
        http::Version::HTTP_2
    } else {
        http::Version::HTTP_11
    };
    assert_eq!(response.version(), expected);
    let record = h.record_of(id).await;
    (response, record)
}

#[tokio::test]
async fn head_is_answered_without_content_over_http2_and_http1() {
    let mut h = Harness::with(head_route).await;
    for (h2, id) in [(true, "head-h2"), (false, "head-h1")] {
        let (response, record) = head_over(&h, h2, "/v1/exists/orders/O2024010100001", id).await;
        assert_eq!(response.status(), 200);
        assert!(response.bytes().await.unwrap().is_empty());
        assert_eq!(record["reason"], "ok");
        assert_eq!(record["status"], 200);
        assert_eq!(record["detail"], Value::Null, "{record}");
    }
    let seen: Vec<String> = h
        .upstream
        .requests()
        .iter()
        .map(|r| r.method.clone())
        .collect();
    assert_eq!(seen, ["HEAD", "HEAD"]);
    h.stop().await;
}

#[tokio::test]
async fn head_on_a_get_only_route_is_a_clean_405_over_http2_and_http1() {
    let mut h = Harness::start().await;
    for (h2, id) in [(true, "head405-h2"), (false, "head405-h1")] {
        let (response, record) = head_over(&h, h2, "/v1/orders/O2024010100001", id).await;
        assert_eq!(response.status(), 405);
        assert_eq!(response.headers()["allow"], "GET");
        assert!(response.bytes().await.unwrap().is_empty());
        assert_eq!(record["reason"], "method_not_allowed");
        assert_eq!(record["detail"], Value::Null, "{record}");
        assert_eq!(record["bytes_out"], 0);
    }
    assert_eq!(h.upstream.count(), 0);
    h.stop().await;
}

#[tokio::test]
async fn a_response_still_unsent_when_the_grace_runs_out_is_cut_and_recorded_as_shutdown() {
    let mut h = Harness::with(|p| {
        edit(
            p,
            &[(
                "shutdown_grace = \"3s\"",
                "shutdown_grace = \"1s\"\nsend_stall_timeout = \"60s\"",
            )],
        )
    })
    .await;
    h.upstream.set_default(big_order());
    let (mut send, conn) = zero_window_client(&h).await;
    let held = held_request(&h, &mut send, "held-at-shutdown").await;
    assert_eq!(held.status(), 200);
    let started = std::time::Instant::now();
    h.stop().await;
    let elapsed = started.elapsed();
    // The drain (GOAWAY) cannot finish a stream the client does not read; the grace bounds it.
    assert!(
        elapsed >= Duration::from_secs(1),
        "stopped after {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "stopped after {elapsed:?}"
    );
    let record = h.record_of("held-at-shutdown").await;
    assert_eq!(record["detail"], "shutdown", "{record}");
    let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(ended.is_ok(), "the connection outlived the shutdown");
}

/// A GET for the raw order from the ERP key, with request id `id`.
fn raw_order(h: &Harness, id: &str) -> http::Request<Empty<Bytes>> {
    http::Request::get(h.url(RAW))
        .header("x-api-key", &h.keys.erp_key)
        .header("x-request-id", id)
        .body(Empty::new())
        .unwrap()
}

/// Waits (bounded) until the fake order service has received `n` requests.
async fn upstream_reached(h: &Harness, n: usize) {
    for _ in 0..500 {
        if h.upstream.count() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the upstream saw {} requests, not {n}", h.upstream.count());
}

/// Starts a request on `send` and resets its stream (RST_STREAM, CANCEL) once the upstream has
/// it: the gateway goes on running it to its end.
async fn reset_once_upstream(
    h: &Harness,
    send: &mut SendRequest<Empty<Bytes>>,
    id: &str,
    seen: usize,
) {
    send.ready().await.unwrap();
    let pending = send.send_request(raw_order(h, id));
    let mut pending = std::pin::pin!(pending);
    tokio::select! {
        answered = &mut pending => panic!("{id} was answered: {answered:?}"),
        () = upstream_reached(h, seen) => {}
    }
    // Dropping the response future resets the stream.
}

#[tokio::test]
async fn streams_the_client_reset_still_count_against_max_concurrent_streams() {
    let mut h = Harness::with(|p| {
        edit(
            p,
            &[
                (
                    "max_in_flight = 64",
                    "max_in_flight = 64\nmax_concurrent_streams = 2",
                ),
                ("request_timeout = \"5s\"", "request_timeout = \"30s\""),
                ("timeout = \"1s\"", "timeout = \"30s\""),
            ],
        )
    })
    .await;
    h.upstream.set_default(support::Reply::Hang);
    let (mut send, conn) = h2_client(&h).await;
    // HEADERS + RST_STREAM twice: no stream is open any more, two requests still run.
    reset_once_upstream(&h, &mut send, "reset-1", 1).await;
    reset_once_upstream(&h, &mut send, "reset-2", 2).await;
    send.ready().await.unwrap();
    let refused = tokio::time::timeout(
        Duration::from_secs(10),
        send.send_request(raw_order(&h, "third")),
    )
    .await
    .expect("the third request is answered at once, not sent upstream")
    .unwrap();
    assert_eq!(refused.status(), 503);
    let record = h.record_of("third").await;
    assert_eq!(record["reason"], "overloaded", "{record}");
    assert_eq!(record["detail"], "max_concurrent_streams", "{record}");
    assert_eq!(h.upstream.count(), 2, "the refused request went upstream");
    // And the connection is drained (GOAWAY): no more streams on it, the client reconnects.
    let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(ended.is_ok(), "the saturated connection was kept open");
    assert!(
        ended.unwrap().unwrap().is_ok(),
        "closed with GOAWAY, not an error"
    );
    // Another connection is not affected: the bound is per connection.
    h.upstream.set_default(support::Reply::Orders);
    let other = h.get(RAW, &[("x-api-key", &h.keys.erp_key)]).await;
    assert_eq!(other.status(), 200);
    h.stop().await;
    // The reset requests ran to the shutdown cutoff and were recorded then.
    for id in ["reset-1", "reset-2"] {
        let record = h.record_of(id).await;
        assert_eq!(record["detail"], "shutdown", "{record}");
    }
}

#[tokio::test]
async fn closing_a_connection_does_not_free_its_place_while_its_requests_run() {
    let mut h = Harness::with(|p| {
        edit(
            p,
            &[
                ("max_connections_per_ip = 200", "max_connections_per_ip = 1"),
                ("timeout = \"1s\"", "timeout = \"5s\""),
            ],
        )
    })
    .await;
    h.upstream.set_default(support::Reply::Delay(4_000));
    let (mut send, conn) = h2_client(&h).await;
    send.ready().await.unwrap();
    let pending = send.send_request(raw_order(&h, "left-behind"));
    let pending = tokio::spawn(pending);
    upstream_reached(&h, 1).await;
    // The client goes away entirely: its request still runs, and still holds the address's one
    // place, so a new connection from the same address is refused for as long as it runs.
    pending.abort();
    conn.abort();
    drop(send);
    for attempt in 0..10 {
        let again = support::try_raw_tls(&h, b"h2").await;
        assert!(
            again.is_err(),
            "attempt {attempt}: a new connection was admitted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Once it has ended (recorded), the place is given back.
    let record = h.record_of("left-behind").await;
    assert_eq!(record["detail"], "client_disconnected", "{record}");
    let mut admitted = false;
    for _ in 0..250 {
        if support::try_raw_tls(&h, b"h2").await.is_ok() {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(admitted, "the place was not given back");
    h.stop().await;
}
