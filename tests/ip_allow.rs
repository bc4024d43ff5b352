//! Issue 11, item 4 (CONTRACT §7.2): IP allowlists on `[server]`, API keys, mTLS clients, roles
//! and routes, checked against the §6 client address — clients bound to several 127.0.0.x
//! sources, a spoofed `X-Forwarded-For` from an untrusted peer, a trusted proxy chain — and
//! `freeze_on_ip_violation`; `ordergate check` refusing malformed blocks and warning on whole
//! families.

mod support;

use std::net::IpAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use ordergate::demo::pki::Issued;
use ordergate::vocab::event::{Deliver, Event, EventKind};
use parking_lot::Mutex;
use rustls_pki_types::pem::PemObject as _;
use serde_json::Value;
use support::{Harness, Keys, edit};

const DETAIL: &str = "/v1/orders/O2025010100000001";
const RAW: &str = "/v1/raw/orders/O2025010100000001";
const ORDERS: &str = "/v1/customers/C0000003/orders?start_date=2025-01-01&end_date=2025-01-31";

/// The lists under test: the server admits 127.0.0.0/29 and trusts the proxy 127.0.0.5; the
/// logistics key is used from 127.0.0.2, the JD certificate from 127.0.0.4, customer service
/// from 127.0.0.2–3, and the raw route only from 127.0.0.3.
fn lists(policy: &str) -> String {
    edit(
        policy,
        &[
            (
                "shutdown_grace = \"3s\"\n",
                "shutdown_grace = \"3s\"\nallow_ips = [\"127.0.0.0/29\"]\ntrusted_proxies = [\"127.0.0.5\"]\n",
            ),
            (
                "roles = [\"logistics_partner\"]\n",
                "roles = [\"logistics_partner\"]\nallow_ips = [\"127.0.0.2\"]\n",
            ),
            (
                "subject = \"CN=jd-marketplace,O=JD Partner\"\n",
                "subject = \"CN=jd-marketplace,O=JD Partner\"\nallow_ips = [\"127.0.0.4/32\"]\n",
            ),
            (
                "[roles.customer_service]\nscopes = [\"orders:read\", \"orders:read:any_customer\", \"orders:read:contact\"]\n",
                "[roles.customer_service]\nscopes = [\"orders:read\", \"orders:read:any_customer\", \"orders:read:contact\"]\nallow_ips = [\"127.0.0.2\", \"::ffff:127.0.0.3\"]\n",
            ),
            (
                "require_scopes = [\"orders:read:full\"]\n",
                "require_scopes = [\"orders:read:full\"]\nallow_ips = [\"127.0.0.3\"]\n",
            ),
        ],
    )
}

