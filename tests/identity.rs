//! Issue #3: identity and authorisation. Every refusal is tried against a running gateway with
//! keys made at test time; for each, the caller gets a coarse answer, the audit record the cause,
//! and the order service nothing.

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use ordergate::demo::pki::{JwtKey, jwks};
use parking_lot::Mutex;
use serde_json::{Value, json};
use support::{FakeUpstream, Harness, Keys, edit, token_with};

const ORDERS: &str = "/v1/customers/C0000001/orders?start_date=2025-01-01&end_date=2025-01-31";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// Claims a customer token normally carries, with `overrides` applied (null removes a claim).
fn claims(overrides: Value) -> Value {
    let mut c = json!({"sub": "alice", "iss": support::ISSUER, "aud": "ordergate", "exp": now() + 600, "iat": now(), "roles": ["customer"], "customer_id": "C0000001"});
    for (k, v) in overrides.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

/// Signs arbitrary header and claims with `key`.
fn sign(key: &JwtKey, header: Value, claims: &Value) -> String {
    let message = format!("{}.{}", b64(&header), b64(claims));
    let encoding = jsonwebtoken::EncodingKey::from_ec_pem(key.private_pem.as_bytes()).unwrap();
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &encoding, key.alg).unwrap();
    format!("{message}.{signature}")
}

/// Expects 401 for `token`, and the audit cause `cause`.
async fn refused(h: &Harness, token: &str, cause: &str) {
    let response = h
        .get(ORDERS, &[("authorization", &format!("Bearer {token}"))])
        .await;
    assert_eq!(response.status(), 401, "expected {cause}");
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.text().await.unwrap();
    assert!(
        !body.contains(token) && !body.contains(cause),
        "the caller saw more than a coarse detail: {body}"
    );
    let record = h.record_of(&id).await;
    assert_eq!(record["detail"], cause);
    assert_eq!(record["reason"], "unauthenticated");
}

#[tokio::test]
async fn every_supported_algorithm_is_accepted() {
    let keys = Arc::new(Keys::new());
    let algorithms = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];
    let extra: Vec<JwtKey> = algorithms
        .iter()
        .map(|a| JwtKey::generate(*a, &format!("k-{a:?}")).unwrap())
        .collect();
    let mut all: Vec<&JwtKey> = extra.iter().collect();
    all.push(&keys.es256);
    let secret = "a-test-secret-of-at-least-32-bytes-long!".to_owned();
    let h = Harness::with_files(
        keys.clone(),
        FakeUpstream::start().await,
        |p| {
            edit(p, &[(
                "algorithms = [\"ES256\"]",
                "algorithms = [\"RS256\", \"RS384\", \"RS512\", \"PS256\", \"PS384\", \"PS512\", \"ES256\", \"ES384\", \"EdDSA\", \"HS256\", \"HS384\", \"HS512\"]\nhs_secret_file = \"hs.secret\"",
            )])
        },
        &[("jwks.json", jwks(&all)), ("hs.secret", format!("{secret}\n"))],
    )
    .await;
    for key in &all {
        let t = token_with(
            key,
            "alice",
            &["customer"],
            &[("customer_id", json!("C0000001"))],
        );
        assert_eq!(
            h.get(ORDERS, &[("authorization", &format!("Bearer {t}"))])
                .await
                .status(),
            200,
            "{:?}",
            key.alg
        );
    }
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let spec = ordergate::token::TokenSpec {
            sub: "alice".into(),
            iss: Some(support::ISSUER.into()),
            aud: Some("ordergate".into()),
            alg: Some(alg),
            roles: vec!["customer".into()],
            claims: vec![("customer_id".into(), json!("C0000001"))],
            ttl: Duration::from_secs(60),
            ..Default::default()
        };
        let t = ordergate::token::mint(&spec, secret.as_bytes()).unwrap();
        assert_eq!(
            h.get(ORDERS, &[("authorization", &format!("Bearer {t}"))])
                .await
                .status(),
            200,
            "{alg:?}"
        );
        // HMAC keyed with the *public* RSA key (the classic confusion) is not the secret.
        let rsa_public = serde_json::to_string(&extra[0].jwk).unwrap();
        let forged = ordergate::token::mint(&spec, rsa_public.as_bytes()).unwrap();
        refused(&h, &forged, "bad_signature").await;
    }
}

