//! Issue 12, item 2 (CONTRACT §8.1): an `[[auth.mtls.clients]]` entry with `not_after` is refused
//! from that instant, like an API key (401, `mtls_client_expired`), and its expiry is exported as
//! `ordergate_credential_expiry_timestamp_seconds{kind="mtls",id=<CN>}`.

mod support;

use support::{Harness, edit};

const ORDERS: &str = "/v1/customers/C0000003/orders?start_date=2025-01-01&end_date=2025-01-31";
const JD: &str = "subject = \"CN=jd-marketplace,O=JD Partner\"\n";

#[tokio::test]
async fn an_mtls_client_is_refused_from_its_not_after_and_its_expiry_exported() {
    let h = Harness::with(|p| {
        edit(
            p,
            &[(JD, &format!("{JD}not_after = \"2020-01-01T00:00:00Z\"\n"))],
        )
    })
    .await;
    let jd = support::client(&h.keys, Some(&h.keys.jd), true);
    let refused = jd.get(h.url(ORDERS)).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(h.upstream.count(), 0);
    let records = h.wait_for_records(1).await;
    assert_eq!(records[0]["detail"], "mtls_client_expired");
    assert_eq!(records[0]["principal"]["kind"], "none");

    let text = h.metrics().await;
    for series in [
        "ordergate_credential_expiry_timestamp_seconds{kind=\"mtls\",id=\"jd-marketplace\"} 1577836800\n",
        "ordergate_auth_failures_total{reason=\"mtls_client_expired\"} 1\n",
        "ordergate_denials_total{route=\"customer-orders\",reason=\"unauthenticated\",detail=\"mtls_client_expired\"} 1\n",
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }
    drop(h);

    // Before its not_after the same client is served. (One test: the expiry gauges are
    // process-wide, like every metric, so two gateways at once would overwrite each other's.)
    let h = Harness::with(|p| {
        edit(
            p,
            &[(JD, &format!("{JD}not_after = \"2099-01-01T00:00:00Z\"\n"))],
        )
    })
    .await;
    let jd = support::client(&h.keys, Some(&h.keys.jd), true);
    assert_eq!(jd.get(h.url(ORDERS)).send().await.unwrap().status(), 200);
}
