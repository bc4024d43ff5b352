//! Issue 11, signed requests (CONTRACT §7.1) end to end: keys made per test (ed25519 for the
//! carrier, hmac-sha256 for the ERP, ed25519 for the mTLS marketplace), every refusal over
//! HTTP/1.1 and HTTP/2 with the same verdict, replays on one instance and across two sharing a
//! real Redis, a dead Redis under both `on_store_error` values, and `ordergate sign`'s output
//! accepted by the gateway.

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ordergate::stage::signature::sign::{ToSign, fresh_nonce};
use ordergate::stage::signature::verify::SigningKey;
use ordergate::vocab::event::{Deliver, Event, EventKind};
use serde_json::Value;
use support::{FakeUpstream, Harness, Keys, RedisServer, edit};

const ORDERS: &str = "/v1/customers/C0000001/orders?start_date=2025-01-01&end_date=2025-01-31";
const NOTES: &str = "/v1/orders/O2024010100001/notes";
const RAW: &str = "/v1/raw/orders/O2024010100001";
const ERP_SECRET: &str = "erp-sync-shared-secret-of-more-than-32-bytes";

/// The keys the partners sign with, and the files the gateway verifies with.
struct Partners {
    carrier: SigningKey,
    erp: SigningKey,
    marketplace: SigningKey,
    files: Vec<(&'static str, String)>,
}

impl Partners {
    fn new() -> Self {
        let (carrier_private, carrier_public) = SigningKey::generate_ed25519().unwrap();
        let (market_private, market_public) = SigningKey::generate_ed25519().unwrap();
        Self {
            carrier: SigningKey::ed25519_from_pem(carrier_private.as_bytes()).unwrap(),
            erp: SigningKey::hmac(ERP_SECRET.as_bytes()).unwrap(),
            marketplace: SigningKey::ed25519_from_pem(market_private.as_bytes()).unwrap(),
            files: vec![
                ("carrier.pub.pem", carrier_public),
                ("jd.pub.pem", market_public),
                ("carrier.key.pem", carrier_private),
                ("erp.secret", format!("{ERP_SECRET}\n")),
            ],
        }
    }
}

/// The policy edits that make the carrier, the ERP and the marketplace sign, and `order-raw`
/// demand a signature from everyone.
fn signing(extra: &[(&str, &str)]) -> impl FnOnce(&str) -> String {
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    move |p: &str| {
        let mut edits = vec![
            (
                "[auth.api_keys]\n".to_owned(),
                "[auth.signatures]\nmax_age = \"60s\"\nclock_skew = \"5s\"\n\n[auth.api_keys]\n"
                    .to_owned(),
            ),
            (
                "id = \"sf-logistics\"\n".to_owned(),
                "id = \"sf-logistics\"\nsignature = { alg = \"ed25519\", public_key = \"carrier.pub.pem\" }\n".to_owned(),
            ),
            (
                "id = \"erp-sync\"\n".to_owned(),
                "id = \"erp-sync\"\nsignature = { alg = \"hmac-sha256\", secret_file = \"erp.secret\" }\n".to_owned(),
            ),
            (
                "subject = \"CN=jd-marketplace,O=JD Partner\"\n".to_owned(),
                "subject = \"CN=jd-marketplace,O=JD Partner\"\nsignature = { alg = \"ed25519\", public_key = \"jd.pub.pem\" }\n".to_owned(),
            ),
            (
                "id = \"order-raw\"\n".to_owned(),
                "id = \"order-raw\"\nrequire_signature = true\n".to_owned(),
            ),
        ];
        edits.extend(extra);
        let edits: Vec<(&str, &str)> = edits
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        edit(p, &edits)
    }
}

async fn gateway(partners: &Partners, extra: &[(&str, &str)]) -> Harness {
    support::install();
    Harness::with_files(
        Arc::new(Keys::new()),
        FakeUpstream::start().await,
        signing(extra),
        &partners.files,
    )
    .await
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A request as it will be sent: method, URL, headers (credential and signature), body.
#[derive(Debug, Clone)]
struct Outgoing {
    method: http::Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

/// What `key` signs for `method url` with `body`, `created` seconds, a fresh nonce.
fn signed_headers(
    key: &SigningKey,
    keyid: &str,
    method: &http::Method,
    url: &str,
    body: Option<&[u8]>,
    created: i64,
) -> Vec<(String, String)> {
    signed_typed(key, keyid, method, url, body, None, created)
}

/// The same, covering the body's `content_type` too when given.
fn signed_typed(
    key: &SigningKey,
    keyid: &str,
    method: &http::Method,
    url: &str,
    body: Option<&[u8]>,
    content_type: Option<&str>,
    created: i64,
) -> Vec<(String, String)> {
    let uri: http::Uri = url.parse().unwrap();
    support::signature_lines(
        key,
        keyid,
        ToSign {
            method,
            url: &uri,
            body,
            content_type,
            created,
            nonce: &fresh_nonce(),
        },
    )
}

impl Outgoing {
    fn carrier(h: &Harness, partners: &Partners, path: &str) -> Self {
        Self::carrier_at(h, partners, path, now())
    }

    /// The carrier's request signed `created` at that time.
    fn carrier_at(h: &Harness, partners: &Partners, path: &str, created: i64) -> Self {
        let url = h.url(path);
        let mut headers = vec![("x-api-key".to_owned(), h.keys.logistics_key.clone())];
        headers.extend(signed_headers(
            &partners.carrier,
            "sf-logistics",
            &http::Method::GET,
            &url,
            None,
            created,
        ));
        Self {
            method: http::Method::GET,
            url,
            headers,
            body: None,
        }
    }

    /// The carrier's request with this one's `(keyid, nonce)` pair, to `h` (each instance
    /// listens on its own port, so the URL, and with it the signature, is `h`'s), signed
    /// `created` at that time.
    fn same_nonce_to(&self, h: &Harness, partners: &Partners, created: i64) -> Self {
        let input = self.header("signature-input");
        let start = input.find("nonce=\"").unwrap() + 7;
        let nonce = &input[start..start + input[start..].find('"').unwrap()];
        let own: http::Uri = self.url.parse().unwrap();
        let mut replay = Self::carrier(h, partners, own.path_and_query().unwrap().as_str());
        let lines = support::signed_get_lines(
            &partners.carrier,
            "sf-logistics",
            &replay.url,
            created,
            nonce,
        );
        for (n, v) in lines {
            replay = replay.set(&n, &v);
        }
        replay
    }

    fn erp_note(h: &Harness, partners: &Partners, body: &[u8]) -> Self {
        let url = h.url(NOTES);
        let mut headers = vec![
            ("x-api-key".to_owned(), h.keys.erp_key.clone()),
            ("content-type".to_owned(), "text/plain".to_owned()),
        ];
        headers.extend(signed_headers(
            &partners.erp,
            "erp-sync",
            &http::Method::POST,
            &url,
            Some(body),
            now(),
        ));
        Self {
            method: http::Method::POST,
            url,
            headers,
            body: Some(body.to_vec()),
        }
    }

    fn header(&self, name: &str) -> &str {
        &self
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .unwrap()
            .1
    }

    fn set(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    /// Sends it on `client`; returns the status and the audit record.
    async fn send(&self, h: &Harness, client: &reqwest::Client) -> (u16, Value) {
        let id = format!("sig-{}", fresh_nonce().replace('_', "."));
        let mut request = client
            .request(self.method.clone(), &self.url)
            .header("x-request-id", &id);
        for (n, v) in &self.headers {
            request = request.header(n, v);
        }
        if let Some(body) = &self.body {
            request = request.body(body.clone());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        if status == 401 {
            let body: Value = response.json().await.unwrap();
            assert_eq!(
                body["type"],
                "https://ordergate.dev/problems/unauthenticated"
            );
            let text = body.to_string();
            assert!(
                !text.contains("signature"),
                "the caller gets no detail: {text}"
            );
        }
        (status, h.record_of(&id).await)
    }
}

/// Both protocols, so every verdict is checked over each.
fn clients(h: &Harness) -> [(&'static str, reqwest::Client); 2] {
    [
        ("http/1.1", support::client(&h.keys, None, false)),
        ("h2", support::client(&h.keys, None, true)),
    ]
}

fn assert_refused(record: &Value, detail: &str, protocol: &str) {
    assert_eq!(record["status"], 401, "{protocol}: {record}");
    assert_eq!(record["reason"], "unauthenticated", "{protocol}");
    assert_eq!(record["detail"], detail, "{protocol}: {record}");
    assert_eq!(record["signed"], false, "{protocol}");
}

#[tokio::test]
async fn a_signed_request_passes_and_its_record_says_signed() {
    let partners = Partners::new();
    let h = gateway(&partners, &[]).await;
    for (protocol, client) in clients(&h) {
        let (status, record) = Outgoing::carrier(&h, &partners, ORDERS)
            .send(&h, &client)
            .await;
        assert_eq!(status, 200, "{protocol}: {record}");
        assert_eq!(record["signed"], true, "{protocol}");
        assert_eq!(record["principal"]["id"], "sf-logistics");
    }
    // A credential that does not sign, on a route that does not demand it: unchanged.
    let plain = h.get(ORDERS, &[("authorization", &h.alice())]).await;
    assert_eq!(plain.status(), 200);
    assert_eq!(h.upstream.count(), 3);
}

#[tokio::test]
async fn every_refusal_is_the_same_over_both_protocols() {
    let partners = Partners::new();
    // Many refusals from one address: a per-IP bucket large enough for all of them.
    let h = gateway(
        &partners,
        &[(
            "per_ip_unauthenticated = { rate = \"30/min\", burst = 10 }",
            "per_ip_unauthenticated = { rate = \"30/min\", burst = 1000 }",
        )],
    )
    .await;
    let localhost = format!("https://localhost:{}{ORDERS}", h.addr.port());
    type Case<'a> = (
        &'static str,
        &'static str,
        Box<dyn Fn(&Harness) -> Outgoing + 'a>,
    );
    let p = &partners;
    let cases: Vec<Case> = vec![
        (
            "unsigned",
            "signature_missing",
            Box::new(|h| {
                Outgoing::carrier(h, p, ORDERS)
                    .without("signature")
                    .without("signature-input")
            }),
        ),
        (
            "no Signature",
            "signature_missing",
            Box::new(|h| Outgoing::carrier(h, p, ORDERS).without("signature")),
        ),
        (
            "garbage",
            "signature_malformed",
            Box::new(|h| Outgoing::carrier(h, p, ORDERS).set("signature", "sig1=((")),
        ),
        (
            "tampered path",
            "signature_invalid",
            Box::new(|h| {
                let mut o = Outgoing::carrier(h, p, ORDERS);
                o.url = o.url.replace("C0000001", "C0000002");
                o
            }),
        ),
        (
            "tampered query",
            "signature_invalid",
            Box::new(|h| {
                let mut o = Outgoing::carrier(h, p, ORDERS);
                o.url = o.url.replace("2025-01-31", "2025-01-30");
                o
            }),
        ),
        (
            "query added",
            "signature_invalid",
            Box::new(|h| {
                let mut o = Outgoing::carrier(h, p, ORDERS);
                o.url.push_str("&status=paid");
                o
            }),
        ),
        (
            "tampered authority",
            "signature_invalid",
            Box::new(move |h| {
                let mut o = Outgoing::carrier(h, p, ORDERS);
                let signed_for_localhost = signed_headers(
                    &p.carrier,
                    "sf-logistics",
                    &http::Method::GET,
                    &localhost,
                    None,
                    now(),
                );
                for (n, v) in signed_for_localhost {
                    o = o.set(&n, &v);
                }
                o
            }),
        ),
        (
            "tampered parameters",
            "signature_invalid",
            Box::new(|h| {
                let o = Outgoing::carrier(h, p, ORDERS);
                let input = o
                    .header("signature-input")
                    .replace("alg=", "tag=\"x\";alg=");
                o.set("signature-input", &input)
            }),
        ),
        (
            "another key",
            "signature_invalid",
            Box::new(|h| {
                let mut o = Outgoing::carrier(h, p, ORDERS);
                for (n, v) in signed_headers(
                    &p.marketplace,
                    "sf-logistics",
                    &http::Method::GET,
                    &o.url,
                    None,
                    now(),
                ) {
                    o = o.set(&n, &v);
                }
                o
            }),
        ),
        (
            "keyid of another credential",
            "signature_keyid_mismatch",
            Box::new(|h| {
                let mut o = Outgoing::carrier(h, p, ORDERS);
                for (n, v) in signed_headers(
                    &p.carrier,
                    "erp-sync",
                    &http::Method::GET,
                    &o.url,
                    None,
                    now(),
                ) {
                    o = o.set(&n, &v);
                }
                o
            }),
        ),
        (
            "expired",
            "signature_expired",
            Box::new(|h| {
                let mut o = Outgoing::carrier(h, p, ORDERS);
                for (n, v) in signed_headers(
                    &p.carrier,
                    "sf-logistics",
                    &http::Method::GET,
                    &o.url,
                    None,
                    now() - 120,
                ) {
                    o = o.set(&n, &v);
                }
                o
            }),
        ),
        (
            "from the future",
            "signature_future",
            Box::new(|h| {
                let mut o = Outgoing::carrier(h, p, ORDERS);
                for (n, v) in signed_headers(
                    &p.carrier,
                    "sf-logistics",
                    &http::Method::GET,
                    &o.url,
                    None,
                    now() + 60,
                ) {
                    o = o.set(&n, &v);
                }
                o
            }),
        ),
    ];
    let mut with_components: Vec<Case> = [
        "\"@method\" ",
        "\"@authority\" ",
        "\"@path\" ",
        " \"@query\"",
    ]
    .into_iter()
    .map(|component| {
        let case: Case = (
            component,
            "signature_components",
            Box::new(move |h: &Harness| {
                let o = Outgoing::carrier(h, p, ORDERS);
                let input = o.header("signature-input").replacen(component, "", 1);
                o.set("signature-input", &input)
            }),
        );
        case
    })
    .collect();
    with_components.extend(cases);
    for (protocol, client) in clients(&h) {
        for (name, detail, make) in &with_components {
            let (status, record) = make(&h).send(&h, &client).await;
            assert_eq!(status, 401, "{protocol} {name}: {record}");
            assert_refused(&record, detail, &format!("{protocol} {name}"));
        }
    }
    assert_eq!(
        h.upstream.count(),
        0,
        "nothing refused reached the upstream"
    );
}

#[tokio::test]
async fn a_replay_is_refused_once_seen_and_reported() {
    let partners = Partners::new();
    let h = gateway(&partners, &[]).await;
    for (protocol, client) in clients(&h) {
        let once = Outgoing::carrier(&h, &partners, ORDERS);
        assert_eq!(once.send(&h, &client).await.0, 200, "{protocol}");
        let (status, record) = once.send(&h, &client).await;
        assert_eq!(status, 401, "{protocol}");
        assert_refused(&record, "signature_replayed", protocol);
    }
    assert_eq!(h.upstream.count(), 2);
    let metrics = h.metrics().await;
    assert!(
        metrics.contains("ordergate_signature_failures_total{detail=\"signature_replayed\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn every_signature_failure_series_is_exported_from_the_start() {
    let partners = Partners::new();
    let h = gateway(&partners, &[]).await;
    let metrics = h.metrics().await;
    for detail in [
        "signature_missing",
        "signature_malformed",
        "signature_components",
        "signature_keyid_mismatch",
        "signature_invalid",
        "signature_expired",
        "signature_future",
        "signature_replayed",
        "digest_mismatch",
    ] {
        assert!(
            metrics.contains(&format!(
                "ordergate_signature_failures_total{{detail=\"{detail}\"}}"
            )),
            "{detail}"
        );
    }
    assert!(metrics.contains("ordergate_signature_nonce_unchecked_total"));
}

#[tokio::test]
async fn a_signed_body_must_match_its_digest() {
    let partners = Partners::new();
    let h = gateway(&partners, &[]).await;
    for (protocol, client) in clients(&h) {
        let good = Outgoing::erp_note(&h, &partners, b"call before noon");
        let (status, record) = good.send(&h, &client).await;
        assert_eq!(status, 200, "{protocol}: {record}");
        assert_eq!(record["signed"], true);

        let mut tampered = Outgoing::erp_note(&h, &partners, b"call before noon");
        tampered.body = Some(b"call after noon!".to_vec());
        let (status, record) = tampered.send(&h, &client).await;
        assert_eq!(status, 401, "{protocol}");
        assert_refused(&record, "digest_mismatch", protocol);

        // A digest header changed to match the new body breaks the signature instead.
        let mut rewritten = Outgoing::erp_note(&h, &partners, b"call before noon");
        rewritten.body = Some(b"call after noon!".to_vec());
        let digest = ordergate::stage::signature::digest::header_value(
            b"call after noon!",
            ordergate::stage::signature::digest::DigestAlg::Sha256,
        );
        let rewritten = rewritten.set("content-digest", &digest);
        let (_, record) = rewritten.send(&h, &client).await;
        assert_refused(&record, "signature_invalid", protocol);

        // A body the signature does not cover at all.
        let mut uncovered = Outgoing::erp_note(&h, &partners, b"x");
        for (n, v) in signed_headers(
            &partners.erp,
            "erp-sync",
            &http::Method::POST,
            &uncovered.url,
            None,
            now(),
        ) {
            uncovered = uncovered.set(&n, &v);
        }
        let (_, record) = uncovered.without("content-digest").send(&h, &client).await;
        assert_refused(&record, "signature_components", protocol);
    }
    let notes: Vec<_> = h
        .upstream
        .requests()
        .into_iter()
        .filter(|r| r.target.contains("/notes"))
        .collect();
    assert_eq!(notes.len(), 2, "only the intact notes were forwarded");
    assert!(notes.iter().all(|r| r.body == b"call before noon"[..]));
}

#[tokio::test]
async fn a_route_that_reads_two_body_types_demands_the_content_type_signed() {
    let partners = Partners::new();
    let two_types = [(
        "content_types = [\"text/plain\"]",
        "content_types = [\"text/plain\", \"application/json\"]",
    )];
    let h = gateway(&partners, &two_types).await;
    // The same bytes read as text or as JSON: both are valid, so the type must be signed.
    let body = br#""call before noon""#;
    for (protocol, client) in clients(&h) {
        let digest_only = Outgoing::erp_note(&h, &partners, body);
        let (status, record) = digest_only.send(&h, &client).await;
        assert_eq!(status, 401, "{protocol}: {record}");
        assert_refused(&record, "signature_components", protocol);

        let mut typed = Outgoing::erp_note(&h, &partners, body);
        for (n, v) in signed_typed(
            &partners.erp,
            "erp-sync",
            &http::Method::POST,
            &typed.url,
            Some(body),
            Some("text/plain"),
            now(),
        ) {
            typed = typed.set(&n, &v);
        }
        // Another type under the same signature: it no longer verifies.
        let (_, record) = typed
            .clone()
            .set("content-type", "application/json")
            .send(&h, &client)
            .await;
        assert_refused(&record, "signature_invalid", protocol);
        let (status, record) = typed.send(&h, &client).await;
        assert_eq!(status, 200, "{protocol}: {record}");
        assert_eq!(record["signed"], true);
    }
    let notes: Vec<_> = h.upstream.requests();
    assert_eq!(
        notes.len(),
        2,
        "only the typed, intact notes were forwarded"
    );
    assert!(
        notes
            .iter()
            .all(|r| r.headers["content-type"] == "text/plain")
    );
}

#[tokio::test]
async fn a_route_that_demands_signatures_refuses_credentials_that_cannot_sign() {
    let partners = Partners::new();
    let h = gateway(&partners, &[]).await;
    let erp_token = format!("Bearer {}", h.token("ops", &["erp"], &[]));
    for (protocol, client) in clients(&h) {
        let unsigned = Outgoing {
            method: http::Method::GET,
            url: h.url(RAW),
            headers: vec![("authorization".to_owned(), erp_token.clone())],
            body: None,
        };
        let (status, record) = unsigned.send(&h, &client).await;
        assert_eq!(status, 401, "{protocol}");
        assert_refused(&record, "signature_missing", protocol);
        // Signed with some key, but the token's principal has none to verify it with.
        let mut headers = unsigned.headers.clone();
        headers.extend(signed_headers(
            &partners.carrier,
            "ops",
            &http::Method::GET,
            &unsigned.url,
            None,
            now(),
        ));
        let signed = Outgoing {
            headers,
            ..unsigned
        };
        let (_, record) = signed.send(&h, &client).await;
        assert_refused(&record, "signature_invalid", protocol);
        // The ERP signs (hmac) and gets through.
        let mut headers = vec![("x-api-key".to_owned(), h.keys.erp_key.clone())];
        headers.extend(signed_headers(
            &partners.erp,
            "erp-sync",
            &http::Method::GET,
            &h.url(RAW),
            None,
            now(),
        ));
        let erp = Outgoing {
            method: http::Method::GET,
            url: h.url(RAW),
            headers,
            body: None,
        };
        let (status, record) = erp.send(&h, &client).await;
        assert_eq!(status, 200, "{protocol}: {record}");
        assert_eq!(record["signed"], true);
    }
}

#[tokio::test]
async fn an_mtls_client_signs_with_its_own_key() {
    let partners = Partners::new();
    let h = gateway(&partners, &[]).await;
    let client = support::client(&h.keys, Some(&h.keys.jd), true);
    let mut signed = Outgoing {
        method: http::Method::GET,
        url: h.url(ORDERS),
        headers: vec![],
        body: None,
    };
    let unsigned = signed.clone();
    signed.headers = signed_headers(
        &partners.marketplace,
        "jd-marketplace",
        &http::Method::GET,
        &signed.url,
        None,
        now(),
    );
    let (status, record) = signed.send(&h, &client).await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["principal"]["kind"], "mtls");
    assert_eq!(record["signed"], true);
    let (_, record) = unsigned.send(&h, &client).await;
    assert_refused(&record, "signature_missing", "h2");
}

#[tokio::test]
async fn signature_failures_count_as_denials() {
    let partners = Partners::new();
    let h = gateway(&partners, &[("max_denials = 1000", "max_denials = 3")]).await;
    for _ in 0..3 {
        let o = Outgoing::carrier(&h, &partners, ORDERS).without("signature");
        assert_eq!(o.send(&h, &h.client).await.0, 401);
    }
    let (status, record) = Outgoing::carrier(&h, &partners, ORDERS)
        .send(&h, &h.client)
        .await;
    assert_eq!(status, 403, "{record}");
    assert_eq!(record["reason"], "frozen");
}

#[tokio::test]
async fn ordergate_sign_output_is_accepted_by_the_gateway() {
    let partners = Partners::new();
    let h = gateway(&partners, &[]).await;
    let bin = env!("CARGO_BIN_EXE_ordergate");
    let key = h.dir.path().join("carrier.key.pem");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    // `check` names who signs and which routes demand it.
    let checked = run(&["check", "-c", h.policy_path().to_str().unwrap()]);
    assert!(
        checked.contains("3 signing, 1 route(s) demand signatures"),
        "{checked}"
    );
    let url = h.url(ORDERS);
    let printed = run(&[
        "sign",
        "--key",
        key.to_str().unwrap(),
        "--keyid",
        "sf-logistics",
        &url,
    ]);
    let lines: Vec<(String, String)> = printed
        .lines()
        .map(|l| {
            let (n, v) = l.split_once(": ").unwrap();
            (n.to_owned(), v.to_owned())
        })
        .collect();
    assert_eq!(
        lines.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["Signature-Input", "Signature"]
    );
    let mut headers = vec![("x-api-key".to_owned(), h.keys.logistics_key.clone())];
    headers.extend(lines);
    let get = Outgoing {
        method: http::Method::GET,
        url,
        headers,
        body: None,
    };
    assert_eq!(get.send(&h, &h.client).await.0, 200);

    // hmac-sha256 with a body, then with its type signed too (`--content-type`, which prints
    // `Content-Type` with the rest).
    let body = h.dir.path().join("note.txt");
    std::fs::write(&body, "call before noon").unwrap();
    let secret = h.dir.path().join("erp.secret");
    let url = h.url(NOTES);
    for typed in [false, true] {
        let mut args = vec![
            "sign",
            "--key",
            secret.to_str().unwrap(),
            "--keyid",
            "erp-sync",
            "--alg",
            "hmac-sha256",
            "-X",
            "POST",
            "--data",
            body.to_str().unwrap(),
        ];
        if typed {
            args.extend(["--content-type", "text/plain"]);
        }
        args.push(&url);
        let printed = run(&args);
        assert!(printed.contains("\nContent-Digest: sha-256=:"), "{printed}");
        let mut headers = vec![("x-api-key".to_owned(), h.keys.erp_key.clone())];
        if typed {
            assert!(printed.ends_with("Content-Type: text/plain\n"), "{printed}");
            assert!(printed.contains("\"content-type\");created="), "{printed}");
        } else {
            headers.push(("content-type".to_owned(), "text/plain".to_owned()));
        }
        headers.extend(printed.lines().map(|l| {
            let (n, v) = l.split_once(": ").unwrap();
            (n.to_owned(), v.to_owned())
        }));
        let post = Outgoing {
            method: http::Method::POST,
            url: url.clone(),
            headers,
            body: Some(b"call before noon".to_vec()),
        };
        let (status, record) = post.send(&h, &h.client).await;
        assert_eq!(status, 200, "{record}");
        assert_eq!(record["signed"], true);
    }
}

/// A gateway on the shared Redis (the nonce store defaults to it), once connected.
async fn on_redis(
    redis: &RedisServer,
    keys: &Arc<Keys>,
    partners: &Partners,
    extra: &[(&str, &str)],
) -> Harness {
    let mut edits = vec![(
        "backend = \"local\"".to_owned(),
        format!(
            "backend = \"redis\"\nredis_url = \"{}\"\nredis_timeout = \"200ms\"",
            redis.url()
        ),
    )];
    edits.extend(extra.iter().map(|(a, b)| (a.to_string(), b.to_string())));
    let h = Harness::with_files(
        keys.clone(),
        FakeUpstream::start().await,
        move |p| {
            let edits: Vec<(&str, &str)> = edits
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            signing(&edits)(p)
        },
        &partners.files,
    )
    .await;
    let gateway = h.running.as_ref().unwrap().gateway.clone();
    for _ in 0..500 {
        if gateway.limiter.redis().is_some() {
            return h;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the gateway did not connect to redis");
}

#[tokio::test]
async fn a_replay_to_another_instance_is_refused_through_redis() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let partners = Partners::new();
    let keys = Arc::new(Keys::new());
    let a = on_redis(&redis, &keys, &partners, &[]).await;
    let b = on_redis(&redis, &keys, &partners, &[]).await;
    let once = Outgoing::carrier(&a, &partners, ORDERS);
    assert_eq!(once.send(&a, &a.client).await.0, 200);
    // The same nonce at the other instance.
    let replay = once.same_nonce_to(&b, &partners, now());
    let (status, record) = replay.send(&b, &b.client).await;
    assert_eq!(status, 401, "{record}");
    assert_refused(&record, "signature_replayed", "instance b");
    assert_eq!(
        redis.keys("ordergate:nonce:*").len(),
        1,
        "one shared key per (keyid, nonce)"
    );
    // A fresh nonce passes on either.
    assert_eq!(
        Outgoing::carrier(&b, &partners, ORDERS)
            .send(&b, &b.client)
            .await
            .0,
        200
    );
}

/// Two instances on one Redis, one with a 1 s window and one with 60 s (a fleet halfway through
/// a reload, say). A nonce the narrow one records lives as long as the wide one's window needs:
/// were it kept for the narrow lifetime (3 s), the request it served could be replayed to the
/// wide one once that had passed.
#[tokio::test]
async fn a_fleet_on_one_redis_keeps_nonces_for_its_widest_window() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let partners = Partners::new();
    let keys = Arc::new(Keys::new());
    let wide = on_redis(
        &redis,
        &keys,
        &partners,
        &[("clock_skew = \"5s\"", "clock_skew = \"0s\"")],
    )
    .await;
    // The narrow one starts while the wide one runs: before its first nonce goes to Redis it
    // has read the fleet's lifetime, 60 s + 2 × 0 s + the 2 s margin (the wide one has
    // published it at its own start).
    let narrow = on_redis(
        &redis,
        &keys,
        &partners,
        &[(
            "max_age = \"60s\"\nclock_skew = \"5s\"",
            "max_age = \"1s\"\nclock_skew = \"0s\"",
        )],
    )
    .await;
    let fleet = &narrow.running.as_ref().unwrap().gateway.fleet_ttl;
    assert_eq!(fleet.widen(Duration::ZERO), Duration::from_secs(62));
    let once = Outgoing::carrier(&narrow, &partners, ORDERS);
    assert_eq!(once.send(&narrow, &narrow.client).await.0, 200);
    let nonces = redis.keys("ordergate:nonce:*");
    assert_eq!(nonces.len(), 1);
    let left = redis.pttl(&nonces[0]);
    assert!(
        left > 60_000,
        "kept for the wide window, not 3 s: {left} ms"
    );
    // The narrow one, publishing each second too, never took the key from the wide one.
    assert_eq!(redis.get(AGE).as_deref(), Some("60000"));
    // Both still accept fresh requests.
    for h in [&narrow, &wide] {
        let fresh = Outgoing::carrier(h, &partners, ORDERS);
        assert_eq!(fresh.send(h, &h.client).await.0, 200);
    }
}

/// The fleet's widest `max_age` on Redis (ms), its widest skew, its heartbeat.
const AGE: &str = "ordergate:{nonce}:age";
const SKEW: &str = "ordergate:{nonce}:skew";
const ALIVE: &str = "ordergate:{nonce}:alive";

/// What a fleet with this `max_age` and `clock_skew` (ms) leaves in Redis while it runs.
fn fleet_ran(redis: &RedisServer, max_age: &str, skew: &str) {
    redis.set_px(AGE, max_age, 600_000);
    redis.set_px(SKEW, skew, 600_000);
    redis.hset(ALIVE, &[("seq", "1"), ("age", max_age)]);
}

/// Waits until `h` has learnt that its store cannot vouch for a request signed at `created`.
async fn learnt_unvouched(h: &Harness, created: i64) {
    let fleet = &h.running.as_ref().unwrap().gateway.fleet_ttl;
    for _ in 0..500 {
        if fleet.lost_for(created, now()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the instance did not learn what the store cannot vouch for");
}

/// A Redis that lost the fleet's lifetime (restarted without its data, flushed) may have lost
/// nonces too: for a request signed before the fleet found it so, a nonce still held is a
/// replay; one not held cannot be vouched for, and `on_store_error` decides. The instance that
/// finds out tells the others through Redis.
#[tokio::test]
async fn a_redis_found_without_the_fleets_lifetime_does_not_vouch_for_older_requests() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let partners = Partners::new();
    let keys = Arc::new(Keys::new());
    // A fleet with these settings ran here before these started.
    fleet_ran(&redis, "60000", "5000");
    let a = on_redis(&redis, &keys, &partners, &[]).await;
    let b = on_redis(&redis, &keys, &partners, &[]).await;
    let created = now() - 5;
    let lost = Outgoing::carrier_at(&a, &partners, ORDERS, created);
    assert_eq!(lost.send(&a, &a.client).await.0, 200, "the store vouched");
    let lost_nonce = redis.keys("ordergate:nonce:*");
    assert_eq!(lost_nonce.len(), 1);
    let kept = Outgoing::carrier_at(&a, &partners, ORDERS, created);
    assert_eq!(kept.send(&a, &a.client).await.0, 200);
    // Redis comes back without its data (here: the fleet's keys and one nonce).
    redis.del(&[AGE, SKEW, ALIVE, &lost_nonce[0]]);
    for h in [&a, &b] {
        learnt_unvouched(h, created).await;
        let lost = lost.same_nonce_to(h, &partners, created);
        for _ in 0..2 {
            let (status, record) = lost.send(h, &h.client).await;
            assert_eq!(status, 503, "a replay whose nonce is gone: {record}");
            assert_eq!(record["detail"], "nonce_store_unavailable");
        }
        let kept = kept.same_nonce_to(h, &partners, created);
        let (status, record) = kept.send(h, &h.client).await;
        assert_eq!(status, 401, "{record}");
        assert_refused(&record, "signature_replayed", "a nonce still held");
        let fresh = Outgoing::carrier(h, &partners, ORDERS);
        assert_eq!(fresh.send(h, &h.client).await.0, 200, "signed since");
    }
    assert_eq!(a.upstream.count() + b.upstream.count(), 4);
}

/// Instances started (or restarted, or reloaded) with a wider window than the fleet recorded
/// for: a request signed before and older than the fleet's window may have been served and its
/// nonce let go, so it is not vouched for, by the first of them and by those after it that
/// find the wider lifetime already published; younger ones are.
#[tokio::test]
async fn a_start_wider_than_the_fleet_vouches_only_for_the_fleets_window() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let partners = Partners::new();
    let keys = Arc::new(Keys::new());
    // The fleet accepted for 10 s.
    fleet_ran(&redis, "10000", "5000");
    let first = on_redis(&redis, &keys, &partners, &[]).await;
    assert_eq!(redis.get(AGE).as_deref(), Some("60000"));
    let second = on_redis(&redis, &keys, &partners, &[]).await;
    for h in [&first, &second] {
        let old = Outgoing::carrier_at(h, &partners, ORDERS, now() - 30);
        let (status, record) = old.send(h, &h.client).await;
        assert_eq!(status, 503, "{record}");
        assert_eq!(record["detail"], "nonce_store_unavailable");
        let recent = Outgoing::carrier_at(h, &partners, ORDERS, now() - 5);
        assert_eq!(recent.send(h, &h.client).await.0, 200);
        assert_eq!(h.upstream.count(), 1);
    }
}

/// Instances that differ in `max_age` and `clock_skew` record for the widest of each: one
/// that accepts requests dated 30 s ahead records them 30 s before their `created`, and one
/// with a 110 s window accepts them until 110 s after it, so nonces live for 110 + 2 × 30 + 2
/// seconds, more than either instance's own lifetime (122 s).
#[tokio::test]
async fn a_fleet_records_for_its_widest_window_and_its_widest_skew() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let partners = Partners::new();
    let keys = Arc::new(Keys::new());
    let _long = on_redis(
        &redis,
        &keys,
        &partners,
        &[("max_age = \"60s\"", "max_age = \"110s\"")],
    )
    .await;
    let lenient = on_redis(
        &redis,
        &keys,
        &partners,
        &[("clock_skew = \"5s\"", "clock_skew = \"30s\"")],
    )
    .await;
    let ahead = Outgoing::carrier_at(&lenient, &partners, ORDERS, now() + 25);
    assert_eq!(ahead.send(&lenient, &lenient.client).await.0, 200);
    let nonces = redis.keys("ordergate:nonce:*");
    assert_eq!(nonces.len(), 1);
    let left = redis.pttl(&nonces[0]);
    assert!(left > 170_000, "kept for 172 s, not 122 s: {left} ms");
}

/// The widest instance stopped and its `max_age` key lapsed, while the rest of the fleet kept
/// the heartbeat going: nothing was lost, so nothing is refused.
#[tokio::test]
async fn a_lapsed_widest_key_under_a_live_heartbeat_is_no_loss() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let partners = Partners::new();
    let keys = Arc::new(Keys::new());
    redis.hset(ALIVE, &[("seq", "1"), ("age", "60000")]);
    let h = on_redis(&redis, &keys, &partners, &[]).await;
    let earlier = Outgoing::carrier_at(&h, &partners, ORDERS, now() - 5);
    let (status, record) = earlier.send(&h, &h.client).await;
    assert_eq!(status, 200, "{record}");
    assert!(redis.keys("ordergate:{nonce}:unvouched").is_empty());
}

/// Redis going back in time (restarted from an older snapshot, failed over to a replica
/// behind it) may have brought back a state without nonces it had recorded since: seen by the
/// heartbeat older than the one this instance last wrote.
#[tokio::test]
async fn a_redis_gone_back_in_time_does_not_vouch_for_older_requests() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let partners = Partners::new();
    let keys = Arc::new(Keys::new());
    fleet_ran(&redis, "60000", "5000");
    let h = on_redis(&redis, &keys, &partners, &[]).await;
    let created = now() - 5;
    let seen = Outgoing::carrier_at(&h, &partners, ORDERS, created);
    assert_eq!(seen.send(&h, &h.client).await.0, 200);
    let nonce = redis.keys("ordergate:nonce:*");
    // The snapshot from before the request and the heartbeats since.
    redis.del(&[&nonce[0]]);
    redis.hset(ALIVE, &[("seq", "1")]);
    learnt_unvouched(&h, created).await;
    let (status, record) = seen.send(&h, &h.client).await;
    assert_eq!(status, 503, "{record}");
    assert_eq!(record["detail"], "nonce_store_unavailable");
    assert_eq!(h.upstream.count(), 1);
}

#[tokio::test]
async fn a_dead_redis_rejects_or_allows_as_configured() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let partners = Partners::new();
    let keys = Arc::new(Keys::new());
    let reject = on_redis(&redis, &keys, &partners, &[]).await;
    let allow = on_redis(
        &redis,
        &keys,
        &partners,
        &[(
            "clock_skew = \"5s\"\n",
            "clock_skew = \"5s\"\non_store_error = \"allow\"\n",
        )],
    )
    .await;
    assert_eq!(
        Outgoing::carrier(&reject, &partners, ORDERS)
            .send(&reject, &reject.client)
            .await
            .0,
        200
    );
    redis.stop();
    let (status, record) = Outgoing::carrier(&reject, &partners, ORDERS)
        .send(&reject, &reject.client)
        .await;
    assert_eq!(status, 503, "{record}");
    assert_eq!(record["reason"], "overloaded");
    assert_eq!(record["detail"], "nonce_store_unavailable");
    let once = Outgoing::carrier(&allow, &partners, ORDERS);
    let (status, record) = once.send(&allow, &allow.client).await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["signed"], true);
    // A bad signature is still refused while the store is down.
    let (status, _) = once
        .clone()
        .set("signature", "sig1=:AAAA:")
        .send(&allow, &allow.client)
        .await;
    assert_eq!(status, 401);
    let metrics = allow.metrics().await;
    let unchecked = metrics
        .lines()
        .find(|l| l.starts_with("ordergate_signature_nonce_unchecked_total"))
        .unwrap();
    assert!(!unchecked.ends_with(" 0"), "{unchecked}");
}

/// A start on the local store forgets the nonces of the process before it, which may have
/// accepted any request signed before the start: for those the store cannot answer, and
/// `on_store_error` decides. Requests signed once the gateway runs pass at once.
#[tokio::test]
async fn a_start_on_the_local_store_does_not_vouch_for_requests_signed_before_it() {
    let partners = Partners::new();
    let reject = gateway(&partners, &[]).await;
    let allow = gateway(
        &partners,
        &[(
            "clock_skew = \"5s\"\n",
            "clock_skew = \"5s\"\non_store_error = \"allow\"\n",
        )],
    )
    .await;
    let before_start = |h: &Harness| Outgoing::carrier_at(h, &partners, ORDERS, now() - 10);
    for (protocol, client) in clients(&reject) {
        // Sent again as it was (after `Retry-After`), it is refused alike: not a replay.
        let old = before_start(&reject);
        for _ in 0..2 {
            let (status, record) = old.send(&reject, &client).await;
            assert_eq!(status, 503, "{protocol}: {record}");
            assert_eq!(record["reason"], "overloaded");
            assert_eq!(record["detail"], "nonce_store_unavailable");
        }
        let fresh = Outgoing::carrier(&reject, &partners, ORDERS);
        assert_eq!(fresh.send(&reject, &client).await.0, 200, "{protocol}");
    }
    assert_eq!(
        reject.upstream.count(),
        2,
        "nothing signed before the start went upstream"
    );
    // `allow`: accepted without the check, counted, and recorded from then on. (The counter is
    // the process's, shared with other tests: it can only have grown.)
    let unchecked = || async {
        let metrics = allow.metrics().await;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("ordergate_signature_nonce_unchecked_total "))
            .and_then(|n| n.trim().parse::<f64>().ok())
            .unwrap()
    };
    let before = unchecked().await;
    let old = before_start(&allow);
    let (status, record) = old.send(&allow, &allow.client).await;
    assert_eq!(status, 200, "{record}");
    assert!(unchecked().await >= before + 1.0);
    let (status, record) = old.send(&allow, &allow.client).await;
    assert_eq!(status, 401);
    assert_refused(&record, "signature_replayed", "HTTP/1.1");
}