#[tokio::test]
async fn forged_and_malformed_tokens_are_refused_with_their_cause() {
    // Many failures from one IP: raise the failed-authentication allowance for this test (the
    // bucket itself is tested in traffic.rs).
    let h = Harness::with(|p| {
        edit(
            p,
            &[
                (
                    "per_ip_unauthenticated = { rate = \"30/min\", burst = 10 }",
                    "per_ip_unauthenticated = { rate = \"30/min\", burst = 1000 }",
                ),
                (
                    "leeway = \"30s\"",
                    "leeway = \"30s\"\nmax_token_bytes = 2048",
                ),
            ],
        )
    })
    .await;
    let key = &h.keys.es256;
    let header = json!({"alg": "ES256", "kid": key.kid, "typ": "JWT"});
    // alg none, and an algorithm the policy does not list (HMAC confusion: HS256 with the public key).
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": key.kid})),
        b64(&claims(json!({})))
    );
    refused(&h, &none, "alg_none").await;
    let confused = ordergate::token::mint(
        &ordergate::token::TokenSpec {
            sub: "alice".into(),
            alg: Some(Algorithm::HS256),
            kid: Some(key.kid.clone()),
            ttl: Duration::from_secs(60),
            ..Default::default()
        },
        key.jwk.to_string().as_bytes(),
    )
    .unwrap();
    refused(&h, &confused, "alg_not_allowed").await;
    // An attacker's key under our kid, and a token whose signature belongs to other claims.
    let attacker = JwtKey::generate(Algorithm::ES256, &key.kid).unwrap();
    refused(
        &h,
        &sign(&attacker, header.clone(), &claims(json!({}))),
        "bad_signature",
    )
    .await;
    let genuine = sign(key, header.clone(), &claims(json!({})));
    let (head, rest) = genuine.split_once('.').unwrap();
    let signature = rest.split_once('.').unwrap().1;
    let swapped = format!(
        "{head}.{}.{signature}",
        b64(&claims(json!({"customer_id": "C0000002"})))
    );
    refused(&h, &swapped, "bad_signature").await;
    refused(
        &h,
        &sign(
            key,
            json!({"alg": "ES256", "kid": "nobody"}),
            &claims(json!({})),
        ),
        "unknown_kid",
    )
    .await;
    refused(
        &h,
        &sign(
            key,
            json!({"alg": "ES256", "kid": key.kid, "crit": ["exp"]}),
            &claims(json!({})),
        ),
        "unsupported_crit",
    )
    .await;
    // Claims.
    refused(
        &h,
        &sign(key, header.clone(), &claims(json!({"exp": now() - 120}))),
        "token_expired",
    )
    .await;
    refused(
        &h,
        &sign(key, header.clone(), &claims(json!({"exp": null}))),
        "missing_exp",
    )
    .await;
    refused(
        &h,
        &sign(key, header.clone(), &claims(json!({"nbf": now() + 300}))),
        "token_not_yet_valid",
    )
    .await;
    refused(
        &h,
        &sign(key, header.clone(), &claims(json!({"iat": now() + 300}))),
        "token_issued_in_future",
    )
    .await;
    refused(
        &h,
        &sign(
            key,
            header.clone(),
            &claims(json!({"iss": "https://evil.example/"})),
        ),
        "wrong_issuer",
    )
    .await;
    refused(
        &h,
        &sign(key, header.clone(), &claims(json!({"aud": ["billing"]}))),
        "wrong_audience",
    )
    .await;
    refused(
        &h,
        &sign(key, header.clone(), &claims(json!({"sub": null}))),
        "missing_subject",
    )
    .await;
    // Within leeway: still accepted.
    let lenient = sign(
        key,
        header.clone(),
        &claims(json!({"exp": now() - 5, "nbf": now() + 5})),
    );
    assert_eq!(
        h.get(ORDERS, &[("authorization", &format!("Bearer {lenient}"))])
            .await
            .status(),
        200
    );
    // Size and shape.
    let huge = sign(
        key,
        header.clone(),
        &claims(json!({"pad": "x".repeat(3000)})),
    );
    refused(&h, &huge, "token_too_large").await;
    refused(&h, "not-a-jwt", "malformed_token").await;
    refused(&h, "a.b.c", "malformed_token").await;
    for value in ["Bearer", "Basic YWxpY2U6c2VjcmV0", "Bearer abc def"] {
        let response = h.get(ORDERS, &[("authorization", value)]).await;
        assert_eq!(response.status(), 401, "{value}");
    }
    assert_eq!(
        h.upstream.count(),
        1,
        "only the token within leeway reached the upstream"
    );
}

