//! Cross-feature attacks on the wave-2 features (CONTRACT §7, §8.3, §10): what a caller gains by
//! combining them. A kept (stale) answer never reaches another principal, nor a principal frozen
//! by the volume guard or an IP violation; a signed request replayed to a second instance is
//! accepted with a local nonce store (documented) and refused with a shared one; a canary's
//! answer is owner-checked like the primary's; the events of an IP freeze are redacted; a
//! spoofed `X-Forwarded-For` does not open a signed route's allowlist.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ordergate::stage::signature::sign::fresh_nonce;
use ordergate::stage::signature::verify::SigningKey;
use serde_json::{Value, json};
use support::http::client_from;
use support::webhook::kinds;
use support::{
    Answer, FakeUpstream, Harness, Keys, Receiver, RedisServer, Reply, edit, raw_request,
    sample_order,
};

const ORDERS: &str = "/v1/customers/C0000001/orders?start_date=2025-01-01&end_date=2025-01-31";
const DETAIL: &str = "/v1/orders/O2025010100000001";
const EVENTS_SECRET: &str = "wave2-attacks-events-secret-0123456789abcdef";

/// `customer-orders` keeps answers (`stale_if_error`); `lines` go into the route first.
fn keeping(lines: &str) -> String {
    format!(
        "{lines}[routes.stale_if_error]\nmax_age = \"15m\"\nmax_entries = 100\nmax_bytes = \"1MiB\"\n"
    )
}

/// The base policy with `route_lines` added to `customer-orders`, then `edits`, then `tail`.
fn policy(
    route_lines: String,
    edits: Vec<(String, String)>,
    tail: String,
) -> impl FnOnce(&str) -> String {
    move |p: &str| {
        let anchor = "forward_params = { customer_id = \"customer_id\" }\n";
        let mut text = edit(p, &[(anchor, &format!("{anchor}{route_lines}"))]);
        for (from, to) in &edits {
            text = edit(&text, &[(from, to)]);
        }
        format!("{text}{tail}")
    }
}

/// `[events]` to `receiver`, with the secret file [`start`] writes.
fn events_to(receiver: &Receiver) -> String {
    format!(
        "\n[events]\nwebhook_url = \"{}\"\nwebhook_secret_file = \"events.secret\"\n",
        receiver.url()
    )
}

async fn start(
    keys: Arc<Keys>,
    change: impl FnOnce(&str) -> String,
    files: &[(&str, String)],
) -> Harness {
    let mut files = files.to_vec();
    files.push(("events.secret", EVENTS_SECRET.to_owned()));
    Harness::with_files(keys, FakeUpstream::start().await, change, &files).await
}

fn bearer(h: &Harness, sub: &str, roles: &[&str], claims: &[(&str, Value)]) -> String {
    format!("Bearer {}", h.token(sub, roles, claims))
}

/// Status and `Cache-Status` of one GET of [`ORDERS`].
async fn orders(h: &Harness, headers: &[(&str, &str)]) -> (u16, Option<String>) {
    let r = h.get(ORDERS, headers).await;
    let cache = r
        .headers()
        .get("cache-status")
        .map(|v| v.to_str().unwrap().to_owned());
    (r.status().as_u16(), cache)
}

const STALE: Option<&str> = Some("ordergate; hit; detail=stale");