#[tokio::test]
async fn signature_failures_charge_the_failed_authentication_bucket() {
    let partners = Partners::new();
    // The bucket's ten, refilled too slowly to matter however long the requests take.
    let h = gateway(
        &partners,
        &[(
            "per_ip_unauthenticated = { rate = \"30/min\", burst = 10 }",
            "per_ip_unauthenticated = { rate = \"1/min\", burst = 10 }",
        )],
    )
    .await;
    for _ in 0..10 {
        let o = Outgoing::carrier(&h, &partners, ORDERS).set("signature", "sig1=:AAAA:");
        assert_eq!(o.send(&h, &h.client).await.0, 401);
    }
    let (status, record) = Outgoing::carrier(&h, &partners, ORDERS)
        .set("signature", "sig1=:AAAA:")
        .send(&h, &h.client)
        .await;
    assert_eq!(status, 429, "{record}");
    assert_eq!(record["detail"], "failed_auth_ip_limit");
}

/// The same stage without sockets: the gateway's tower service driven with `oneshot`, the
/// request in origin form with its `Host` (as HTTP/1.1 delivers it); the replay is reported as
/// a security event.
#[tokio::test]
async fn the_stage_refuses_without_sockets() {
    use http_body_util::{BodyExt, Full};
    use tower::ServiceExt;
    support::install();
    let partners = Partners::new();
    let keys = Keys::new();
    let upstream = FakeUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    support::write_files(dir.path(), &keys);
    for (name, contents) in &partners.files {
        std::fs::write(dir.path().join(name), contents).unwrap();
    }
    let path = dir.path().join("policy.toml");
    let text = signing(&[])(&support::base_policy(&keys, upstream.addr));
    std::fs::write(&path, text).unwrap();
    let policy = ordergate::policy::load(&path).unwrap();
    // The OpenAPI document names the headers a route that demands signatures needs.
    let doc = ordergate::openapi::document(&policy);
    let header_names = |path: &str| {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "header")
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        header_names("/v1/raw/orders/{order_id}"),
        ["Signature-Input", "Signature"]
    );
    assert!(header_names("/v1/orders/{order_id}").is_empty());
    let gateway = ordergate::gateway::Gateway::start(policy, &path)
        .await
        .unwrap();
    let events = Arc::new(parking_lot::Mutex::new(Vec::new()));
    gateway
        .events
        .set_deliverer(Some(Box::new(Recorder(events.clone()))));
    let peer: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let conn = Arc::new(ordergate::context::ConnInfo {
        tls_version: Some("TLSv1.3"),
        ..ordergate::context::ConnInfo::plain(peer)
    });
    let signature = signed_headers(
        &partners.carrier,
        "sf-logistics",
        &http::Method::GET,
        &format!("https://gw.test{ORDERS}"),
        None,
        now(),
    );
    let send = |path: &str, host: &str| {
        let mut request = http::Request::get(path)
            .header("host", host)
            .header("x-api-key", &keys.logistics_key);
        for (n, v) in &signature {
            request = request.header(n, v);
        }
        let service =
            ordergate::pipeline::service::GatewayService::new(gateway.clone(), conn.clone());
        let request = request.body(Full::new(bytes::Bytes::new())).unwrap();
        async move {
            let response = service.oneshot(request).await.unwrap();
            let status = response.status().as_u16();
            let _ = response.into_body().collect().await;
            status
        }
    };
    assert_eq!(send(ORDERS, "gw.test:8443").await, 401, "another authority");
    assert_eq!(
        send(ORDERS, "GW.test:443").await,
        200,
        "the same authority, normalised"
    );
    assert_eq!(send(ORDERS, "gw.test").await, 401, "a replay");
    assert_eq!(upstream.count(), 1);
    let events = events.lock();
    assert_eq!(events.len(), 1, "one event, for the replay only");
    let event = &events[0];
    assert_eq!(event.kind, EventKind::SignatureReplayed);
    assert_eq!(event.principal.as_deref(), Some("api_key:sf-logistics"));
    assert_eq!(event.route.as_deref(), Some("customer-orders"));
    assert_eq!(event.detail, Some("signature_replayed"));
}