#[tokio::test]
async fn key_urls_in_token_headers_are_never_followed() {
    let h = Harness::start().await;
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/jwks.json", trap.local_addr().unwrap());
    let attacker = JwtKey::generate(Algorithm::ES256, "attacker").unwrap();
    for header in [
        json!({"alg": "ES256", "kid": "attacker", "jku": url}),
        json!({"alg": "ES256", "kid": "attacker", "x5u": url}),
        json!({"alg": "ES256", "kid": "attacker", "jwk": attacker.jwk}),
        json!({"alg": "ES256", "jwk": attacker.jwk}),
    ] {
        let t = sign(&attacker, header, &claims(json!({})));
        assert_eq!(
            h.get(ORDERS, &[("authorization", &format!("Bearer {t}"))])
                .await
                .status(),
            401
        );
    }
    let contacted = tokio::time::timeout(Duration::from_millis(300), trap.accept()).await;
    assert!(
        contacted.is_err(),
        "the gateway fetched a key from a URL a token named"
    );
    assert_eq!(h.upstream.count(), 0);
}

#[tokio::test]
async fn api_keys_are_checked_by_hash_and_validity_window() {
    let h = Harness::start().await;
    let path = "/v1/orders/O2025010100000001";
    let ok = h.get(path, &[("x-api-key", &h.keys.erp_key)]).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(h.upstream.requests()[0].headers["x-auth-kind"], "api_key");
    assert_eq!(
        h.upstream.requests()[0].headers["x-auth-subject"],
        "erp-sync"
    );
    assert_eq!(h.upstream.requests()[0].headers["x-auth-tenant"], "acme");
    for (key, cause) in [
        ("ogk_unknownunknownunknown".to_owned(), "unknown_api_key"),
        (h.keys.expired_key.clone(), "api_key_expired"),
        (h.keys.future_key.clone(), "api_key_not_yet_valid"),
    ] {
        let response = h.get(path, &[("x-api-key", &key)]).await;
        assert_eq!(response.status(), 401, "{cause}");
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(h.record_of(&id).await["detail"], cause);
    }
    // A key in the query string: 400, and the key appears nowhere in the audit log.
    for query in [
        format!("X-Api-Key={}", h.keys.erp_key),
        format!("api_key={}", h.keys.erp_key),
        format!("access_token={}", h.alice()),
    ] {
        let response = h
            .get(&format!("{path}?{}", query.replace(' ', "%20")), &[])
            .await;
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["type"], "https://ordergate.dev/problems/bad_request");
    }
    let mut h = h;
    h.stop().await;
    let log = std::fs::read_to_string(h.audit_path()).unwrap();
    assert!(
        !log.contains(&h.keys.erp_key) && !log.contains("ogk_"),
        "a key reached the audit log"
    );
    assert_eq!(h.upstream.count(), 1);
}

#[tokio::test]
async fn exactly_one_credential() {
    let h = Harness::start().await;
    let path = "/v1/orders/O2025010100000001";
    let agent = format!("Bearer {}", h.token("agent", &["customer_service"], &[]));
    let response = h
        .get(
            path,
            &[("authorization", &agent), ("x-api-key", &h.keys.erp_key)],
        )
        .await;
    assert_eq!(response.status(), 400);
    let mtls = support::client(&h.keys, Some(&h.keys.jd), true);
    let both = mtls
        .get(h.url(path))
        .header("x-api-key", &h.keys.erp_key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        both.status(),
        400,
        "a mapped client certificate is a credential"
    );
    let none = h.get(path, &[]).await;
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    let body: Value = none.json().await.unwrap();
    assert_eq!(body["detail"], "no credential was presented");
    assert_eq!(h.upstream.count(), 0);
}