async fn unfreeze(h: &Harness, key: &str) {
    let r = reqwest::Client::new()
        .delete(h.admin_url(&format!("/admin/frozen/{key}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "{key}");
}

/// Attack: call as a principal that shares the victim's id (a token whose `sub` is an API key's
/// id, with the same tenant and scopes; a token of the victim's subject for another tenant) and
/// collect the victim's kept answer while the upstream is down.
#[tokio::test]
async fn a_kept_answer_never_reaches_a_principal_of_the_same_name() {
    let h = start(
        Arc::new(Keys::new()),
        policy(keeping(""), vec![], String::new()),
        &[],
    )
    .await;
    let key = h.keys.erp_key.clone();
    let alice = h.alice();
    assert_eq!(orders(&h, &[("x-api-key", &key)]).await, (200, None));
    assert_eq!(orders(&h, &[("authorization", &alice)]).await, (200, None));
    h.upstream
        .set_default(Reply::Json(503, json!({"error": "down"})));
    // The owners get their kept answers: the store works.
    assert_eq!(
        orders(&h, &[("x-api-key", &key)]).await,
        (200, STALE.map(str::to_owned))
    );
    assert_eq!(
        orders(&h, &[("authorization", &alice)]).await,
        (200, STALE.map(str::to_owned))
    );
    // A token named like the ERP key, with its tenant and its role (so its scopes and view).
    let erp_token = bearer(&h, "erp-sync", &["erp"], &[("tenant", json!("acme"))]);
    assert_eq!(
        orders(&h, &[("authorization", &erp_token)]).await,
        (503, None)
    );
    // Alice's subject under another tenant.
    let other_alice = bearer(
        &h,
        "alice",
        &["customer"],
        &[
            ("customer_id", json!("C0000001")),
            ("tenant", json!("globex")),
        ],
    );
    assert_eq!(
        orders(&h, &[("authorization", &other_alice)]).await,
        (503, None)
    );
}

/// Attack: a scraper frozen by the volume guard keeps collecting its kept answers — during the
/// freeze, or after an operator lifts it while the upstream is down.
#[tokio::test]
async fn a_volume_freeze_drops_the_principals_kept_answers() {
    let receiver = Receiver::start(Answer::Status(200)).await;
    let h = start(
        Arc::new(Keys::new()),
        policy(
            keeping(""),
            vec![(
                "[[routes.response.views]]\nscope = \"orders:read:full\"\n".into(),
                "[routes.response]\ncount = \"orders\"\n[[routes.response.views]]\nscope = \"orders:read:full\"\n".into(),
            )],
            format!(
                "\n[abuse.volume]\nrecords = {{ max = 3, window = \"1h\" }}\naction = \"freeze\"\n{}",
                events_to(&receiver)
            ),
        ),
        &[],
    )
    .await;
    let alice = h.alice();
    let auth = [("authorization", alice.as_str())];
    assert_eq!(orders(&h, &auth).await, (200, None), "2 records");
    h.upstream
        .set_default(Reply::Json(503, json!({"error": "down"})));
    assert_eq!(
        orders(&h, &auth).await,
        (200, STALE.map(str::to_owned)),
        "kept"
    );
    h.upstream.set_default(Reply::Orders);
    assert_eq!(
        orders(&h, &auth).await,
        (200, None),
        "4 records: the crossing"
    );
    receiver
        .wait_until(|d| kinds(d).iter().any(|k| k == "freeze"))
        .await;
    h.upstream
        .set_default(Reply::Json(503, json!({"error": "down"})));
    assert_eq!(
        orders(&h, &auth).await.0,
        403,
        "frozen, not served from the store"
    );
    unfreeze(&h, "principal:jwt:alice").await;
    assert_eq!(
        orders(&h, &auth).await,
        (503, None),
        "the freeze dropped every kept answer, the crossing one included"
    );
}

/// Attack: a principal whose subject is a phone number is frozen for an IP violation; the SIEM
/// receiving the events must not learn the number, the token or the webhook secret, and the
/// kept answers die with the freeze.
#[tokio::test]
async fn an_ip_violation_freeze_is_reported_redacted_and_drops_the_kept_answers() {
    let receiver = Receiver::start(Answer::Status(200)).await;
    let h = start(
        Arc::new(Keys::new()),
        policy(
            keeping("allow_ips = [\"127.0.0.1\"]\n"),
            vec![(
                "[abuse]\n".into(),
                "[abuse]\nfreeze_on_ip_violation = true\n".into(),
            )],
            events_to(&receiver),
        ),
        &[],
    )
    .await;
    const PHONE: &str = "13812345678";
    let token = h.token(PHONE, &["customer"], &[("customer_id", json!("C0000001"))]);
    let auth = format!("Bearer {token}");
    let home = client_from(&h.keys, IpAddr::from([127, 0, 0, 1]));
    let away = client_from(&h.keys, IpAddr::from([127, 0, 0, 2]));
    let get = |client: &reqwest::Client| {
        client
            .get(h.url(ORDERS))
            .header("authorization", &auth)
            .send()
    };
    assert_eq!(get(&home).await.unwrap().status(), 200);
    h.upstream
        .set_default(Reply::Json(503, json!({"error": "down"})));
    let kept = get(&home).await.unwrap();
    assert_eq!(kept.status(), 200);
    assert_eq!(kept.headers()["cache-status"], STALE.unwrap());
    let refused = get(&away).await.unwrap();
    assert_eq!(refused.status(), 403);
    let id = refused.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(h.record_of(&id).await["detail"], "ip_not_allowed");
    assert_eq!(get(&home).await.unwrap().status(), 403, "frozen at once");

    let got = receiver
        .wait_until(|d| kinds(d).iter().any(|k| k == "freeze"))
        .await;
    assert_eq!(kinds(&got), ["ip_violation", "freeze"]);
    for d in &got {
        assert!(d.verifies(EVENTS_SECRET.as_bytes()));
        let text = String::from_utf8(d.body.clone()).unwrap();
        for secret in [PHONE, token.as_str(), EVENTS_SECRET, "Bearer"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        let body = d.json();
        assert_eq!(body["principal"], "jwt:138****5678");
        assert_eq!(body["client_ip"], "127.0.0.2");
        assert_eq!(body["detail"], "ip_not_allowed");
        assert_eq!(body["route"], "customer-orders");
    }

    unfreeze(&h, &format!("principal:jwt:{PHONE}")).await;
    let after = get(&home).await.unwrap();
    assert_eq!(
        (after.status().as_u16(), after.headers().get("cache-status")),
        (503, None),
        "nothing kept survives the freeze"
    );
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The carrier's signing key and the public key file the gateway verifies with.
fn carrier_key() -> (SigningKey, (&'static str, String)) {
    let (private, public) = SigningKey::generate_ed25519().unwrap();
    (
        SigningKey::ed25519_from_pem(private.as_bytes()).unwrap(),
        ("carrier.pub.pem", public),
    )
}

/// The carrier (`sf-logistics`) signs with ed25519; `edits` after that.
fn carrier_signs(edits: Vec<(String, String)>) -> impl FnOnce(&str) -> String {
    let mut all = vec![
        (
            "[auth.api_keys]\n".to_owned(),
            "[auth.signatures]\nmax_age = \"60s\"\nclock_skew = \"5s\"\n\n[auth.api_keys]\n"
                .to_owned(),
        ),
        (
            "id = \"sf-logistics\"\n".to_owned(),
            "id = \"sf-logistics\"\nsignature = { alg = \"ed25519\", public_key = \"carrier.pub.pem\" }\n"
                .to_owned(),
        ),
    ];
    all.extend(edits);
    policy(String::new(), all, String::new())
}

/// The carrier's credential and signature headers for `GET url`, with `nonce`.
fn signed_get(h: &Harness, key: &SigningKey, url: &str, nonce: &str) -> Vec<(String, String)> {
    let mut headers = vec![("x-api-key".to_owned(), h.keys.logistics_key.clone())];
    headers.extend(support::signed_get_lines(
        key,
        "sf-logistics",
        url,
        now(),
        nonce,
    ));
    headers
}

/// Sends `GET path` with `headers` on `client` to `h`; returns status and the audit record.
async fn send(
    h: &Harness,
    client: &reqwest::Client,
    path: &str,
    headers: &[(String, String)],
) -> (u16, Value) {
    let id = format!("attack-{}", fresh_nonce().replace('_', "."));
    let mut request = client.get(h.url(path)).header("x-request-id", &id);
    for (n, v) in headers {
        request = request.header(n, v);
    }
    let status = request.send().await.unwrap().status().as_u16();
    (status, h.record_of(&id).await)
}

/// Two instances behind one name (the authority a load balancer gives them both), on `redis`
/// when given.
async fn two_behind_one_name(
    key_file: &(&'static str, String),
    redis: Option<&RedisServer>,
) -> (Harness, Harness) {
    let keys = Arc::new(Keys::new());
    let backend = redis.map(|r| {
        (
            "backend = \"local\"".to_owned(),
            format!(
                "backend = \"redis\"\nredis_url = \"{}\"\nredis_timeout = \"500ms\"",
                r.url()
            ),
        )
    });
    let a = start(
        keys.clone(),
        carrier_signs(backend.clone().into_iter().collect()),
        std::slice::from_ref(key_file),
    )
    .await;
    let b = start(
        keys,
        carrier_signs(backend.into_iter().collect()),
        std::slice::from_ref(key_file),
    )
    .await;
    if redis.is_some() {
        for h in [&a, &b] {
            let gateway = h.running.as_ref().unwrap().gateway.clone();
            let mut connected = false;
            for _ in 0..500 {
                if gateway.limiter.redis().is_some() {
                    connected = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(connected, "the gateway did not connect to redis");
        }
    }
    (a, b)
}

const SHARED_NAME: &str = "orders.gateway.example";

/// Attack: capture a signed request at one instance and send it, byte for byte, to another
/// instance behind the same name. With `nonce_store = "local"` each instance knows only its
/// own nonces, so the replay is accepted there — the documented price of a local store (§7.1:
/// "once across every instance" only with Redis); the same instance still refuses it. With the
/// shared store every instance refuses it.
#[tokio::test]
async fn a_signed_request_replayed_to_another_instance_needs_the_shared_nonce_store() {
    let (key, key_file) = carrier_key();
    let url = format!("https://{SHARED_NAME}{DETAIL}");
    let mut both = vec![("local", two_behind_one_name(&key_file, None).await)];
    let redis = RedisServer::start().await;
    if let Some(redis) = &redis {
        both.push(("redis", two_behind_one_name(&key_file, Some(redis)).await));
    }
    for (store, (a, b)) in &both {
        // HTTP/1.1, so the `Host` header is the authority sent.
        let (to_a, to_b) = (
            support::client(&a.keys, None, false),
            support::client(&b.keys, None, false),
        );
        let mut captured = signed_get(a, &key, &url, &fresh_nonce());
        captured.push(("host".to_owned(), SHARED_NAME.to_owned()));
        let (status, record) = send(a, &to_a, DETAIL, &captured).await;
        assert_eq!(
            (status, &record["signed"]),
            (200, &json!(true)),
            "{store}: {record}"
        );
        let (status, record) = send(b, &to_b, DETAIL, &captured).await;
        if *store == "local" {
            assert_eq!(
                (status, &record["signed"]),
                (200, &json!(true)),
                "local store: the other instance has not seen the nonce: {record}"
            );
        } else {
            assert_eq!(status, 401, "{record}");
            assert_eq!(record["detail"], "signature_replayed");
        }
        let (status, record) = send(a, &to_a, DETAIL, &captured).await;
        assert_eq!(status, 401, "{store}: {record}");
        assert_eq!(record["detail"], "signature_replayed", "{store}");
    }
}

/// Routes addressed by an order id, with and without a view, checking the owner on the answer,
/// whose canary takes `carol`.
const OWNED_ROUTES: &str = r#"
[[routes]]
id = "my-order"
method = "GET"
path = "/v1/my/orders/{order_id}"
upstream_path = "/api/orders/{order_id}"
require_scopes = ["orders:read"]
canary = { upstream = "orders-v2", percent = 0.0, principals = ["carol"] }
[routes.params.order_id]
type = "string"
pattern = "^O[0-9]{8,16}$"
[[routes.response.owners]]
field = "customer_id"
claim = "customer_id"

[[routes]]
id = "my-order-viewed"
method = "GET"
path = "/v1/my/viewed/{order_id}"
upstream_path = "/api/orders/{order_id}"
require_scopes = ["orders:read"]
canary = { upstream = "orders-v2", percent = 0.0, principals = ["carol"] }
[routes.params.order_id]
type = "string"
pattern = "^O[0-9]{8,16}$"
[[routes.response.views]]
scope = "orders:read"
allow = ["order_id", "status", "note"]
[[routes.response.owners]]
field = "customer_id"
claim = "customer_id"
"#;

/// Attack: a principal routed to the canary hopes the new release is not held to the primary's
/// ownership check, and reads another customer's order through it.
#[tokio::test]
async fn a_canary_answer_is_owner_checked_like_the_primarys() {
    const MARKER: &str = "SECRET-OF-C0000002";
    let v2 = FakeUpstream::start().await;
    let v2_addr: SocketAddr = v2.addr;
    let h = Harness::with_parts(Arc::new(Keys::new()), FakeUpstream::start().await, move |p| {
        format!(
            "{p}{OWNED_ROUTES}\n[upstreams.orders-v2]\nurl = \"http://{v2_addr}\"\nconnect_timeout = \"500ms\"\ntimeout = \"1s\"\n"
        )
    })
    .await;
    let mut others = sample_order("O2025010100000001");
    others["customer_id"] = json!("C0000002");
    others["note"] = json!(MARKER);
    let mut own = sample_order("O2025010100000001");
    own["note"] = json!("mine");
    for path in [
        "/v1/my/orders/O2025010100000001",
        "/v1/my/viewed/O2025010100000001",
    ] {
        for (sub, upstream, answered_by) in [
            ("carol", &v2, "orders-v2"),
            ("dave", &h.upstream, "default"),
        ] {
            let auth = bearer(
                &h,
                sub,
                &["customer"],
                &[("customer_id", json!("C0000001"))],
            );
            let before = upstream.count();
            upstream.queue([Reply::Json(200, others.clone())]);
            let (status, wire) = raw_request(
                &h,
                &format!("GET {path} HTTP/1.1"),
                &[("Authorization", &auth)],
            )
            .await;
            assert_eq!(status, 403, "{sub} {path}: {wire}");
            assert!(!wire.contains(MARKER), "{sub} {path}: {wire}");
            assert_eq!(
                upstream.count(),
                before + 1,
                "{sub}: answered by {answered_by}"
            );
            upstream.queue([Reply::Json(200, own.clone())]);
            let id = format!("own-{sub}-{}", path.len());
            let r = h
                .get(path, &[("authorization", &auth), ("x-request-id", &id)])
                .await;
            assert_eq!(r.status(), 200, "{sub} {path}");
            let record = h.record_of(&id).await;
            assert_eq!(record["upstream_name"], answered_by, "{sub} {path}");
        }
    }
    let refusals: Vec<Value> = h
        .audit_records()
        .into_iter()
        .filter(|r| r["status"] == 403)
        .collect();
    assert_eq!(refusals.len(), 4);
    for r in &refusals {
        assert_eq!(r["detail"], "owner_mismatch_response", "{r}");
    }
    let upstreams: Vec<&Value> = refusals.iter().map(|r| &r["upstream_name"]).collect();
    assert!(upstreams.contains(&&json!("orders-v2")) && upstreams.contains(&&json!("default")));
}

/// Attack: a partner's signed request is captured; the attacker, outside the route's allowlist,
/// sends it with every header that claims another client address. The gateway trusts one proxy,
/// so forwarded addresses are read — but only from that proxy.
#[tokio::test]
async fn a_spoofed_forwarded_address_does_not_open_a_signed_routes_allowlist() {
    let (key, key_file) = carrier_key();
    let h = start(
        Arc::new(Keys::new()),
        carrier_signs(vec![
            (
                "shutdown_grace = \"3s\"\n".into(),
                "shutdown_grace = \"3s\"\ntrusted_proxies = [\"127.0.0.5\"]\n".into(),
            ),
            (
                "id = \"order-detail\"\n".into(),
                "id = \"order-detail\"\nrequire_signature = true\nallow_ips = [\"127.0.0.3\"]\n"
                    .into(),
            ),
        ]),
        &[key_file],
    )
    .await;
    let attacker = client_from(&h.keys, IpAddr::from([127, 0, 0, 1]));
    let partner = client_from(&h.keys, IpAddr::from([127, 0, 0, 3]));
    let proxy = client_from(&h.keys, IpAddr::from([127, 0, 0, 5]));
    let url = h.url(DETAIL);
    let captured = signed_get(&h, &key, &url, &fresh_nonce());
    for (name, value) in [
        ("x-forwarded-for", "127.0.0.3"),
        ("x-forwarded-for", "127.0.0.3, 127.0.0.5"),
        ("x-forwarded-for", "127.0.0.5"),
        ("forwarded", "for=127.0.0.3"),
        ("x-real-ip", "127.0.0.3"),
    ] {
        let mut spoofed = captured.clone();
        spoofed.push((name.to_owned(), value.to_owned()));
        let (status, record) = send(&h, &attacker, DETAIL, &spoofed).await;
        assert_eq!(status, 403, "{name}: {value}: {record}");
        assert_eq!(record["detail"], "ip_not_allowed", "{name}: {value}");
        assert_eq!(record["client_ip"], "127.0.0.1", "{name}: {value}");
    }
    assert_eq!(
        h.upstream.count(),
        0,
        "no spoofed request reached the order service"
    );
    // The partner's own request still passes (the refusals did not spend its nonce) — once.
    let (status, record) = send(&h, &partner, DETAIL, &captured).await;
    assert_eq!((status, &record["signed"]), (200, &json!(true)), "{record}");
    let (status, record) = send(&h, &partner, DETAIL, &captured).await;
    assert_eq!(
        (status, &record["detail"]),
        (401, &json!("signature_replayed"))
    );
    // Through the trusted proxy the forwarded address counts, for the partner only.
    for (forwarded, expected) in [("127.0.0.3", 200), ("127.0.0.1", 403)] {
        let mut via_proxy = signed_get(&h, &key, &url, &fresh_nonce());
        via_proxy.push(("x-forwarded-for".to_owned(), forwarded.to_owned()));
        let (status, record) = send(&h, &proxy, DETAIL, &via_proxy).await;
        assert_eq!(status, expected, "{forwarded}: {record}");
        assert_eq!(record["client_ip"], forwarded);
    }
}