/// Keeps every security event the gateway reports.
struct Recorder(Arc<parking_lot::Mutex<Vec<Event>>>);

impl Deliver for Recorder {
    fn deliver(&self, event: Event) {
        self.0.lock().push(event);
    }
}

#[tokio::test]
async fn a_reload_rotates_keys_and_keeps_the_nonces_seen() {
    let partners = Partners::new();
    let h = gateway(&partners, &[]).await;
    let once = Outgoing::carrier(&h, &partners, ORDERS);
    assert_eq!(once.send(&h, &h.client).await.0, 200);
    let gateway = h.running.as_ref().unwrap().gateway.clone();
    gateway.reload().await.unwrap();
    let (_, record) = once.send(&h, &h.client).await;
    assert_refused(&record, "signature_replayed", "after a reload");
    // The carrier rotates its key: the new public key replaces the old one.
    let (private, public) = SigningKey::generate_ed25519().unwrap();
    let rotated = SigningKey::ed25519_from_pem(private.as_bytes()).unwrap();
    std::fs::write(h.dir.path().join("carrier.pub.pem"), public).unwrap();
    gateway.reload().await.unwrap();
    let old_key = Outgoing::carrier(&h, &partners, ORDERS);
    let (_, record) = old_key.send(&h, &h.client).await;
    assert_refused(&record, "signature_invalid", "the old key");
    let mut new_key = Outgoing::carrier(&h, &partners, ORDERS);
    for (n, v) in signed_headers(
        &rotated,
        "sf-logistics",
        &http::Method::GET,
        &new_key.url,
        None,
        now(),
    ) {
        new_key = new_key.set(&n, &v);
    }
    assert_eq!(new_key.send(&h, &h.client).await.0, 200);
    // A broken key file is refused at reload; the running key stays.
    std::fs::write(h.dir.path().join("carrier.pub.pem"), "not a key").unwrap();
    assert!(gateway.reload().await.is_err());
    let mut still = Outgoing::carrier(&h, &partners, ORDERS);
    for (n, v) in signed_headers(
        &rotated,
        "sf-logistics",
        &http::Method::GET,
        &still.url,
        None,
        now(),
    ) {
        still = still.set(&n, &v);
    }
    assert_eq!(still.send(&h, &h.client).await.0, 200);
}