/// A client trusting the test CA whose connections leave from `local`.
fn client_from(keys: &Keys, local: &str, identity: Option<&Issued>) -> reqwest::Client {
    support::install();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(keys.ca.pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match identity {
        Some(id) => {
            let certs = rustls_pki_types::CertificateDer::pem_slice_iter(id.cert_pem.as_bytes())
                .map(|c| c.unwrap())
                .collect();
            let key =
                rustls_pki_types::PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .local_address(local.parse::<IpAddr>().unwrap())
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Status and request id of one GET from `local` with `headers`.
async fn get_from(h: &Harness, local: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = client_from(&h.keys, local, None).get(h.url(path));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    (response.status().as_u16(), id)
}

async fn assert_ip_refused(h: &Harness, (status, id): (u16, String)) -> Value {
    assert_eq!(status, 403);
    let record = h.record_of(&id).await;
    assert_eq!(record["reason"], "forbidden");
    assert_eq!(record["detail"], "ip_not_allowed");
    assert_eq!(record["decision"], "deny");
    record
}

#[tokio::test]
async fn the_server_list_refuses_before_anything_else() {
    let h = Harness::with(lists).await;
    let alice = h.alice();
    let auth = [("authorization", alice.as_str())];
    let (status, _) = get_from(
        &h,
        "127.0.0.1",
        ORDERS.replace("C0000003", "C0000001").as_str(),
        &auth,
    )
    .await;
    assert_eq!(status, 200);
    let record = assert_ip_refused(&h, get_from(&h, "127.0.0.9", DETAIL, &auth).await).await;
    assert_eq!(record["client_ip"], "127.0.0.9");
    assert_eq!(record["route"], Value::Null, "refused before routing");
    assert_eq!(
        record["principal"]["kind"], "none",
        "refused before authentication"
    );
    // An unknown path or no credential at all: the same 403, nothing about the routes revealed.
    assert_ip_refused(&h, get_from(&h, "127.0.0.9", "/no/such/path", &[]).await).await;
    assert_ip_refused(&h, get_from(&h, "127.0.0.9", DETAIL, &[]).await).await;
    assert_eq!(h.upstream.count(), 1);
}

#[tokio::test]
async fn each_list_that_applies_must_admit_the_client() {
    let h = Harness::with(lists).await;
    let logistics = [("x-api-key", h.keys.logistics_key.as_str())];
    let erp = [("x-api-key", h.keys.erp_key.as_str())];
    let agent = format!("Bearer {}", h.token("agent", &["customer_service"], &[]));
    let agent = [("authorization", agent.as_str())];

    // The key's own list.
    assert_eq!(get_from(&h, "127.0.0.2", DETAIL, &logistics).await.0, 200);
    let record = assert_ip_refused(&h, get_from(&h, "127.0.0.3", DETAIL, &logistics).await).await;
    assert_eq!(record["principal"]["id"], "sf-logistics");
    assert_eq!(record["route"], "order-detail");
    // A role's list, for a token naming that role; the IPv4-mapped entry is the IPv4 address.
    assert_eq!(get_from(&h, "127.0.0.2", DETAIL, &agent).await.0, 200);
    assert_eq!(get_from(&h, "127.0.0.3", DETAIL, &agent).await.0, 200);
    assert_ip_refused(&h, get_from(&h, "127.0.0.1", DETAIL, &agent).await).await;
    // A route's list: the ERP key is free elsewhere, bound on the raw route.
    assert_eq!(get_from(&h, "127.0.0.1", DETAIL, &erp).await.0, 200);
    assert_eq!(get_from(&h, "127.0.0.3", RAW, &erp).await.0, 200);
    assert_ip_refused(&h, get_from(&h, "127.0.0.2", RAW, &erp).await).await;
    // Key and route lists together: each admits a different address, so nothing passes.
    assert_ip_refused(&h, get_from(&h, "127.0.0.2", RAW, &logistics).await).await;
    let before = h.upstream.count();
    assert_ip_refused(&h, get_from(&h, "127.0.0.3", RAW, &logistics).await).await;
    assert_eq!(h.upstream.count(), before, "a refusal reaches no upstream");

    // An mTLS client's list.
    let jd = |local: &str| client_from(&h.keys, local, Some(&h.keys.jd));
    let ok = jd("127.0.0.4").get(h.url(ORDERS)).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let refused = jd("127.0.0.2").get(h.url(ORDERS)).send().await.unwrap();
    let id = refused.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let record = assert_ip_refused(&h, (refused.status().as_u16(), id)).await;
    assert_eq!(record["principal"]["kind"], "mtls");
}

#[tokio::test]
async fn forwarded_addresses_count_only_through_a_trusted_proxy() {
    let h = Harness::with(lists).await;
    let key = h.keys.logistics_key.clone();
    // An untrusted peer claiming the key's address: its own address is checked.
    let record = assert_ip_refused(
        &h,
        get_from(
            &h,
            "127.0.0.1",
            DETAIL,
            &[("x-api-key", &key), ("x-forwarded-for", "127.0.0.2")],
        )
        .await,
    )
    .await;
    assert_eq!(record["client_ip"], "127.0.0.1");
    // The trusted proxy forwarding the key's address, alone and after a spoofed element.
    for chain in [
        "127.0.0.2",
        "203.0.113.9, 127.0.0.2",
        "127.0.0.2, 127.0.0.5",
    ] {
        let (status, id) = get_from(
            &h,
            "127.0.0.5",
            DETAIL,
            &[("x-api-key", &key), ("x-forwarded-for", chain)],
        )
        .await;
        assert_eq!(status, 200, "{chain}");
        assert_eq!(h.record_of(&id).await["client_ip"], "127.0.0.2");
    }
    // The trusted proxy forwarding an address outside the server's list, or the key's.
    let outside = get_from(
        &h,
        "127.0.0.5",
        DETAIL,
        &[
            ("x-api-key", &key),
            ("x-forwarded-for", "127.0.0.2, 198.51.100.7"),
        ],
    )
    .await;
    let record = assert_ip_refused(&h, outside).await;
    assert_eq!(record["client_ip"], "198.51.100.7");
    assert_eq!(record["route"], Value::Null);
    let elsewhere = get_from(
        &h,
        "127.0.0.5",
        DETAIL,
        &[("x-api-key", &key), ("x-forwarded-for", "127.0.0.3")],
    )
    .await;
    assert_ip_refused(&h, elsewhere).await;
    // The proxy itself, without a header, is the client.
    let own = get_from(&h, "127.0.0.5", DETAIL, &[("x-api-key", &key)]).await;
    assert_ip_refused(&h, own).await;
}

/// Collects every event handed to it.
#[derive(Default, Clone)]
struct Collected(Arc<Mutex<Vec<Event>>>);

impl Deliver for Collected {
    fn deliver(&self, event: Event) {
        self.0.lock().push(event);
    }
}

#[tokio::test]
async fn freeze_on_ip_violation_freezes_the_credential_at_once() {
    let h = Harness::with(|p| {
        let p = lists(p);
        format!("{p}\n").replace("[abuse]\n", "[abuse]\nfreeze_on_ip_violation = true\n")
    })
    .await;
    let events = Collected::default();
    let gateway = h.running.as_ref().unwrap().gateway.clone();
    gateway.events.set_deliverer(Some(Box::new(events.clone())));
    let key = h.keys.logistics_key.clone();
    assert_ip_refused(
        &h,
        get_from(&h, "127.0.0.1", DETAIL, &[("x-api-key", &key)]).await,
    )
    .await;
    // From its own address now: frozen, although far below `max_denials`.
    let (status, id) = get_from(&h, "127.0.0.2", DETAIL, &[("x-api-key", &key)]).await;
    assert_eq!(status, 403);
    assert_eq!(h.record_of(&id).await["reason"], "frozen");
    let frozen: Value = reqwest::get(h.admin_url("/admin/frozen"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys: Vec<&str> = frozen
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["key"].as_str())
        .collect();
    assert_eq!(
        keys,
        ["principal:api_key:sf-logistics"],
        "the credential, not the address"
    );
    // Other callers from that address are unaffected.
    let alice = h.alice();
    let own = ORDERS.replace("C0000003", "C0000001");
    assert_eq!(
        get_from(&h, "127.0.0.1", &own, &[("authorization", &alice)])
            .await
            .0,
        200
    );
    let seen: Vec<(EventKind, Option<String>, Option<&'static str>)> = events
        .0
        .lock()
        .iter()
        .map(|e| (e.kind, e.principal.clone(), e.detail))
        .collect();
    let principal = Some("api_key:sf-logistics".to_owned());
    assert_eq!(
        seen,
        [
            (
                EventKind::IpViolation,
                principal.clone(),
                Some("ip_not_allowed")
            ),
            (EventKind::Freeze, principal, Some("ip_not_allowed")),
        ]
    );
}

/// A stolen key used in a loop from outside its list: every request refused and audited, one
/// `ip_violation` reported per principal and route per window, the repeats only counted — so a
/// loop cannot flood the log or push other events out of the webhook's queue.
#[tokio::test]
async fn a_violation_in_a_loop_is_reported_once_and_the_repeats_counted() {
    let h = Harness::with(lists).await;
    let events = Collected::default();
    let gateway = h.running.as_ref().unwrap().gateway.clone();
    gateway.events.set_deliverer(Some(Box::new(events.clone())));
    let key = h.keys.logistics_key.clone();
    for n in 0..30 {
        let from = if n % 2 == 0 { "127.0.0.1" } else { "127.0.0.3" };
        assert_ip_refused(&h, get_from(&h, from, DETAIL, &[("x-api-key", &key)]).await).await;
    }
    let seen: Vec<(EventKind, Option<String>, Option<IpAddr>, u64)> = events
        .0
        .lock()
        .iter()
        .map(|e| (e.kind, e.principal.clone(), e.client_ip, e.suppressed))
        .collect();
    assert_eq!(
        seen,
        [(
            EventKind::IpViolation,
            Some("api_key:sf-logistics".to_owned()),
            "127.0.0.1".parse().ok(),
            0
        )]
    );
    let metrics = h.metrics().await;
    let suppressed = metrics
        .lines()
        .find(|l| {
            l.starts_with("ordergate_events_total{")
                && l.contains("kind=\"ip_violation\"")
                && l.contains("result=\"suppressed\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or_default();
    assert!(suppressed >= 29.0, "{suppressed}");
}

#[tokio::test]
async fn without_the_freeze_a_violation_is_an_ordinary_denial() {
    let h = Harness::with(|p| edit(&lists(p), &[("max_denials = 1000", "max_denials = 2")])).await;
    let key = h.keys.logistics_key.clone();
    assert_ip_refused(
        &h,
        get_from(&h, "127.0.0.1", DETAIL, &[("x-api-key", &key)]).await,
    )
    .await;
    assert_eq!(
        get_from(&h, "127.0.0.2", DETAIL, &[("x-api-key", &key)])
            .await
            .0,
        200
    );
    assert_ip_refused(
        &h,
        get_from(&h, "127.0.0.3", DETAIL, &[("x-api-key", &key)]).await,
    )
    .await;
    let (status, id) = get_from(&h, "127.0.0.2", DETAIL, &[("x-api-key", &key)]).await;
    assert_eq!(status, 403);
    assert_eq!(
        h.record_of(&id).await["reason"],
        "frozen",
        "the second denial froze it"
    );
}

/// `ordergate check` on the test policy changed by `change`: (success, stdout, stderr).
fn check(change: impl FnOnce(&str) -> String) -> (bool, String, String) {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    support::write_files(dir.path(), &keys);
    let upstream = "127.0.0.1:9".parse().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, change(&support::base_policy(&keys, upstream))).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ordergate"))
        .args(["check", "-c", path.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).replace(&*path.to_string_lossy(), "P");
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn check_refuses_malformed_blocks_and_warns_on_whole_families() {
    let line_of =
        |policy: &str, needle: &str| policy.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let mut lines = (0, 0);
    let (ok, _, stderr) = check(|p| {
        let p = edit(
            p,
            &[
                (
                    "shutdown_grace = \"3s\"\n",
                    "shutdown_grace = \"3s\"\nallow_ips = [\"10.0.0.0/8\", \"10.1.2.3/8\"]\n",
                ),
                (
                    "roles = [\"logistics_partner\"]\n",
                    "roles = [\"logistics_partner\"]\nallow_ips = [\"203.0.113.0/24\", \"203.0.113.300\"]\n",
                ),
            ],
        );
        lines = (line_of(&p, "10.1.2.3/8"), line_of(&p, "203.0.113.300"));
        p
    });
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "P:{}:28: `10.1.2.3/8` has host bits set past its prefix; the block is `10.0.0.0/8`",
            lines.0
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "P:{}:32: `203.0.113.300` is not a CIDR block",
            lines.1
        )),
        "{stderr}"
    );
    assert!(stderr.contains("2 problem(s)"), "{stderr}");

    let mut line = 0;
    let (ok, stdout, stderr) = check(|p| {
        let p = edit(
            p,
            &[(
                "shutdown_grace = \"3s\"\n",
                "shutdown_grace = \"3s\"\nallow_ips = [\"0.0.0.0/0\", \"::/0\"]\n",
            )],
        );
        line = line_of(&p, "0.0.0.0/0");
        p
    });
    assert!(ok, "{stderr}");
    assert!(stdout.contains(": ok"), "{stdout}");
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [
            format!("P:{line}:14: warning: `0.0.0.0/0` admits every address of its family"),
            format!("P:{line}:27: warning: `::/0` admits every address of its family"),
        ]
    );
}

/// IPv6 and IPv4-mapped peers, which loopback sockets cannot produce: through the tower service.
#[tokio::test]
async fn ipv6_and_ipv4_mapped_clients_without_sockets() {
    use http_body_util::{BodyExt, Full};
    use ordergate::context::ConnInfo;
    use ordergate::pipeline::service::GatewayService;
    use tower::ServiceExt;

    support::install();
    let keys = Keys::new();
    let upstream = support::FakeUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    support::write_files(dir.path(), &keys);
    let path = dir.path().join("policy.toml");
    let policy = edit(
        &support::base_policy(&keys, upstream.addr),
        &[(
            "shutdown_grace = \"3s\"\n",
            "shutdown_grace = \"3s\"\nallow_ips = [\"203.0.113.0/24\", \"2001:db8:42::/48\"]\n",
        )],
    );
    std::fs::write(&path, policy).unwrap();
    let gateway =
        ordergate::gateway::Gateway::start(ordergate::policy::load(&path).unwrap(), &path)
            .await
            .unwrap();
    let token = support::token_with(
        &keys.es256,
        "alice",
        &["customer"],
        &[("customer_id", serde_json::json!("C0000001"))],
    );
    let own = ORDERS.replace("C0000003", "C0000001");
    for (peer, admitted) in [
        ("203.0.113.7", true),
        ("::ffff:203.0.113.7", true),
        ("2001:db8:42:1::9", true),
        ("2001:db8:43::1", false),
        ("::ffff:198.51.100.1", false),
        ("198.51.100.1", false),
        ("::203.0.113.7", false),
    ] {
        let conn = ConnInfo::plain(std::net::SocketAddr::new(peer.parse().unwrap(), 40_000));
        let service = GatewayService::new(gateway.clone(), Arc::new(conn));
        let request = http::Request::get(format!("https://127.0.0.1{own}"))
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(bytes::Bytes::new()))
            .unwrap();
        let response = service.oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let _ = response.into_body().collect().await.unwrap();
        assert_eq!(status, if admitted { 200 } else { 403 }, "{peer}");
    }
    assert_eq!(upstream.count(), 3);
}

/// With the Redis backend, a freeze made at once on one instance holds on the other.
#[tokio::test]
async fn an_ip_violation_freeze_is_shared_through_redis() {
    let Some(redis) = support::RedisServer::start().await else {
        return;
    };
    let url = redis.url();
    let policy = move |p: &str| {
        edit(
            &lists(p),
            &[
                (
                    "backend = \"local\"",
                    &format!(
                        "backend = \"redis\"\nredis_url = \"{url}\"\nredis_timeout = \"200ms\""
                    ),
                ),
                ("[abuse]\n", "[abuse]\nfreeze_on_ip_violation = true\n"),
            ],
        )
    };
    let keys = Arc::new(Keys::new());
    let a = Harness::with_parts(
        keys.clone(),
        support::FakeUpstream::start().await,
        policy.clone(),
    )
    .await;
    let b = Harness::with_parts(keys, support::FakeUpstream::start().await, policy).await;
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
    let key = a.keys.logistics_key.clone();
    assert_eq!(
        get_from(&b, "127.0.0.2", DETAIL, &[("x-api-key", &key)])
            .await
            .0,
        200
    );
    assert_ip_refused(
        &a,
        get_from(&a, "127.0.0.1", DETAIL, &[("x-api-key", &key)]).await,
    )
    .await;
    // B mirrors the shared frozen set every second.
    let mut frozen_on_b = false;
    for _ in 0..300 {
        let (status, id) = get_from(&b, "127.0.0.2", DETAIL, &[("x-api-key", &key)]).await;
        if status == 403 {
            assert_eq!(b.record_of(&id).await["reason"], "frozen");
            frozen_on_b = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(frozen_on_b, "the freeze did not reach the other instance");
}