#[tokio::test]
async fn mutual_tls_clients_are_mapped_by_subject() {
    let h = Harness::start().await;
    let path = "/v1/customers/C0000003/orders?start_date=2025-01-01&end_date=2025-01-31";
    let jd = support::client(&h.keys, Some(&h.keys.jd), true);
    let response = jd.get(h.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let up = &h.upstream.requests()[0].headers;
    assert_eq!(up["x-auth-kind"], "mtls");
    assert_eq!(up["x-auth-subject"], "jd-marketplace");
    assert_eq!(up["x-auth-scopes"], "orders:read orders:read:any_customer");
    // A certificate from the partners' CA with a subject nobody configured: no credential.
    let stranger = support::client(&h.keys, Some(&h.keys.stranger), true);
    assert_eq!(
        stranger.get(h.url(path)).send().await.unwrap().status(),
        401
    );
    // A certificate from another CA never completes the handshake.
    let rogue_ca = ordergate::demo::pki::Ca::new("rogue").unwrap();
    let rogue = rogue_ca
        .client("jd-marketplace", Some("JD Partner"))
        .unwrap();
    assert!(
        support::client(&h.keys, Some(&rogue), true)
            .get(h.url(path))
            .send()
            .await
            .is_err()
    );
    let records = h.wait_for_records(2).await;
    let mapped = records.iter().find(|r| r["status"] == 200).unwrap();
    assert_eq!(mapped["principal"]["kind"], "mtls");
    assert!(
        mapped["tls"]["client_subject"]
            .as_str()
            .unwrap()
            .contains("CN=jd-marketplace")
    );
}

#[tokio::test]
async fn scopes_and_owner_binding_decide_before_the_upstream_is_called() {
    let h = Harness::start().await;
    let other = "/v1/customers/C0000002/orders?start_date=2025-01-01&end_date=2025-01-31";
    // A customer: own orders yes, someone else's no.
    assert_eq!(
        h.get(ORDERS, &[("authorization", &h.alice())])
            .await
            .status(),
        200
    );
    let response = h.get(other, &[("authorization", &h.alice())]).await;
    assert_eq!(response.status(), 403);
    // Without the claim at all: no.
    let anonymous = format!("Bearer {}", h.token("bob", &["customer"], &[]));
    assert_eq!(
        h.get(ORDERS, &[("authorization", &anonymous)])
            .await
            .status(),
        403
    );
    // A scope missing: the detail route needs orders:read:any_customer.
    assert_eq!(
        h.get(
            "/v1/orders/O2025010100000001",
            &[("authorization", &h.alice())]
        )
        .await
        .status(),
        403
    );
    // No role at all.
    let nobody = format!(
        "Bearer {}",
        h.token("eve", &[], &[("customer_id", json!("C0000002"))])
    );
    assert_eq!(
        h.get(other, &[("authorization", &nobody)]).await.status(),
        403
    );
    // Customer service holds a bypass scope.
    let agent = format!("Bearer {}", h.token("agent", &["customer_service"], &[]));
    assert_eq!(
        h.get(other, &[("authorization", &agent)]).await.status(),
        200
    );
    // Scopes straight from the scope claim count too.
    let scoped = format!(
        "Bearer {}",
        h.token(
            "svc",
            &[],
            &[("scope", json!("orders:read orders:read:any_customer"))]
        )
    );
    assert_eq!(
        h.get(other, &[("authorization", &scoped)]).await.status(),
        200
    );
    assert_eq!(h.upstream.count(), 3);
    let records = h.wait_for_records(7).await;
    let causes: Vec<&str> = records
        .iter()
        .filter_map(|r| r["detail"].as_str())
        .collect();
    assert_eq!(causes.iter().filter(|c| **c == "owner_mismatch").count(), 2);
    assert_eq!(causes.iter().filter(|c| **c == "scope_missing").count(), 2);
}

/// A route whose owner is a typed (integer) parameter: the gateway sends its canonical form.
const NUMBERED: &str = r#"
[[routes]]
id = "account-orders"
method = "GET"
path = "/v1/accounts/{account}/orders"
upstream_path = "/api/orders"
require_scopes = ["orders:read"]
owner = { param = "account", claim = "account", bypass_scopes = ["orders:read:any_customer"] }
forward_params = { account = "account" }
[routes.params.account]
type = "integer"
min = 1
max = 99999999
"#;

#[tokio::test]
async fn the_owner_is_checked_on_the_value_sent_upstream_not_only_as_written() {
    let h = Harness::with(|p| format!("{p}{NUMBERED}")).await;
    let bearer = |claim: Value| {
        format!(
            "Bearer {}",
            h.token("holder", &["customer"], &[("account", claim)])
        )
    };
    // Claim "0042", path 0042: equal as written, but 42 is what would go upstream.
    let padded = bearer(json!("0042"));
    let response = h
        .get("/v1/accounts/0042/orders", &[("authorization", &padded)])
        .await;
    assert_eq!(response.status(), 403);
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let record = h.record_of(&id).await;
    assert_eq!(record["detail"], "owner_mismatch", "{record}");
    // Claim 42 (a string or a number), path 0042: refused as written already. The claim's own
    // canonical id passes, and is what the upstream receives.
    for (path, claims, expected) in [
        (
            "/v1/accounts/0042/orders",
            vec![json!("42"), json!(42)],
            403,
        ),
        (
            "/v1/accounts/42/orders",
            vec![json!("42"), json!(42), json!(["0042", "42"])],
            200,
        ),
    ] {
        for claim in claims {
            let status = h
                .get(path, &[("authorization", &bearer(claim.clone()))])
                .await
                .status();
            assert_eq!(status, expected, "{path} with {claim}");
        }
        if expected == 403 {
            assert_eq!(
                h.upstream.count(),
                0,
                "a refused request reached the upstream"
            );
        }
    }
    let targets: Vec<String> = h
        .upstream
        .requests()
        .into_iter()
        .map(|r| r.target)
        .collect();
    assert_eq!(targets, ["/api/orders?account=42"; 3]);
}

#[tokio::test]
async fn a_rotated_jwks_file_is_picked_up_without_restart() {
    let h = Harness::start().await;
    let next = JwtKey::generate(Algorithm::ES256, "rotated-2027").unwrap();
    let token = format!(
        "Bearer {}",
        token_with(
            &next,
            "alice",
            &["customer"],
            &[("customer_id", json!("C0000001"))]
        )
    );
    std::fs::write(
        h.dir.path().join("jwks.json"),
        jwks(&[&h.keys.es256, &next]),
    )
    .unwrap();
    assert_eq!(
        h.get(ORDERS, &[("authorization", &token)]).await.status(),
        200,
        "the unknown kid triggered one refresh"
    );
    assert_eq!(
        h.get(ORDERS, &[("authorization", &h.alice())])
            .await
            .status(),
        200,
        "the old key still works"
    );
}

#[tokio::test]
async fn a_rotated_jwks_url_is_picked_up_and_refreshes_are_rate_limited() {
    support::install();
    let keys = Arc::new(Keys::new());
    let served = Arc::new(Mutex::new(jwks(&[&keys.es256])));
    let (jwks_addr, hits) = support::serve_https(&keys, served.clone()).await;
    let h = Harness::with_parts(keys.clone(), FakeUpstream::start().await, |p| {
        edit(
            p,
            &[(
                "jwks_file = \"jwks.json\"",
                &format!(
                    "jwks_url = \"https://127.0.0.1:{}/jwks.json\"\njwks_ca = \"ca.pem\"",
                    jwks_addr.port()
                ),
            )],
        )
    })
    .await;
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "fetched once at start"
    );
    assert_eq!(
        h.get(ORDERS, &[("authorization", &h.alice())])
            .await
            .status(),
        200
    );
    let next = JwtKey::generate(Algorithm::ES256, "url-rotated").unwrap();
    *served.lock() = jwks(&[&keys.es256, &next]);
    let token = format!(
        "Bearer {}",
        token_with(
            &next,
            "alice",
            &["customer"],
            &[("customer_id", json!("C0000001"))]
        )
    );
    assert_eq!(
        h.get(ORDERS, &[("authorization", &token)]).await.status(),
        200
    );
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 2);
    // More unknown kids within 30 s cause no further fetches.
    for n in 0..5 {
        let stranger = JwtKey::generate(Algorithm::ES256, &format!("unknown-{n}")).unwrap();
        let t = format!(
            "Bearer {}",
            token_with(&stranger, "alice", &["customer"], &[])
        );
        assert_eq!(h.get(ORDERS, &[("authorization", &t)]).await.status(), 401);
    }
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "unknown kids must not hammer the IdP"
    );
}