/// Rewrites the running policy file with `edits` and reloads it.
async fn reload_with(h: &Harness, edits: &[(&str, &str)]) {
    let text = std::fs::read_to_string(h.policy_path()).unwrap();
    std::fs::write(h.policy_path(), edit(&text, edits)).unwrap();
    let gateway = h.running.as_ref().unwrap().gateway.clone();
    gateway.reload().await.unwrap();
}

#[tokio::test]
async fn a_reload_that_raises_max_age_does_not_reopen_expired_nonces() {
    let partners = Partners::new();
    let narrow = [(
        "max_age = \"60s\"\nclock_skew = \"5s\"",
        "max_age = \"1s\"\nclock_skew = \"0s\"",
    )];
    let h = gateway(&partners, &narrow).await;
    let once = Outgoing::carrier(&h, &partners, ORDERS);
    assert_eq!(once.send(&h, &h.client).await.0, 200);
    reload_with(&h, &[("max_age = \"1s\"", "max_age = \"60s\"")]).await;
    let (_, record) = once.send(&h, &h.client).await;
    assert_refused(&record, "signature_replayed", "right after the reload");
    // The nonce was kept for the old window (1 s + 2 s): once it is gone, the replay is still
    // old by the window it was signed under. No signal says a nonce expired; wait it out.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let (status, record) = once.send(&h, &h.client).await;
    assert_eq!(status, 401, "{record}");
    assert_refused(&record, "signature_expired", "after its nonce expired");
    assert_eq!(h.upstream.count(), 1);
    // Requests signed now get the new window.
    let fresh = Outgoing::carrier(&h, &partners, ORDERS);
    assert_eq!(fresh.send(&h, &h.client).await.0, 200);
}

