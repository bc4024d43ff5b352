//! Issue 12 item 3, security events (CONTRACT §8.2): every event reaches a local receiver once,
//! signed with the webhook secret; a receiver that refuses connections or never answers changes
//! no request's latency, and a full queue drops its oldest events and counts them.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use support::webhook::kinds;
use support::{Answer, FakeUpstream, Harness, Keys, Receiver, edit};

const SECRET: &str = "0123456789abcdef0123456789abcdef-events";
const OTHERS_ORDERS: &str =
    "/v1/customers/C0000002/orders?start_date=2025-01-01&end_date=2025-01-31";

/// The test policy with `[events]` sending to `url`, and `extra` edits.
fn with_events(
    url: String,
    events_extra: &'static str,
    edits: &'static [(&'static str, &'static str)],
) -> impl FnOnce(&str) -> String {
    move |p: &str| {
        format!(
            "{}\n[events]\nwebhook_url = \"{url}\"\nwebhook_secret_file = \"events.secret\"\n{events_extra}",
            edit(p, edits)
        )
    }
}

async fn start(change: impl FnOnce(&str) -> String) -> Harness {
    Harness::with_files(
        Arc::new(Keys::new()),
        FakeUpstream::start().await,
        change,
        &[("events.secret", format!("{SECRET}\n"))],
    )
    .await
}

#[tokio::test]
async fn a_freeze_produces_exactly_one_signed_event() {
    let receiver = Receiver::start(Answer::Status(204)).await;
    let h = start(with_events(
        receiver.url(),
        "",
        &[("max_denials = 1000", "max_denials = 3")],
    ))
    .await;
    let alice = h.alice();
    for _ in 0..3 {
        let r = h.get(OTHERS_ORDERS, &[("authorization", &alice)]).await;
        assert_eq!(r.status(), 403);
    }
    // Frozen now: more refusals must not report the freeze again.
    for _ in 0..4 {
        let r = h.get(OTHERS_ORDERS, &[("authorization", &alice)]).await;
        assert_eq!(r.status(), 403);
    }
    // Events are sent in order: once the reload's arrives, everything before it has.
    h.running.as_ref().unwrap().gateway.reload().await.unwrap();
    let got = receiver
        .wait_until(|d| kinds(d).iter().any(|k| k == "reload"))
        .await;
    let freezes: Vec<_> = got
        .iter()
        .filter(|d| d.json()["kind"] == "freeze")
        .collect();
    let principal: Vec<_> = freezes
        .iter()
        .filter(|d| d.json()["principal"] == "jwt:alice")
        .collect();
    assert_eq!(principal.len(), 1, "one freeze, one event: {got:#?}");
    let ip: Vec<_> = freezes
        .iter()
        .filter(|d| d.json()["principal"].is_null() && d.json()["client_ip"] == "127.0.0.1")
        .collect();
    assert_eq!(ip.len(), 1, "the address's freeze, once too");
    assert_eq!(freezes.len(), 2);

    let event = principal[0];
    assert!(event.verifies(SECRET.as_bytes()), "{}", event.signature);
    assert!(!event.verifies(b"another secret entirely, 32 bytes!"));
    assert_eq!(event.content_type, "application/json");
    let body = event.json();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "kind",
            "ts",
            "principal",
            "client_ip",
            "route",
            "detail",
            "policy_sha256"
        ]
    );
    assert_eq!(body["detail"], "owner_mismatch");
    assert_eq!(body["client_ip"], "127.0.0.1");
    let policy = std::fs::read(h.policy_path()).unwrap();
    assert_eq!(body["policy_sha256"], hex::encode(Sha256::digest(&policy)));
    let text = String::from_utf8(event.body.clone()).unwrap();
    assert!(!text.contains(SECRET));
    assert!(!text.contains(&alice[7..]), "no credential in an event");
    let reload = got.iter().find(|d| d.json()["kind"] == "reload").unwrap();
    assert_eq!(reload.json()["detail"], "ok");
    assert!(reload.verifies(SECRET.as_bytes()));
}

