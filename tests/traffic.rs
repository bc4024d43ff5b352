//! Issue #6: rate limits, the abuse guard, the circuit breaker and retries, against a running
//! gateway and a controllable fake order service.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Harness, Reply, edit};

const ORDERS: &str = "/v1/customers/C0000001/orders?start_date=2025-01-01&end_date=2025-01-31";
const ROUTE_BUCKET: &str = "rate_limit = { rate = \"120/min\", burst = 20 }";

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn buckets_run_out_refill_at_their_rate_and_report_themselves() {
    let h = Harness::with(|p| {
        edit(
            p,
            &[(
                ROUTE_BUCKET,
                "rate_limit = { rate = \"20/min\", burst = 3 }",
            )],
        )
    })
    .await;
    let alice = h.alice();
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let r = h.get(ORDERS, &[("authorization", &alice)]).await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "ratelimit-limit"), "3");
        remaining.push(header(&r, "ratelimit-remaining"));
        assert!(!header(&r, "ratelimit-reset").is_empty());
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let started = Instant::now();
    let refused = h.get(ORDERS, &[("authorization", &alice)]).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "retry-after"), "3");
    assert_eq!(header(&refused, "ratelimit-remaining"), "0");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["type"], "https://ordergate.dev/problems/rate_limited");
    // Knocking while refused costs nothing: one token comes back every 3 s regardless (a long
    // interval, so a slow machine cannot refill a token in the middle of the loop).
    for _ in 0..10 {
        if started.elapsed() >= Duration::from_secs(2) {
            break;
        }
        assert_eq!(
            h.get(ORDERS, &[("authorization", &alice)]).await.status(),
            429
        );
    }
    let wait = Duration::from_millis(3100).saturating_sub(started.elapsed());
    tokio::time::sleep(wait).await;
    assert_eq!(
        h.get(ORDERS, &[("authorization", &alice)]).await.status(),
        200,
        "a token refilled"
    );
    assert_eq!(h.upstream.count(), 4);
}

