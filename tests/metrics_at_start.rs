//! Issue 10, item 16: every series whose labels are known at load is exported at 0 from the
//! start, before any traffic (an absent series can neither be graphed nor fire an alert). Its
//! own test binary, so no other test's traffic can create the series first.

mod support;

use support::Harness;

#[tokio::test]
async fn known_series_are_exported_at_zero_before_any_traffic() {
    let h = Harness::start().await;
    let text = reqwest::get(h.admin_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "ordergate_circuit_state 0",
        "ordergate_in_flight 0",
        "ordergate_auth_failures_total{reason=\"alg_none\"} 0",
        "ordergate_auth_failures_total{reason=\"unknown_kid\"} 0",
        "ordergate_rate_limited_total{bucket=\"failed_auth_ip\"} 0",
        "ordergate_circuit_transitions_total{to=\"open\"} 0",
        "ordergate_reloads_total{result=\"invalid\"} 0",
        "ordergate_audit_errors_total 0",
        "ordergate_audit_aborted_total 0",
        "ordergate_freezes_total{kind=\"principal\"} 0",
        "ordergate_views_applied_total{route=\"customer-orders\",view=\"orders:read:shipping\"} 0",
        "ordergate_signature_failures_total{detail=\"signature_replayed\"} 0",
        "ordergate_signature_nonce_unchecked_total 0",
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }
}