#[tokio::test]
async fn an_unfreeze_is_reported_too() {
    let receiver = Receiver::start(Answer::Status(200)).await;
    let h = start(with_events(
        receiver.url(),
        "",
        &[("max_denials = 1000", "max_denials = 1")],
    ))
    .await;
    let alice = h.alice();
    assert_eq!(
        h.get(OTHERS_ORDERS, &[("authorization", &alice)])
            .await
            .status(),
        403
    );
    let r = h
        .client
        .delete(h.admin_url("/admin/frozen/principal:jwt:alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let got = receiver
        .wait_until(|d| kinds(d).iter().any(|k| k == "unfreeze"))
        .await;
    let unfreeze = got.iter().find(|d| d.json()["kind"] == "unfreeze").unwrap();
    assert_eq!(unfreeze.json()["principal"], "jwt:alice");
    assert!(unfreeze.verifies(SECRET.as_bytes()));
}

#[tokio::test]
async fn a_failing_receiver_gets_the_event_again_freshly_signed() {
    let receiver = Receiver::start(Answer::Status(200)).await;
    receiver.answer_next(&[Answer::Status(503), Answer::Status(500)]);
    let h = start(with_events(receiver.url(), "", &[])).await;
    h.running.as_ref().unwrap().gateway.reload().await.unwrap();
    let got = receiver.wait_until(|d| d.len() >= 3).await;
    assert_eq!(kinds(&got), ["reload", "reload", "reload"]);
    assert!(got.iter().all(|d| d.body == got[0].body), "the same event");
    assert!(got.iter().all(|d| d.verifies(SECRET.as_bytes())));
}

/// `{kind="freeze",result="dropped"}` from the process's metrics.
async fn dropped(h: &Harness) -> f64 {
    let text = h.metrics().await;
    text.lines()
        .find(|l| {
            l.starts_with("ordergate_events_total{")
                && l.contains("kind=\"freeze\"")
                && l.contains("result=\"dropped\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Every request freezes a new client address (each from its own `X-Forwarded-For` behind a
/// trusted proxy, one denial freezes), so each one reports an event while it is answered.
const FREEZE_EACH: &[(&str, &str)] = &[
    ("max_denials = 1000", "max_denials = 1"),
    (
        "max_in_flight = 64",
        "trusted_proxies = [\"127.0.0.1/32\"]\nmax_in_flight = 64",
    ),
];

#[tokio::test]
async fn dead_receivers_leave_latency_unchanged_and_a_full_queue_drops_the_oldest() {
    let hanging = Receiver::start(Answer::Never).await;
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hooks/ordergate", l.local_addr().unwrap())
    };
    let quiet = "queue_capacity = 2\ntimeout = \"30s\"\nmax_attempts = 3\n";
    let gateways = [
        start(|p: &str| edit(p, FREEZE_EACH)).await,
        start(with_events(refused, quiet, FREEZE_EACH)).await,
        start(with_events(hanging.url(), quiet, FREEZE_EACH)).await,
    ];
    let before = dropped(&gateways[0]).await;
    const ROUNDS: usize = 40;
    let mut latency: [Vec<Duration>; 3] = Default::default();
    // Interleaved, so whatever else loads the machine loads all three alike.
    for n in 0..ROUNDS {
        for (g, h) in gateways.iter().enumerate() {
            let ip = format!("203.0.{g}.{}", n + 1);
            let started = Instant::now();
            let r = h.get(OTHERS_ORDERS, &[("x-forwarded-for", &ip)]).await;
            latency[g].push(started.elapsed());
            assert_eq!(r.status(), 401, "every request is a denial that freezes");
        }
    }
    let [none, refused, hanging_latency] = latency.map(median);
    // A request that waited for the receiver would take the 30 s attempt timeout (hanging) or
    // the backoff between attempts (refused); anything within a few times the baseline did not.
    for (name, dead) in [("refused", refused), ("never answers", hanging_latency)] {
        assert!(
            dead <= none * 3 + Duration::from_millis(50),
            "receiver that {name}: median {dead:?} against {none:?} without a receiver"
        );
    }
    let after = dropped(&gateways[0]).await;
    assert!(
        after - before >= (ROUNDS - 3) as f64,
        "the hanging receiver's queue of 2 dropped all but the event in flight and two: {before} -> {after}"
    );
    assert_eq!(
        hanging.deliveries().len(),
        1,
        "one attempt hangs; the rest wait or drop"
    );
}

#[test]
fn the_demo_tour_freezes_a_scraper_and_shows_where_the_events_went() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ordergate"))
        .args([
            "demo",
            "--exit-after-tour",
            "--port",
            "0",
            "--admin-port",
            "0",
            "--state",
        ])
        .arg(dir.path())
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("11 answered, then → 403 frozen"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "volume_exceeded jwt:mallory detail=volume_distinct route=customer-orders signature ok"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("freeze jwt:mallory"), "{stdout}");
    let log = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.iter().all(|e| e["signature_ok"] == true), "{log}");
    assert!(
        events.iter().any(|e| e["event"]["kind"] == "freeze"),
        "{log}"
    );
}

#[tokio::test]
async fn every_events_series_is_exported_at_zero_from_the_start() {
    let h = Harness::start().await;
    let text = h.metrics().await;
    for kind in [
        "freeze",
        "unfreeze",
        "reload",
        "volume_exceeded",
        "canary_rollback",
    ] {
        for result in ["sent", "failed", "dropped", "suppressed"] {
            assert!(
                text.lines()
                    .any(|l| l.starts_with("ordergate_events_total{")
                        && l.contains(&format!("kind=\"{kind}\""))
                        && l.contains(&format!("result=\"{result}\""))),
                "{kind} {result} missing"
            );
        }
    }
    for limit in ["distinct", "records"] {
        assert!(text.contains(&format!(
            "ordergate_volume_exceeded_total{{limit=\"{limit}\"}}"
        )));
    }
}

#[tokio::test]
async fn losing_and_regaining_the_audit_log_is_reported() {
    let receiver = Receiver::start(Answer::Status(200)).await;
    // Rotating at every record reopens the file each time, so a broken directory shows at once.
    let h = start(with_events(
        receiver.url(),
        "",
        &[
            ("rotate_bytes = \"100MiB\"", "rotate_bytes = \"1B\""),
            ("keep_files = 5", "keep_files = 1000"),
        ],
    ))
    .await;
    let alice = h.alice();
    let own = "/v1/customers/C0000001/orders?start_date=2025-01-01&end_date=2025-01-31";
    assert_eq!(h.get(own, &[("authorization", &alice)]).await.status(), 200);
    h.wait_for_records(1).await;
    let audit = h.dir.path().join("audit");
    let aside = h.dir.path().join("audit-aside");
    std::fs::rename(&audit, &aside).unwrap();
    std::fs::write(&audit, "not a directory").unwrap();
    // Its answer is aborted (commit before completion), so it may fail: only its record matters.
    let _ = h
        .client
        .get(h.url(own))
        .header("authorization", &alice)
        .send()
        .await;
    receiver
        .wait_until(|d| kinds(d).iter().any(|k| k == "audit_unavailable"))
        .await;
    std::fs::remove_file(&audit).unwrap();
    std::fs::rename(&aside, &audit).unwrap();
    let got = receiver
        .wait_until(|d| kinds(d).iter().any(|k| k == "audit_recovered"))
        .await;
    let audit_kinds: Vec<_> = kinds(&got)
        .into_iter()
        .filter(|k| k.starts_with("audit_"))
        .collect();
    assert_eq!(audit_kinds, ["audit_unavailable", "audit_recovered"]);
    assert!(got.iter().all(|d| d.verifies(SECRET.as_bytes())));
}

#[tokio::test]
async fn a_refused_reload_is_reported_as_invalid() {
    let receiver = Receiver::start(Answer::Status(200)).await;
    let h = start(with_events(receiver.url(), "", &[])).await;
    let good = std::fs::read_to_string(h.policy_path()).unwrap();
    std::fs::write(h.policy_path(), good.replace("[audit]", "[audit_typo]")).unwrap();
    assert!(h.running.as_ref().unwrap().gateway.reload().await.is_err());
    let got = receiver
        .wait_until(|d| kinds(d).iter().any(|k| k == "reload"))
        .await;
    let body = got[0].json();
    assert_eq!(body["detail"], "invalid");
    assert_eq!(
        body["policy_sha256"],
        hex::encode(Sha256::digest(good.as_bytes())),
        "reported under the policy still in force"
    );
}

/// `ordergate_events_total{kind="reload",result=...}`.
async fn reload_events(h: &Harness, result: &str) -> f64 {
    let text = h.metrics().await;
    text.lines()
        .find(|l| {
            l.starts_with("ordergate_events_total{")
                && l.contains("kind=\"reload\"")
                && l.contains(&format!("result=\"{result}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn an_https_receiver_is_verified_against_webhook_ca_and_an_untrusted_one_fails() {
    let keys = Arc::new(Keys::new());
    let (addr, hits) =
        support::serve_https(&keys, Arc::new(parking_lot::Mutex::new("{}".into()))).await;
    let url = format!("https://127.0.0.1:{}/hooks/ordergate", addr.port());
    let trusted = Harness::with_files(
        keys.clone(),
        FakeUpstream::start().await,
        with_events(url.clone(), "webhook_ca = \"ca.pem\"\n", &[]),
        &[("events.secret", SECRET.to_owned())],
    )
    .await;
    trusted
        .running
        .as_ref()
        .unwrap()
        .gateway
        .reload()
        .await
        .unwrap();
    for _ in 0..500 {
        if hits.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "delivered over TLS"
    );

    // Without the CA the receiver's certificate is not trusted: nothing is sent in the clear,
    // and the event counts as failed.
    let untrusted = Harness::with_files(
        keys,
        FakeUpstream::start().await,
        with_events(url, "max_attempts = 1\n", &[]),
        &[("events.secret", SECRET.to_owned())],
    )
    .await;
    let failed = reload_events(&untrusted, "failed").await;
    untrusted
        .running
        .as_ref()
        .unwrap()
        .gateway
        .reload()
        .await
        .unwrap();
    let mut now = failed;
    for _ in 0..500 {
        now = reload_events(&untrusted, "failed").await;
        if now > failed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        now > failed,
        "an untrusted receiver's event is failed: {failed} -> {now}"
    );
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "and never reached it"
    );
}