#[tokio::test]
async fn principals_and_routes_have_their_own_buckets_and_share_the_overall_one() {
    let h = Harness::with(|p| {
        edit(
            p,
            &[
                (ROUTE_BUCKET, "rate_limit = { rate = \"1/min\", burst = 2 }"),
                (
                    "per_principal = { rate = \"1000/min\", burst = 100 }",
                    "per_principal = { rate = \"1/min\", burst = 3 }",
                ),
            ],
        )
    })
    .await;
    let alice = h.alice();
    let bob = format!(
        "Bearer {}",
        h.token("bob", &["customer"], &[("customer_id", json!("C0000002"))])
    );
    let bobs = "/v1/customers/C0000002/orders?start_date=2025-01-01&end_date=2025-01-31";
    let statuses = |v: Vec<u16>| v;
    let mut a = Vec::new();
    for _ in 0..3 {
        a.push(
            h.get(ORDERS, &[("authorization", &alice)])
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses(a), [200, 200, 429], "the route bucket holds 2");
    assert_eq!(
        h.get(bobs, &[("authorization", &bob)]).await.status(),
        200,
        "bob has his own buckets"
    );
    // The per-principal bucket spans routes: erp-sync gets 3 in all, across two routes.
    let erp = h.keys.erp_key.clone();
    let mut mixed = Vec::new();
    for path in [
        "/v1/orders/O2025010100000001",
        "/v1/raw/orders/O2025010100000001",
        "/v1/orders/O2025010100000001",
        "/v1/raw/orders/O2025010100000001",
    ] {
        mixed.push(h.get(path, &[("x-api-key", &erp)]).await.status().as_u16());
    }
    assert_eq!(mixed, [200, 200, 200, 429]);
}

#[tokio::test]
async fn failed_authentication_is_braked_per_ip_without_touching_valid_callers() {
    let h = Harness::with(|p| {
        edit(
            p,
            &[(
                "per_ip_unauthenticated = { rate = \"30/min\", burst = 10 }",
                "per_ip_unauthenticated = { rate = \"1/min\", burst = 3 }",
            )],
        )
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            h.get(ORDERS, &[("authorization", "Bearer x.y.z")])
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    assert_eq!(
        h.get(ORDERS, &[("authorization", &h.alice())])
            .await
            .status(),
        200,
        "a valid credential is unaffected"
    );
    let r = h.get(ORDERS, &[]).await;
    assert_eq!(r.status(), 429);
    assert!(!header(&r, "retry-after").is_empty());
}

#[tokio::test]
async fn repeated_denials_freeze_and_an_operator_unfreezes() {
    let h = Harness::with(|p| edit(p, &[("max_denials = 1000", "max_denials = 3")])).await;
    let alice = h.alice();
    let other = "/v1/customers/C0000002/orders?start_date=2025-01-01&end_date=2025-01-31";
    for _ in 0..3 {
        assert_eq!(
            h.get(other, &[("authorization", &alice)]).await.status(),
            403
        );
    }
    let frozen = h.get(ORDERS, &[("authorization", &alice)]).await;
    assert_eq!(frozen.status(), 403);
    let body: Value = frozen.json().await.unwrap();
    assert_eq!(body["type"], "https://ordergate.dev/problems/frozen");
    let admin = reqwest::Client::new();
    let list: Value = admin
        .get(h.admin_url("/admin/frozen"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["ip:127.0.0.1", "principal:jwt:alice"]);
    assert!(list[0]["until"].as_str().unwrap().ends_with('Z'));
    // Unfreezing the IP leaves the principal frozen: refused right after authentication.
    let r = admin
        .delete(h.admin_url("/admin/frozen/ip:127.0.0.1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let still = h
        .get(
            ORDERS,
            &[("authorization", &alice), ("x-request-id", "still-frozen")],
        )
        .await;
    assert_eq!(still.status(), 403);
    assert_eq!(
        h.record_of("still-frozen").await["detail"],
        "principal_frozen"
    );
    let r = admin
        .delete(h.admin_url("/admin/frozen/principal:jwt:alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        admin
            .delete(h.admin_url("/admin/frozen/ip:10.9.9.9"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        h.get(ORDERS, &[("authorization", &alice)]).await.status(),
        200
    );
    let records = h.wait_for_records(9).await;
    let unfreezes = records
        .iter()
        .filter(|r| r["route"] == "admin.unfreeze")
        .count();
    assert_eq!(unfreezes, 3, "each unfreeze is audited");
    let metrics = admin
        .get(h.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("ordergate_freezes_total"));
}

#[tokio::test]
async fn a_flood_of_not_found_answers_freezes_that_address_and_no_other() {
    let h = Harness::with(|p| {
        edit(
            p,
            &[
                (
                    "shutdown_grace = \"3s\"",
                    "shutdown_grace = \"3s\"\ntrusted_proxies = [\"127.0.0.0/8\"]",
                ),
                ("max_denials = 1000", "max_denials = 5"),
            ],
        )
    })
    .await;
    let from = |ip: &'static str| ("x-forwarded-for", ip);
    let mut statuses = Vec::new();
    for path in [
        "/v1/nothing",
        "/v1/nothing/else",
        "/v1/../etc",
        "/v1/orders/O2025010100000001/nope",
        "/v1/nothing?x=1",
    ] {
        statuses.push(h.get(path, &[from("203.0.113.5")]).await.status().as_u16());
    }
    assert!(
        statuses.iter().all(|s| matches!(s, 400 | 404)),
        "{statuses:?}"
    );
    let alice = h.alice();
    let frozen = h
        .get(ORDERS, &[("authorization", &alice), from("203.0.113.5")])
        .await;
    assert_eq!(frozen.status(), 403, "free refusals count as denials");
    let body: Value = frozen.json().await.unwrap();
    assert_eq!(body["type"], "https://ordergate.dev/problems/frozen");
    assert_eq!(
        h.get(ORDERS, &[("authorization", &alice), from("203.0.113.6")])
            .await
            .status(),
        200,
        "another address is unaffected, and so is the principal"
    );
    let method = h
        .client
        .delete(h.url(ORDERS))
        .header("x-forwarded-for", "198.51.100.3")
        .send()
        .await
        .unwrap();
    assert_eq!(method.status(), 405);
}

#[tokio::test]
async fn an_unfreeze_that_cannot_be_audited_is_refused_and_the_freeze_stays() {
    // Rotating at every record makes the writer reopen the file each time, so a broken
    // directory shows at once.
    let h = Harness::with(|p| {
        edit(
            p,
            &[
                ("max_denials = 1000", "max_denials = 1"),
                ("rotate_bytes = \"100MiB\"", "rotate_bytes = \"1B\""),
                ("keep_files = 5", "keep_files = 1000"),
            ],
        )
    })
    .await;
    assert_eq!(h.get(ORDERS, &[]).await.status(), 401);
    h.wait_for_records(1).await;
    let audit = h.dir.path().join("audit");
    std::fs::rename(&audit, h.dir.path().join("audit-aside")).unwrap();
    std::fs::write(&audit, "not a directory").unwrap();
    // The next record cannot be written: that request's own answer is aborted rather than
    // completed (commit before completion), so it may fail; from then on requests are refused.
    let _ = h.client.get(h.url(ORDERS)).send().await;
    let mut unavailable = false;
    for _ in 0..200 {
        if h.get(ORDERS, &[]).await.status() == 503 {
            unavailable = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(unavailable, "the audit log never became unavailable");
    let admin = reqwest::Client::new();
    let r = admin
        .delete(h.admin_url("/admin/frozen/ip:127.0.0.1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "an unrecordable unfreeze is refused");
    let list: Value = admin
        .get(h.admin_url("/admin/frozen"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["key"], "ip:127.0.0.1", "and the freeze stays");
}

#[tokio::test]
async fn the_circuit_opens_refuses_without_calling_and_closes_after_probes() {
    let h = Harness::start().await;
    let erp = h.keys.erp_key.clone();
    let path = "/v1/raw/orders/O2025010100000001";
    h.upstream
        .queue((0..5).map(|_| Reply::Raw(500, "text/plain", "boom".into())));
    for _ in 0..5 {
        assert_eq!(h.get(path, &[("x-api-key", &erp)]).await.status(), 500);
    }
    assert_eq!(h.upstream.count(), 5);
    let open = h.get(path, &[("x-api-key", &erp)]).await;
    assert_eq!(open.status(), 503);
    assert_eq!(header(&open, "retry-after"), "1");
    let body: Value = open.json().await.unwrap();
    assert_eq!(body["type"], "https://ordergate.dev/problems/circuit_open");
    assert_eq!(h.upstream.count(), 5, "no upstream call while open");
    // After open_for (1 s) two probes go through; their success closes the circuit.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(h.get(path, &[("x-api-key", &erp)]).await.status(), 200);
    assert_eq!(h.get(path, &[("x-api-key", &erp)]).await.status(), 200);
    for _ in 0..3 {
        assert_eq!(h.get(path, &[("x-api-key", &erp)]).await.status(), 200);
    }
    let metrics = h.metrics().await;
    assert!(metrics.contains("ordergate_circuit_transitions_total{to=\"open\"}"));
    assert!(metrics.contains("ordergate_circuit_transitions_total{to=\"closed\"}"));
}

#[tokio::test]
async fn hangs_and_broken_connections_count_as_failures_and_a_failed_probe_reopens() {
    let h = Harness::with(|p| {
        edit(
            p,
            &[
                ("timeout = \"1s\"", "timeout = \"150ms\""),
                ("consecutive_failures = 5", "consecutive_failures = 2"),
            ],
        )
    })
    .await;
    let erp = h.keys.erp_key.clone();
    let path = "/v1/raw/orders/O2025010100000001";
    h.upstream.queue([Reply::Hang, Reply::Hang]);
    assert_eq!(h.get(path, &[("x-api-key", &erp)]).await.status(), 504);
    assert_eq!(h.get(path, &[("x-api-key", &erp)]).await.status(), 504);
    assert_eq!(
        h.get(path, &[("x-api-key", &erp)]).await.status(),
        503,
        "two timeouts opened the circuit"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    h.upstream
        .queue([Reply::Raw(502, "text/plain", "bad".into())]);
    assert_eq!(h.get(path, &[("x-api-key", &erp)]).await.status(), 502);
    let calls = h.upstream.count();
    assert_eq!(
        h.get(path, &[("x-api-key", &erp)]).await.status(),
        503,
        "the failed probe re-opened the circuit"
    );
    assert_eq!(
        h.upstream.count(),
        calls,
        "and no retry was sent while it was open"
    );
    // An upstream that closes the connection: 502 if nothing was sent yet, else a broken body —
    // never a complete-looking answer.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    h.upstream.queue([Reply::Abort]);
    let broken = h.get(path, &[("x-api-key", &erp)]).await;
    let status = broken.status();
    let body = broken.bytes().await;
    assert!(
        status == 502 || body.is_err(),
        "status {status}, body {body:?}"
    );
}

#[tokio::test]
async fn retries_only_for_idempotent_requests_on_retryable_failures() {
    let h = Harness::start().await;
    let erp = h.keys.erp_key.clone();
    let get = "/v1/raw/orders/O2025010100000001";
    h.upstream
        .queue([Reply::Raw(502, "text/plain", "x".into())]);
    assert_eq!(
        h.get(get, &[("x-api-key", &erp)]).await.status(),
        200,
        "GET after one 502 is retried"
    );
    assert_eq!(h.upstream.count(), 2);
    h.upstream
        .queue([Reply::Raw(500, "text/plain", "x".into())]);
    assert_eq!(
        h.get(get, &[("x-api-key", &erp)]).await.status(),
        500,
        "500 is not retried"
    );
    assert_eq!(h.upstream.count(), 3);
    h.upstream
        .queue([Reply::Raw(503, "text/plain", "x".into())]);
    let post = h
        .client
        .post(h.url("/v1/orders/O2025010100000001/notes"))
        .header("x-api-key", &erp)
        .header("content-type", "text/plain")
        .body("n")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 503, "POST is never retried");
    assert_eq!(h.upstream.count(), 4);
    h.upstream.queue([Reply::Hang]);
    assert_eq!(
        h.get(get, &[("x-api-key", &erp)]).await.status(),
        504,
        "timeouts are never retried"
    );
    assert_eq!(h.upstream.count(), 5);
}

#[tokio::test]
async fn retries_stay_within_the_budget() {
    // No deposits: only the initial reserve of 10 retries exists.
    let h = Harness::with(|p| {
        edit(
            p,
            &[
                ("retries = 1", "retries = 1\nretry_budget = 0.0"),
                ("consecutive_failures = 5", "consecutive_failures = 1000"),
                ("min_requests = 20", "min_requests = 1000"),
            ],
        )
    })
    .await;
    h.upstream
        .set_default(Reply::Raw(502, "text/plain", "down".into()));
    for _ in 0..15 {
        h.get(
            "/v1/raw/orders/O2025010100000001",
            &[("x-api-key", &h.keys.erp_key)],
        )
        .await;
    }
    assert_eq!(
        h.upstream.count(),
        25,
        "15 requests and exactly the 10 budgeted retries"
    );
}