#[tokio::test]
async fn a_reload_that_moves_the_nonce_store_still_sees_the_old_nonces() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let partners = Partners::new();
    let keys = Arc::new(Keys::new());
    let local = [(
        "clock_skew = \"5s\"\n",
        "clock_skew = \"5s\"\nnonce_store = \"local\"\n",
    )];
    let h = on_redis(&redis, &keys, &partners, &local).await;
    let once = Outgoing::carrier(&h, &partners, ORDERS);
    assert_eq!(once.send(&h, &h.client).await.0, 200);
    assert!(redis.keys("ordergate:nonce:*").is_empty(), "kept locally");
    // To Redis: the pair kept locally before the move is still found.
    reload_with(
        &h,
        &[("nonce_store = \"local\"\n", "nonce_store = \"redis\"\n")],
    )
    .await;
    let (status, record) = once.send(&h, &h.client).await;
    assert_eq!(status, 401, "{record}");
    assert_refused(&record, "signature_replayed", "after the move to redis");
    assert_eq!(h.upstream.count(), 1);
    let fresh = Outgoing::carrier(&h, &partners, ORDERS);
    assert_eq!(fresh.send(&h, &h.client).await.0, 200);
    assert!(
        !redis.keys("ordergate:nonce:*").is_empty(),
        "kept in redis now"
    );
}