#[tokio::test]
async fn a_failed_jwks_fetch_keeps_the_last_good_set_and_is_counted() {
    support::install();
    let keys = Arc::new(Keys::new());
    let served = Arc::new(Mutex::new(jwks(&[&keys.es256])));
    let (jwks_addr, hits) = support::serve_https(&keys, served.clone()).await;
    let h = Harness::with_parts(keys.clone(), FakeUpstream::start().await, |p| {
        edit(
            p,
            &[(
                "jwks_file = \"jwks.json\"",
                &format!("jwks_url = \"https://127.0.0.1:{}/jwks.json\"\njwks_ca = \"ca.pem\"\njwks_refresh = \"1s\"", jwks_addr.port()),
            )],
        )
    })
    .await;
    let errors = || async {
        let metrics = h.metrics().await;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("ordergate_jwks_refresh_total{result=\"error\"} "))
            .map_or(0.0, |v| v.trim().parse::<f64>().unwrap())
    };
    let errors_before = errors().await;
    *served.lock() = "this is not a JWKS".to_owned();
    // Wait for the background refresh to fetch the broken document.
    for _ in 0..300 {
        if hits.load(std::sync::atomic::Ordering::SeqCst) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        hits.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "no background refresh happened"
    );
    let mut counted = false;
    for _ in 0..300 {
        if errors().await > errors_before {
            counted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(counted, "the failed refresh was not counted");
    assert_eq!(
        h.get(ORDERS, &[("authorization", &h.alice())])
            .await
            .status(),
        200,
        "the last good key set is kept"
    );
}

// Issue 10: whose address, which principal, and who may unfreeze.

const TRUSTED_LOOPBACK: (&str, &str) = (
    "shutdown_grace = \"3s\"",
    "shutdown_grace = \"3s\"\ntrusted_proxies = [\"127.0.0.0/8\"]",
);
const ORDER: &str = "/v1/orders/O2025010100000001";

#[tokio::test]
async fn a_trusted_proxy_sending_each_forwarded_for_form_names_the_client_in_the_audit() {
    let h = Harness::with(|p| edit(p, &[TRUSTED_LOOPBACK])).await;
    let key = h.keys.erp_key.clone();
    let cases = [
        ("203.0.113.7", "203.0.113.7"),
        ("203.0.113.7:5555", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("\"[2001:db8::1]:443\"", "2001:db8::1"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("198.51.100.1, 203.0.113.8:80, 127.0.0.5", "203.0.113.8"),
        ("garbage, 203.0.113.10", "203.0.113.10"),
        // A bad element before any untrusted address: an unidentified client, never the proxy.
        ("unknown", "0.0.0.0"),
        ("_hidden", "0.0.0.0"),
        ("203.0.113.7, not-an-ip", "0.0.0.0"),
        ("203.0.113.7:99999", "0.0.0.0"),
    ];
    for (n, (xff, client)) in cases.iter().enumerate() {
        let id = format!("xff-{n}");
        let r = h
            .get(
                ORDER,
                &[
                    ("x-api-key", &key),
                    ("x-forwarded-for", xff),
                    ("x-request-id", &id),
                ],
            )
            .await;
        assert_eq!(r.status(), 200, "{xff}");
        let record = h.record_of(&id).await;
        assert_eq!(record["client_ip"], *client, "{xff}");
        assert_ne!(
            record["client_ip"], "127.0.0.1",
            "{xff}: the proxy is never the client"
        );
    }
}

#[tokio::test]
async fn a_token_whose_sub_equals_a_frozen_key_id_leaves_the_key_served() {
    let h = Harness::with(|p| {
        edit(
            p,
            &[TRUSTED_LOOPBACK, ("max_denials = 1000", "max_denials = 2")],
        )
    })
    .await;
    // A customer token with `sub = "erp-sync"` asks for another customer's orders, twice.
    let impostor = format!(
        "Bearer {}",
        h.token(
            "erp-sync",
            &["customer"],
            &[("customer_id", json!("C0000009"))]
        )
    );
    let mut statuses = Vec::new();
    for n in 0..3 {
        // Each from its own address, so only the principal collects denials.
        let from = format!("203.0.113.{}", 10 + n);
        statuses.push(
            h.get(
                ORDERS,
                &[("authorization", &impostor), ("x-forwarded-for", &from)],
            )
            .await
            .status()
            .as_u16(),
        );
    }
    assert_eq!(statuses, [403, 403, 403]);
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
    assert_eq!(keys, ["principal:jwt:erp-sync"]);
    let served = h
        .get(
            ORDER,
            &[
                ("x-api-key", &h.keys.erp_key),
                ("x-forwarded-for", "203.0.113.10"),
                ("x-request-id", "the-key-itself"),
            ],
        )
        .await;
    assert_eq!(served.status(), 200, "the API key erp-sync is not frozen");
    // The frozen token is refused right after authentication, as `principal_frozen`.
    let refused = h
        .get(
            ORDER,
            &[
                ("authorization", &impostor),
                ("x-forwarded-for", "203.0.113.50"),
                ("x-request-id", "the-token"),
            ],
        )
        .await;
    assert_eq!(refused.status(), 403);
    assert_eq!(h.record_of("the-token").await["detail"], "principal_frozen");
    // What GET lists, DELETE takes; the old kind-less form names nothing.
    let delete = |key: &str| {
        admin
            .delete(h.admin_url(&format!("/admin/frozen/{key}")))
            .send()
    };
    assert_eq!(delete("principal:erp-sync").await.unwrap().status(), 404);
    assert_eq!(
        delete("principal:api_key:erp-sync").await.unwrap().status(),
        404
    );
    assert_eq!(
        delete("principal:jwt:erp-sync").await.unwrap().status(),
        204
    );
}

#[tokio::test]
async fn ipv6_clients_share_the_failed_auth_bucket_of_their_64_and_the_audit_keeps_the_address() {
    let h = Harness::with(|p| {
        edit(
            p,
            &[
                TRUSTED_LOOPBACK,
                (
                    "per_ip_unauthenticated = { rate = \"30/min\", burst = 10 }",
                    "per_ip_unauthenticated = { rate = \"1/min\", burst = 3 }",
                ),
            ],
        )
    })
    .await;
    let mut statuses = Vec::new();
    for n in 1..=4 {
        let from = format!("2001:db8:1:2::{n}");
        let id = format!("v6-{n}");
        statuses.push(
            h.get(
                ORDERS,
                &[
                    ("authorization", "Bearer x.y.z"),
                    ("x-forwarded-for", &from),
                    ("x-request-id", &id),
                ],
            )
            .await
            .status()
            .as_u16(),
        );
        assert_eq!(h.record_of(&id).await["client_ip"], from);
    }
    assert_eq!(statuses, [401, 401, 401, 429], "one /64, one bucket");
    let neighbour = h
        .get(
            ORDERS,
            &[
                ("authorization", "Bearer x.y.z"),
                ("x-forwarded-for", "2001:db8:1:3::1"),
            ],
        )
        .await;
    assert_eq!(neighbour.status(), 401, "another /64 has its own bucket");
}

#[tokio::test]
async fn a_client_cannot_send_a_request_id_of_the_gateways_form() {
    let h = Harness::start().await;
    let made = h.get("/v1/nothing", &[]).await.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(made.starts_with("og-") && made.contains(':'), "{made}");
    let replayed = h.get("/v1/nothing", &[("x-request-id", &made)]).await;
    let id = replayed.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(id, made, "a gateway-made id is never taken from a client");
    let look_alike = made.replace(':', "-");
    let kept = h.get("/v1/nothing", &[("x-request-id", &look_alike)]).await;
    assert_eq!(
        kept.headers()["x-request-id"].to_str().unwrap(),
        look_alike,
        "a client's id is kept, and it cannot take the gateway's form"
    );
}

#[tokio::test]
async fn a_key_anywhere_in_the_query_is_refused_and_never_forwarded() {
    let h = Harness::start().await;
    let key = h.keys.logistics_key.clone();
    let escaped = key.replacen("ogk_", "%256Fgk%5F", 1);
    for (n, query) in [
        format!("cursor=x{key}"),
        format!("cursor=abc&cursor={key}"),
        format!("cursor=%6F{}", &key[1..]),
        format!("cursor={escaped}"),
        format!("{key}=1"),
    ]
    .iter()
    .enumerate()
    {
        let id = format!("kq-{n}");
        let r = h
            .get(
                &format!("{ORDERS}&{query}"),
                &[("authorization", &h.alice()), ("x-request-id", &id)],
            )
            .await;
        assert_eq!(r.status(), 400, "{query}");
        let record = h.record_of(&id).await;
        assert_eq!(record["detail"], "api_key_in_query", "{query}");
        let line = record.to_string();
        assert!(
            !line.contains(&key[4..]),
            "the key reached the audit record"
        );
    }
    assert_eq!(h.upstream.count(), 0);
}

const ADMIN_TOKEN: &str = "admin-token-0123456789abcdefghijklmnop";

#[tokio::test]
async fn admin_routes_need_the_bearer_token_and_health_and_metrics_stay_open() {
    let keys = Arc::new(Keys::new());
    let upstream = FakeUpstream::start().await;
    let h = Harness::with_files(
        keys,
        upstream,
        |p| {
            edit(
                p,
                &[(
                    "admin_listen = \"127.0.0.1:0\"",
                    "admin_listen = \"127.0.0.1:0\"\nadmin_token_file = \"admin.token\"",
                )],
            )
        },
        &[("admin.token", format!("{ADMIN_TOKEN}\n"))],
    )
    .await;
    let admin = reqwest::Client::new();
    let list = |auth: Option<String>| {
        let mut request = admin.get(h.admin_url("/admin/frozen"));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        request.send()
    };
    for wrong in [
        None,
        Some(format!("Bearer {}", &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1])),
        Some(format!("Bearer {ADMIN_TOKEN}x")),
        Some(format!("Basic {ADMIN_TOKEN}")),
        Some(ADMIN_TOKEN.to_owned()),
    ] {
        let r = list(wrong.clone()).await.unwrap();
        assert_eq!(r.status(), 401, "{wrong:?}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
    }
    let unfreeze = admin
        .delete(h.admin_url("/admin/frozen/ip:127.0.0.1"))
        .send()
        .await
        .unwrap();
    assert_eq!(unfreeze.status(), 401, "no unfreeze without the token");
    let unknown = admin
        .get(h.admin_url("/admin/anything"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        unknown.status(),
        401,
        "closed by default, routes added later included"
    );
    let r = list(Some(format!("Bearer {ADMIN_TOKEN}"))).await.unwrap();
    assert_eq!(r.status(), 200);
    // With the token, a host name is fine (the token is the boundary); a web page is not.
    let r = admin
        .get(h.admin_url("/admin/frozen"))
        .bearer_auth(ADMIN_TOKEN)
        .header("host", "gateway-1.internal")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = admin
        .get(h.admin_url("/admin/frozen"))
        .bearer_auth(ADMIN_TOKEN)
        .header("origin", "https://shop.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = admin
        .delete(h.admin_url("/admin/frozen/ip:127.0.0.1"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "authorised, and nothing was frozen");
    for open in ["/healthz", "/readyz", "/metrics"] {
        let r = admin.get(h.admin_url(open)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{open}");
    }
}

/// Loopback is no boundary against a browser on the same host: what a page sends (an
/// `Origin`, a cross-site fetch mark) is refused, and without a token so is a host name a page
/// could have rebound to 127.0.0.1. Operators' tools and the open paths are unaffected.
#[tokio::test]
async fn admin_routes_refuse_web_pages_and_rebound_host_names() {
    let h = Harness::start().await;
    let admin = reqwest::Client::new();
    let port = h
        .admin_url("/")
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let frozen = |headers: &[(&str, String)]| {
        let mut request = admin.get(h.admin_url("/admin/frozen"));
        for (n, v) in headers {
            request = request.header(*n, v);
        }
        request.send()
    };
    for refused in [
        vec![("host", format!("rebound.example:{port}"))],
        vec![("host", "rebound.example".to_owned())],
        vec![("origin", "https://shop.example".to_owned())],
        vec![("sec-fetch-site", "cross-site".to_owned())],
        vec![("sec-fetch-site", "same-site".to_owned())],
    ] {
        let r = frozen(&refused).await.unwrap();
        assert_eq!(r.status(), 403, "{refused:?}");
    }
    for allowed in [
        vec![],
        vec![("host", format!("localhost:{port}"))],
        vec![("host", format!("[::1]:{port}"))],
        vec![("sec-fetch-site", "none".to_owned())],
    ] {
        let r = frozen(&allowed).await.unwrap();
        assert_eq!(r.status(), 200, "{allowed:?}");
    }
    let reset = admin
        .post(h.admin_url("/admin/canary/customer-orders/reset"))
        .header("origin", "null")
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 403, "a page's bodiless POST");
    let unfreeze = admin
        .delete(h.admin_url("/admin/frozen/ip:127.0.0.1"))
        .header("host", "rebound.example")
        .send()
        .await
        .unwrap();
    assert_eq!(unfreeze.status(), 403);
    for open in ["/healthz", "/readyz", "/metrics"] {
        let r = admin
            .get(h.admin_url(open))
            .header("host", "scrape-target.internal")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{open}");
    }
}

#[test]
fn a_non_loopback_admin_listen_without_a_token_is_refused_where_it_is_written() {
    support::install();
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    support::write_files(dir.path(), &keys);
    let base = support::base_policy(&keys, "127.0.0.1:9".parse().unwrap());
    let path = dir.path().join("policy.toml");
    let open = edit(
        &base,
        &[(
            "admin_listen = \"127.0.0.1:0\"",
            "admin_listen = \"0.0.0.0:0\"",
        )],
    );
    let problems = ordergate::policy::load_str(&path, &open).err().unwrap();
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert!(
        text.iter()
            .any(|t| t.contains("policy.toml:4:") && t.contains("admin_token")),
        "{text:#?}"
    );
    std::fs::write(dir.path().join("admin.token"), ADMIN_TOKEN).unwrap();
    let guarded = edit(
        &open,
        &[(
            "admin_listen = \"0.0.0.0:0\"",
            "admin_listen = \"0.0.0.0:0\"\nadmin_token_file = \"admin.token\"",
        )],
    );
    assert!(ordergate::policy::load_str(&path, &guarded).is_ok());
    std::fs::write(dir.path().join("admin.token"), "short").unwrap();
    let problems = ordergate::policy::load_str(&path, &guarded).err().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.to_string().contains("at least 32 bytes"))
    );
}

#[tokio::test]
async fn subjects_that_differ_reach_the_upstream_as_different_values() {
    let h = Harness::start().await;
    for sub in ["a%01b", "a\u{1}b", " alice"] {
        let token = h.token(sub, &["customer"], &[("customer_id", json!("C0000001"))]);
        let r = h
            .get(ORDERS, &[("authorization", &format!("Bearer {token}"))])
            .await;
        assert_eq!(r.status(), 200, "{sub:?}");
    }
    let subjects: Vec<String> = h
        .upstream
        .requests()
        .iter()
        .map(|r| r.headers["x-auth-subject"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(subjects, ["a%2501b", "a%01b", "%20alice"]);
    assert!(
        h.upstream
            .requests()
            .iter()
            .all(|r| r.headers["x-auth-kind"] == "jwt")
    );
}
