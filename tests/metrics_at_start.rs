//! Issue 10, item 16: every series whose labels are known at load is exported at 0 from the
//! start, before any traffic (an absent series can neither be graphed nor fire an alert). Its
//! own test binary, so no other test's traffic can create the series first.

mod support;

use support::Harness;

#[tokio::test]
async fn known_series_are_exported_at_zero_before_any_traffic() {
    let h = Harness::start().await;
    let text = h.metrics().await;
    for series in [
        "ordergate_circuit_state{upstream=\"default\"} 0",
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
        // Issue 12, item 2 (CONTRACT §8.1).
        "ordergate_denials_total{route=\"customer-orders\",reason=\"forbidden\",detail=\"owner_mismatch\"} 0",
        "ordergate_denials_total{route=\"order-detail\",reason=\"unauthenticated\",detail=\"token_expired\"} 0",
        "ordergate_denials_total{route=\"none\",reason=\"not_found\",detail=\"none\"} 0",
        "ordergate_events_total{kind=\"volume_exceeded\",result=\"sent\"} 0",
        "ordergate_events_total{kind=\"freeze\",result=\"dropped\"} 0",
        "ordergate_shadow_diff_total{route=\"customer-orders\",kind=\"view\"} 0",
        "ordergate_stale_served_total{route=\"order-detail\"} 0",
        "ordergate_canary_state{route=\"customer-orders\"} 0",
        "ordergate_requests_total{route=\"none\",status=\"503\",reason=\"audit_unavailable\"} 0",
        "ordergate_request_duration_seconds_bucket{route=\"customer-orders\",le=\"0.5\"} 0",
        // `old-key` is the test policy's one key with `not_after` (2020-01-01T00:00:00Z).
        "ordergate_credential_expiry_timestamp_seconds{kind=\"api_key\",id=\"old-key\"} 1577836800",
        "ordergate_signature_failures_total{detail=\"signature_replayed\"} 0",
        "ordergate_signature_nonce_unchecked_total 0",
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }
    // Keys without `not_after` have no expiry.
    assert!(!text.contains("id=\"erp-sync\""), "{text}");
    // The certificates' notAfter, as read from the files the policy names.
    for (cert, file) in [("server", "server.crt"), ("client_ca", "partners-ca.pem")] {
        let pem = std::fs::read(h.dir.path().join(file)).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let not_after = pem.parse_x509().unwrap().validity().not_after.timestamp();
        let series = format!(
            "ordergate_certificate_expiry_timestamp_seconds{{cert=\"{cert}\"}} {not_after}\n"
        );
        assert!(text.contains(&series), "{series} missing:\n{text}");
    }
    assert!(
        !text.contains("cert=\"upstream_ca\""),
        "no upstream CA is configured"
    );

    // Denials are counted by route, reason and detail; answered requests are not denials.
    assert_eq!(h.get(ORDERS, &[]).await.status(), 401);
    let alice = h.alice();
    assert_eq!(
        h.get(ORDERS, &[("authorization", &alice)]).await.status(),
        200
    );
    assert_eq!(h.get("/v1/nothing-here", &[]).await.status(), 404);
    let text = scrape(&h).await;
    for series in [
        "ordergate_denials_total{route=\"customer-orders\",reason=\"unauthenticated\",detail=\"missing_credential\"} 1\n",
        "ordergate_denials_total{route=\"none\",reason=\"not_found\",detail=\"none\"} 1\n",
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }
    let denials: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("ordergate_denials_total{") && !l.ends_with(" 0"))
        .collect();
    assert_eq!(denials.len(), 2, "{denials:?}");

    // A reload replaces the expiries: a changed date shows, the old one is gone.
    let policy = std::fs::read_to_string(h.policy_path()).unwrap();
    let policy = support::edit(
        &policy,
        &[(
            "not_after = \"2020-01-01T00:00:00Z\"",
            "not_after = \"2031-01-01T00:00:00Z\"",
        )],
    );
    std::fs::write(h.policy_path(), policy).unwrap();
    let gateway = h.running.as_ref().unwrap().gateway.clone();
    gateway.reload().await.unwrap();
    let text = scrape(&h).await;
    assert!(
        text.contains("ordergate_credential_expiry_timestamp_seconds{kind=\"api_key\",id=\"old-key\"} 1924992000\n"),
        "{text}"
    );
    assert!(!text.contains("1577836800"), "{text}");
}

const ORDERS: &str = "/v1/customers/C0000001/orders?start_date=2025-01-01&end_date=2025-01-31";

async fn scrape(h: &Harness) -> String {
    h.metrics().await
}