/// A request signed before a reload that moved the store is recorded in both; when the old
/// one fails it is refused (503) and taken back from the new one, so sending it again is not
/// called a replay.
#[tokio::test]
async fn a_request_refused_because_the_old_store_failed_is_not_a_replay_when_sent_again() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let partners = Partners::new();
    let keys = Arc::new(Keys::new());
    let h = on_redis(&redis, &keys, &partners, &[]).await;
    reload_with(
        &h,
        &[(
            "clock_skew = \"5s\"\n",
            "clock_skew = \"5s\"\nnonce_store = \"local\"\n",
        )],
    )
    .await;
    let once = Outgoing::carrier(&h, &partners, ORDERS);
    redis.stop();
    for attempt in ["first", "again"] {
        let (status, record) = once.send(&h, &h.client).await;
        assert_eq!(status, 503, "{attempt}: {record}");
        assert_eq!(record["detail"], "nonce_store_unavailable", "{attempt}");
    }
    assert_eq!(h.upstream.count(), 0);
}

#[test]
fn ordergate_sign_refuses_what_it_cannot_sign() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.secret");
    std::fs::write(&short, "too short\n").unwrap();
    let not_a_key = dir.path().join("not-a-key.pem");
    std::fs::write(&not_a_key, "hello").unwrap();
    let long = dir.path().join("long.secret");
    std::fs::write(&long, ERP_SECRET).unwrap();
    let bin = env!("CARGO_BIN_EXE_ordergate");
    for (args, expected) in [
        (
            vec![
                "--key",
                short.to_str().unwrap(),
                "--alg",
                "hmac-sha256",
                "https://gw.test/x",
            ],
            "at least 32 bytes",
        ),
        (
            vec!["--key", not_a_key.to_str().unwrap(), "https://gw.test/x"],
            "PRIVATE KEY",
        ),
        (
            vec![
                "--key",
                long.to_str().unwrap(),
                "--alg",
                "hmac-sha256",
                "/relative",
            ],
            "https:// or http://",
        ),
        (
            vec![
                "--key",
                long.to_str().unwrap(),
                "--alg",
                "hmac-sha256",
                "--content-type",
                "text/plain",
                "https://gw.test/x",
            ],
            "--data",
        ),
        (
            vec![
                "--key",
                long.to_str().unwrap(),
                "--alg",
                "hmac-sha256",
                "--data",
                long.to_str().unwrap(),
                "--content-type",
                "text/plain\u{7f}",
                "https://gw.test/x",
            ],
            "the content type",
        ),
    ] {
        let out = std::process::Command::new(bin)
            .args(["sign", "--keyid", "k"])
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("too short"), "the secret is never echoed");
    }
}
