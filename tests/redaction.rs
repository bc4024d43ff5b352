//! Issue 10, item 10: what reaches an audit record is redacted for what it means, however the
//! client spells it — extension methods, percent-encoded paths, separated or full-width digits
//! in request ids, and numbers passed as integer or number parameters.

mod support;

use serde_json::Value;
use support::{Harness, Reply, edit};

const DATES: &str = "start_date=2025-01-01&end_date=2025-01-31";

/// The harness policy with an unbounded integer and number parameter on the customer route.
async fn with_numeric_params() -> Harness {
    Harness::with(|p| {
        edit(
            p,
            &[(
                "[routes.query.phone]",
                "[routes.query.ref_no]\ntype = \"integer\"\n[routes.query.amount]\ntype = \"number\"\n[routes.query.phone]",
            )],
        )
    })
    .await
}

/// All records, and the log as text, after the gateway stopped.
async fn stopped(mut h: Harness) -> (Vec<Value>, String) {
    h.stop().await;
    let text = std::fs::read_to_string(h.audit_path()).unwrap();
    (h.audit_records(), text)
}

#[tokio::test]
async fn extension_method_is_recorded_as_other_not_as_sent() {
    let h = Harness::start().await;
    let method = reqwest::Method::from_bytes(b"X-13812345678").unwrap();
    h.client
        .request(method, h.url("/v1/orders/O2025010100000001"))
        .header("x-api-key", &h.keys.erp_key)
        .send()
        .await
        .unwrap();
    let (records, text) = stopped(h).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["method"], "OTHER");
    assert!(
        !text.contains("13812345678") && !text.contains("X-138"),
        "{text}"
    );
}

#[tokio::test]
async fn percent_encoded_email_in_path_is_recorded_redacted() {
    let h = Harness::start().await;
    for path in [
        "/v1/customers/bob%40example.com/orders",
        "/v1/customers/bob%2540example.com/orders",
        "/v1/customers/%31%33%38%31%32%33%34%35%36%37%38/orders",
    ] {
        h.get(path, &[("x-api-key", &h.keys.erp_key)]).await;
    }
    let (records, text) = stopped(h).await;
    let paths: Vec<&str> = records
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/v1/customers/b***@example.com/orders",
            "/v1/customers/b***@example.com/orders",
            "/v1/customers/138****5678/orders",
        ]
    );
    for leak in ["bob%40", "bob%2540", "bob@", "%31%33%38"] {
        assert!(!text.contains(leak), "`{leak}` reached the audit log");
    }
}

#[tokio::test]
async fn separated_phone_in_request_id_is_masked() {
    let h = Harness::start().await;
    for id in ["138-1234-5678", "req_138_1234_5678", "138.1234.5678"] {
        h.get(
            "/v1/orders/O2025010100000001",
            &[("x-api-key", &h.keys.erp_key), ("x-request-id", id)],
        )
        .await;
    }
    let (records, text) = stopped(h).await;
    let ids: Vec<&str> = records
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["138****5678", "req_138****5678", "138****5678"]);
    for leak in [
        "138-1234",
        "138_1234",
        "138.1234",
        "1234-5678",
        "1234_5678",
        "1234.5678",
    ] {
        assert!(!text.contains(leak), "`{leak}` reached the audit log");
    }
}

#[tokio::test]
async fn phone_passed_as_integer_or_number_parameter_is_masked() {
    let h = with_numeric_params().await;
    h.upstream.set_default(Reply::Orders);
    let alice = h.alice();
    h.get(
        &format!("/v1/customers/C0000001/orders?{DATES}&ref_no=13812345678&amount=13912345678"),
        &[("authorization", &alice)],
    )
    .await;
    h.get(
        &format!("/v1/customers/C0000001/orders?{DATES}&ref_no=4111111111111111&amount=12.5"),
        &[("authorization", &alice)],
    )
    .await;
    let (records, text) = stopped(h).await;
    assert_eq!(records[0]["reason"], "ok", "{}", records[0]);
    assert_eq!(records[0]["query"]["ref_no"], "138****5678");
    assert_eq!(records[0]["query"]["amount"], "139****5678.0");
    assert_eq!(records[1]["query"]["ref_no"], "************1111");
    assert_eq!(
        records[1]["query"]["amount"], 12.5,
        "ordinary numbers stay numbers"
    );
    assert_eq!(records[1]["query"]["page_size"], 20);
    for leak in ["13812345678", "13912345678", "4111111111111111"] {
        assert!(!text.contains(leak), "`{leak}` reached the audit log");
    }
}
