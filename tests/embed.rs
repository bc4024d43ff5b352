//! `examples/embed.rs` run for real: its router serves the host's own route and, under `/v1/`,
//! the gateway's pipeline, which reaches the fake order service, refuses what it must and
//! records what it serves.

mod support;

#[allow(dead_code)] // the example's `main` is not called here
#[path = "../examples/embed.rs"]
mod embed;

use std::time::Duration;

use serde_json::{Value, json};
use support::{FakeUpstream, Keys};

fn records(dir: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("audit/audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn record_of(dir: &std::path::Path, request_id: &str) -> Value {
    for _ in 0..500 {
        if let Some(r) = records(dir)
            .into_iter()
            .find(|r| r["request_id"] == request_id)
        {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no audit record for {request_id}");
}

#[tokio::test]
async fn the_embed_example_mounts_the_gateway_beside_its_own_routes() {
    support::install();
    let keys = Keys::new();
    let upstream = FakeUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    support::write_files(dir.path(), &keys);
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, support::base_policy(&keys, upstream.addr)).unwrap();
    let (addr, server) = embed::serve(&path).await.unwrap();
    let client = support::client(&keys, None, false);
    let url = |p: &str| format!("http://{addr}{p}");

    // The host's own route, with the host's layer.
    let hello = client.get(url("/hello")).send().await.unwrap();
    assert_eq!(hello.status(), 200);
    assert_eq!(hello.headers()[embed::SERVED_BY], "host-app");
    assert_eq!(
        hello.text().await.unwrap(),
        "hello from the host application\n"
    );
    assert_eq!(upstream.count(), 0);

    // Through the gateway to the order service, with a view applied.
    let alice = support::token_with(
        &keys.es256,
        "alice",
        &["customer"],
        &[("customer_id", json!("C0000001"))],
    );
    let orders = client
        .get(url(
            "/v1/customers/C0000001/orders?start_date=2026-01-01&end_date=2026-01-31",
        ))
        .bearer_auth(&alice)
        .header("x-request-id", "embedded-ok")
        .send()
        .await
        .unwrap();
    assert_eq!(orders.status(), 200);
    assert_eq!(orders.headers()[embed::SERVED_BY], "host-app");
    assert_eq!(orders.headers()["x-request-id"], "embedded-ok");
    let page: Value = orders.json().await.unwrap();
    assert!(page["orders"][0].get("order_id").is_some(), "{page}");
    assert!(
        page["orders"][0].get("customer").is_none(),
        "view not applied: {page}"
    );
    assert_eq!(upstream.count(), 1);
    let forwarded = &upstream.requests()[0];
    assert!(
        forwarded.target.starts_with("/api/orders?"),
        "{}",
        forwarded.target
    );
    let record = record_of(dir.path(), "embedded-ok").await;
    assert_eq!(record["reason"], "ok", "{record}");
    assert_eq!(record["client_ip"], "127.0.0.1", "{record}");

    // The gateway still refuses under the host's prefix, and records it.
    let refused = client
        .get(url("/v1/orders/O2025010100000001"))
        .header("x-request-id", "embedded-refused")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()[embed::SERVED_BY], "host-app");
    let record = record_of(dir.path(), "embedded-refused").await;
    assert_eq!(record["reason"], "unauthenticated", "{record}");
    assert_eq!(upstream.count(), 1);

    // Outside `/v1/` is the host's 404, not the gateway's.
    let elsewhere = client.get(url("/admin")).send().await.unwrap();
    assert_eq!(elsewhere.status(), 404);
    assert!(elsewhere.headers().get("x-request-id").is_none());
    server.abort();
}
