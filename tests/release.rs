//! Issue 14 (CONTRACT §10, §11): named upstreams, the sticky guarded canary and stale-if-error,
//! end to end: two fake order services (the route's `default` and `orders-v2`), real TLS, real
//! Redis for the shared rollback.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ordergate::stage::canary::bucket;
use ordergate::vocab::event::{Deliver, Event, EventKind};
use serde_json::{Value, json};
use support::{FakeUpstream, Harness, Keys, RedisServer, Reply, edit};

const ORDERS: &str = "/v1/customers/C0000001/orders?start_date=2025-01-01&end_date=2025-01-31";
const ROUTE: &str = "customer-orders";

/// The base policy with `route_lines` added to `customer-orders` and `[upstreams.orders-v2]`
/// pointing at `v2`; `extra` edits after that.
fn policy(
    v2: SocketAddr,
    route_lines: &str,
    extra: &[(&str, &str)],
) -> impl FnOnce(&str) -> String + use<> {
    let route_lines = route_lines.to_owned();
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    move |p: &str| {
        let anchor = "forward_params = { customer_id = \"customer_id\" }\n";
        let mut text = edit(p, &[(anchor, &format!("{anchor}{route_lines}"))]);
        for (from, to) in &extra {
            text = edit(&text, &[(from, to)]);
        }
        text.push_str(&format!(
            "\n[upstreams.orders-v2]\nurl = \"http://{v2}\"\nconnect_timeout = \"500ms\"\ntimeout = \"1s\"\n"
        ));
        text
    }
}

fn canary(percent: f64, min_requests: u32) -> String {
    format!(
        "canary = {{ upstream = \"orders-v2\", percent = {percent:.1}, principals = [\"erp-sync\"] }}\n\
         [routes.canary_guard]\nwindow = \"1m\"\nmin_requests = {min_requests}\n"
    )
}

const STALE: &str =
    "[routes.stale_if_error]\nmax_age = \"15m\"\nmax_entries = 100\nmax_bytes = \"1MiB\"\n";

/// A customer of C0000001 named `sub` (each its own principal).
fn customer(h: &Harness, sub: &str) -> String {
    format!(
        "Bearer {}",
        h.token(sub, &["customer"], &[("customer_id", json!("C0000001"))])
    )
}

fn in_canary(route: &str, sub: &str, percent: f64) -> bool {
    u64::from(bucket(route, sub)) < (percent * 100.0) as u64
}

/// Which side `sub` went to: true when `v2` received the request.
async fn goes_to_canary(h: &Harness, v2: &FakeUpstream, sub: &str) -> bool {
    let before = v2.count();
    let r = h.get(ORDERS, &[("authorization", &customer(h, sub))]).await;
    assert!(
        r.status().is_success() || r.status().is_server_error(),
        "{}",
        r.status()
    );
    v2.count() > before
}

/// Keeps the events it is handed.
#[derive(Default, Clone)]
struct Recorder(Arc<parking_lot::Mutex<Vec<Fired>>>);

/// An event's kind and route.
type Fired = (EventKind, Option<String>);

impl Deliver for Recorder {
    fn deliver(&self, event: Event) {
        self.0
            .lock()
            .push((event.kind, event.route.map(|r| r.to_string())));
    }
}

fn gateway(h: &Harness) -> Arc<ordergate::gateway::Gateway> {
    h.running.as_ref().unwrap().gateway.clone()
}

async fn metrics(h: &Harness) -> String {
    h.metrics().await
}

#[tokio::test]
async fn a_principal_keeps_its_side_across_requests_restarts_and_instances() {
    let keys = Arc::new(Keys::new());
    let primary = FakeUpstream::start().await;
    let v2 = FakeUpstream::start().await;
    let lines = canary(20.0, 1000);
    let start = || Harness::with_parts(keys.clone(), primary.clone(), policy(v2.addr, &lines, &[]));
    let mut a = start().await;
    let b = start().await;
    let subs: Vec<String> = (0..40).map(|i| format!("user-{i}")).collect();
    let mut sides = Vec::new();
    for sub in &subs {
        let side = goes_to_canary(&a, &v2, sub).await;
        assert_eq!(
            side,
            in_canary(ROUTE, sub, 20.0),
            "{sub}: the documented hash"
        );
        assert_eq!(goes_to_canary(&a, &v2, sub).await, side, "{sub}: again");
        assert_eq!(
            goes_to_canary(&b, &v2, sub).await,
            side,
            "{sub}: other instance"
        );
        sides.push(side);
    }
    assert!(sides.iter().any(|s| *s) && sides.iter().any(|s| !*s));
    a.stop().await;
    let a = start().await;
    for (sub, side) in subs.iter().zip(&sides) {
        assert_eq!(
            goes_to_canary(&a, &v2, sub).await,
            *side,
            "{sub}: after a restart"
        );
    }
    gateway(&a).reload().await.unwrap();
    for (sub, side) in subs.iter().zip(&sides).take(10) {
        assert_eq!(
            goes_to_canary(&a, &v2, sub).await,
            *side,
            "{sub}: after a reload"
        );
    }
    // A listed principal goes to the canary whatever its bucket; the record names the upstream.
    let before = v2.count();
    let r = a
        .get(
            ORDERS,
            &[
                ("x-api-key", &a.keys.erp_key),
                ("x-request-id", "erp-canary-1"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(v2.count(), before + 1);
    let record = a.record_of("erp-canary-1").await;
    assert_eq!(record["upstream_name"], "orders-v2");
    assert_eq!(record["served"], "upstream");
    let r = a
        .get(
            ORDERS,
            &[
                ("authorization", &a.alice()),
                ("x-request-id", "alice-side-1"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let expected = if in_canary(ROUTE, "alice", 20.0) {
        "orders-v2"
    } else {
        "default"
    };
    assert_eq!(a.record_of("alice-side-1").await["upstream_name"], expected);
}

#[tokio::test]
async fn injected_5xx_trip_the_guard_which_rolls_back_until_reset() {
    let v2 = FakeUpstream::start().await;
    v2.set_default(Reply::Json(500, json!({"error": "v2 is broken"})));
    let route = "orders-guarded";
    let h = Harness::with_parts(
        Arc::new(Keys::new()),
        FakeUpstream::start().await,
        policy(
            v2.addr,
            &canary(50.0, 10),
            &[("id = \"customer-orders\"", "id = \"orders-guarded\"")],
        ),
    )
    .await;
    assert!(
        metrics(&h)
            .await
            .contains(&format!("ordergate_canary_state{{route=\"{route}\"}} 1"))
    );
    let events = Recorder::default();
    gateway(&h)
        .events
        .set_deliverer(Some(Box::new(events.clone())));
    let subs: Vec<String> = (0..80).map(|i| format!("user-{i}")).collect();
    let canary_subs: Vec<&String> = subs.iter().filter(|s| in_canary(route, s, 50.0)).collect();
    assert!(canary_subs.len() > 20, "{}", canary_subs.len());
    for (n, sub) in canary_subs.iter().enumerate() {
        let r = h
            .get(ORDERS, &[("authorization", &customer(&h, sub))])
            .await;
        if n < 10 {
            assert!(r.status().is_server_error(), "{n}: {}", r.status());
        } else {
            assert_eq!(r.status(), 200, "{n}: rolled back to the primary");
        }
    }
    assert!(
        v2.count() <= 10,
        "no call to v2 after the rollback: {}",
        v2.count()
    );
    let fired = events.0.lock().clone();
    assert_eq!(fired, [(EventKind::CanaryRollback, Some(route.to_owned()))]);
    assert!(
        metrics(&h)
            .await
            .contains(&format!("ordergate_canary_state{{route=\"{route}\"}} 2"))
    );
    // The reset is audited and sends the canary's principals to v2 again.
    let admin = reqwest::Client::new();
    let missing = admin
        .post(h.admin_url("/admin/canary/customer-orders/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404, "a route without a canary");
    let reset = admin
        .post(h.admin_url(&format!("/admin/canary/{route}/reset")))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 204);
    assert!(
        metrics(&h)
            .await
            .contains(&format!("ordergate_canary_state{{route=\"{route}\"}} 1"))
    );
    let r = h
        .get(ORDERS, &[("authorization", &customer(&h, canary_subs[0]))])
        .await;
    assert!(
        r.status().is_server_error(),
        "v2 is still broken (its breaker open)"
    );
    let (_, canary) = gateway(&h).live().guards()[0].figures();
    assert_eq!(
        canary.total, 1,
        "the canary takes its principals again, judged afresh"
    );
    let records = h.wait_for_records(canary_subs.len() + 3).await;
    let resets: Vec<&Value> = records
        .iter()
        .filter(|r| r["route"] == "admin.canary_reset")
        .collect();
    assert_eq!(resets.len(), 2);
    assert_eq!(resets[1]["status"], 204);
    assert_eq!(resets[0]["reason"], "not_found");
}

#[tokio::test]
async fn a_reload_resets_the_guard() {
    let v2 = FakeUpstream::start().await;
    v2.set_default(Reply::Json(503, json!({"error": "down"})));
    let h = Harness::with_parts(
        Arc::new(Keys::new()),
        FakeUpstream::start().await,
        policy(v2.addr, &canary(100.0, 1), &[]),
    )
    .await;
    let g = gateway(&h);
    assert!(goes_to_canary(&h, &v2, "user-1").await);
    assert!(
        g.live().guards()[0].tripped(),
        "one failed answer of one required"
    );
    assert!(!goes_to_canary(&h, &v2, "user-1").await, "rolled back");
    g.reload().await.unwrap();
    assert!(!g.live().guards()[0].tripped());
    assert!(
        goes_to_canary(&h, &v2, "user-1").await,
        "the reload reset it"
    );
}

#[tokio::test]
async fn the_guard_holds_below_min_requests_and_for_a_healthy_canary() {
    let broken = FakeUpstream::start().await;
    broken.set_default(Reply::Json(503, json!({"error": "down"})));
    let thin = Harness::with_parts(
        Arc::new(Keys::new()),
        FakeUpstream::start().await,
        policy(broken.addr, &canary(50.0, 1000), &[]),
    )
    .await;
    let healthy_v2 = FakeUpstream::start().await;
    let healthy = Harness::with_parts(
        Arc::new(Keys::new()),
        FakeUpstream::start().await,
        policy(healthy_v2.addr, &canary(50.0, 10), &[]),
    )
    .await;
    for i in 0..60 {
        let sub = format!("user-{i}");
        goes_to_canary(&thin, &broken, &sub).await;
        goes_to_canary(&healthy, &healthy_v2, &sub).await;
    }
    for h in [&thin, &healthy] {
        let live = gateway(h).live();
        let guards = live.guards();
        assert!(!guards[0].tripped(), "{:?}", guards[0].figures());
    }
    let (_, canary) = gateway(&healthy).live().guards()[0].figures();
    assert!(
        canary.total >= 10,
        "the healthy canary was judged: {canary:?}"
    );
    let (_, canary) = gateway(&thin).live().guards()[0].figures();
    assert!(
        canary.errors > 10,
        "every canary answer failed, below min_requests: {canary:?}"
    );
}

fn redis_policy(redis: &RedisServer, v2: SocketAddr) -> impl FnOnce(&str) -> String + use<> {
    let backend = format!(
        "backend = \"redis\"\nredis_url = \"{}\"\nredis_timeout = \"200ms\"",
        redis.url()
    );
    policy(
        v2,
        &canary(50.0, 10),
        &[("backend = \"local\"", backend.as_str())],
    )
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}");
}

#[tokio::test]
async fn a_rollback_and_its_reset_are_shared_through_redis() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let keys = Arc::new(Keys::new());
    let v2 = FakeUpstream::start().await;
    v2.set_default(Reply::Json(500, json!({"error": "v2 is broken"})));
    let a = Harness::with_parts(
        keys.clone(),
        FakeUpstream::start().await,
        redis_policy(&redis, v2.addr),
    )
    .await;
    let b = Harness::with_parts(
        keys,
        FakeUpstream::start().await,
        redis_policy(&redis, v2.addr),
    )
    .await;
    let (ga, gb) = (gateway(&a), gateway(&b));
    wait_until("a connects to redis", || ga.limiter.redis().is_some()).await;
    wait_until("b connects to redis", || gb.limiter.redis().is_some()).await;
    for i in 0..60 {
        goes_to_canary(&a, &v2, &format!("user-{i}")).await;
    }
    assert!(
        ga.live().guards()[0].tripped(),
        "a tripped on its own traffic"
    );
    wait_until("b learns of a's rollback", || {
        gb.live().guards()[0].tripped()
    })
    .await;
    assert_eq!(redis.keys("ordergate:{canary}:tripped").len(), 1);
    let canary_sub = (0..80)
        .map(|i| format!("user-{i}"))
        .find(|s| in_canary(ROUTE, s, 50.0))
        .unwrap();
    assert!(
        !goes_to_canary(&b, &v2, &canary_sub).await,
        "b sends it to the primary"
    );
    let reset = reqwest::Client::new()
        .post(b.admin_url(&format!("/admin/canary/{ROUTE}/reset")))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 204);
    assert!(!gb.live().guards()[0].tripped());
    wait_until("a learns of the reset", || !ga.live().guards()[0].tripped()).await;
    goes_to_canary(&a, &v2, &canary_sub).await;
    assert_eq!(
        ga.live().guards()[0].figures().1.total,
        1,
        "a's canary side again"
    );
}

/// A gateway whose `customer-orders` keeps answers, with `extra` edits.
async fn stale_gateway(extra: &[(&str, &str)]) -> Harness {
    let v2 = FakeUpstream::start().await;
    Harness::with_parts(
        Arc::new(Keys::new()),
        FakeUpstream::start().await,
        policy(v2.addr, STALE, extra),
    )
    .await
}

async fn orders(h: &Harness, authorization: &str) -> reqwest::Response {
    h.get(ORDERS, &[("authorization", authorization)]).await
}

#[tokio::test]
async fn a_kept_answer_goes_to_the_same_principal_and_view_only() {
    let h = stale_gateway(&[]).await;
    let alice = customer(&h, "alice");
    let fresh = orders(&h, &alice).await;
    assert_eq!(fresh.status(), 200);
    assert!(fresh.headers().get("cache-status").is_none());
    let fresh: Value = fresh.json().await.unwrap();
    h.upstream
        .set_default(Reply::Json(503, json!({"error": "down"})));
    let r = h
        .get(
            ORDERS,
            &[("authorization", &alice), ("x-request-id", "stale-1")],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-status"], "ordergate; hit; detail=stale");
    assert!(r.headers()["age"].to_str().unwrap().parse::<u64>().is_ok());
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.json::<Value>().await.unwrap(), fresh);
    let record = h.record_of("stale-1").await;
    assert_eq!(record["served"], "stale");
    assert_eq!(record["status"], 200);
    assert_eq!(record["upstream_status"], 503);
    // Another customer of the same orders, and alice with another view, never see it.
    let carol = customer(&h, "carol");
    assert_eq!(orders(&h, &carol).await.status(), 503);
    let alice_service = format!(
        "Bearer {}",
        h.token(
            "alice",
            &["customer_service"],
            &[("customer_id", json!("C0000001"))]
        )
    );
    assert_eq!(orders(&h, &alice_service).await.status(), 503);
    // Another request of alice's (other query) has no kept answer either.
    let other = ORDERS.replace("2025-01-31", "2025-01-30");
    assert_eq!(
        h.get(&other, &[("authorization", &alice)]).await.status(),
        503
    );
    // Refusals before the proxy stay refusals: a bad parameter is not answered from the store.
    let bad = format!("{ORDERS}&page_size=1000");
    assert_eq!(
        h.get(&bad, &[("authorization", &alice)]).await.status(),
        400
    );
}

#[tokio::test]
async fn an_open_circuit_serves_kept_answers_without_calling_the_upstream() {
    let h = stale_gateway(&[("open_for = \"1s\"", "open_for = \"30s\"")]).await;
    let alice = customer(&h, "alice");
    assert_eq!(orders(&h, &alice).await.status(), 200);
    h.upstream
        .set_default(Reply::Json(503, json!({"error": "down"})));
    for _ in 0..5 {
        assert_eq!(orders(&h, &alice).await.status(), 200);
    }
    let live = gateway(&h).live();
    assert_eq!(
        live.upstream_runtime(Default::default()).breaker.state(),
        ordergate::stage::circuit::State::Open
    );
    let calls = h.upstream.count();
    for _ in 0..5 {
        let r = orders(&h, &alice).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["cache-status"], "ordergate; hit; detail=stale");
    }
    assert_eq!(
        h.upstream.count(),
        calls,
        "no upstream call while the circuit is open"
    );
    assert_eq!(
        orders(&h, &customer(&h, "carol")).await.status(),
        503,
        "circuit_open for the rest"
    );
    assert!(
        metrics(&h)
            .await
            .contains("ordergate_stale_served_total{route=\"customer-orders\"}")
    );
}

/// Each named upstream reports its own circuit under its own name: the one that fails shows
/// open while the default one stays closed. (The upstream's name is this test's own: the
/// metrics recorder is shared by every gateway in the process.)
#[tokio::test]
async fn each_named_upstream_reports_its_own_circuit_state() {
    let v2 = FakeUpstream::start().await;
    v2.set_default(Reply::Json(503, json!({"error": "down"})));
    let named = policy(v2.addr, "upstream = \"orders-v2\"\n", &[]);
    let h = Harness::with_parts(
        Arc::new(Keys::new()),
        FakeUpstream::start().await,
        move |p| named(p).replace("orders-v2", "gauge-probe"),
    )
    .await;
    let series = "ordergate_circuit_state{upstream=\"gauge-probe\"}";
    let state = |metrics: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series))
            .map(|v| v.trim().to_owned())
    };
    assert_eq!(
        state(&metrics(&h).await).as_deref(),
        Some("0"),
        "closed from the start"
    );
    let alice = customer(&h, "alice");
    for _ in 0..5 {
        assert_eq!(orders(&h, &alice).await.status(), 503);
    }
    assert_eq!(v2.count(), 5);
    assert_eq!(orders(&h, &alice).await.status(), 503);
    assert_eq!(v2.count(), 5, "open: not called");
    assert_eq!(state(&metrics(&h).await).as_deref(), Some("1"), "open");
    let live = gateway(&h).live();
    assert_eq!(
        live.upstream_runtime(Default::default()).breaker.state(),
        ordergate::stage::circuit::State::Closed,
        "the default upstream's circuit is its own"
    );
    assert_eq!(h.upstream.count(), 0);
}

#[tokio::test]
async fn an_answer_marked_no_store_is_not_kept() {
    let h = stale_gateway(&[]).await;
    let alice = customer(&h, "alice");
    let body = serde_json::to_string(&support::sample_page()).unwrap();
    h.upstream.queue([Reply::Headers(
        200,
        vec![
            ("content-type", "application/json"),
            ("cache-control", "private, No-Store"),
        ],
        body,
    )]);
    assert_eq!(orders(&h, &alice).await.status(), 200);
    h.upstream
        .set_default(Reply::Json(503, json!({"error": "down"})));
    assert_eq!(orders(&h, &alice).await.status(), 503);
}

#[tokio::test]
async fn a_freeze_drops_the_principals_kept_answers() {
    let h = stale_gateway(&[("max_denials = 1000", "max_denials = 3")]).await;
    let alice = customer(&h, "alice");
    assert_eq!(orders(&h, &alice).await.status(), 200);
    h.upstream
        .set_default(Reply::Json(503, json!({"error": "down"})));
    assert_eq!(
        orders(&h, &alice).await.status(),
        200,
        "kept before the freeze"
    );
    h.upstream.set_default(Reply::Orders);
    let other = "/v1/customers/C0000002/orders?start_date=2025-01-01&end_date=2025-01-31";
    for _ in 0..3 {
        assert_eq!(
            h.get(other, &[("authorization", &alice)]).await.status(),
            403
        );
    }
    assert_eq!(orders(&h, &alice).await.status(), 403, "frozen");
    let admin = reqwest::Client::new();
    for key in ["ip:127.0.0.1", "principal:jwt:alice"] {
        let r = admin
            .delete(h.admin_url(&format!("/admin/frozen/{key}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{key}");
    }
    h.upstream
        .set_default(Reply::Json(503, json!({"error": "down"})));
    assert_eq!(
        orders(&h, &alice).await.status(),
        503,
        "nothing kept survives a freeze"
    );
}

#[tokio::test]
async fn a_reload_keeps_pools_breakers_and_answers_unless_their_settings_change() {
    let h = stale_gateway(&[]).await;
    let g = gateway(&h);
    let alice = customer(&h, "alice");
    assert_eq!(orders(&h, &alice).await.status(), 200);
    let before = g.live();
    let policy = std::fs::read_to_string(h.policy_path()).unwrap();
    // An unrelated change: every runtime and the kept answers carry over.
    std::fs::write(
        h.policy_path(),
        edit(&policy, &[("max_denials = 1000", "max_denials = 999")]),
    )
    .unwrap();
    g.reload().await.unwrap();
    let after = g.live();
    assert!(Arc::ptr_eq(&before.upstreams[0], &after.upstreams[0]));
    assert!(Arc::ptr_eq(&before.upstreams[1], &after.upstreams[1]));
    assert!(Arc::ptr_eq(
        before.releases[0].stale.as_ref().unwrap(),
        after.releases[0].stale.as_ref().unwrap()
    ));
    h.upstream
        .set_default(Reply::Json(503, json!({"error": "down"})));
    assert_eq!(
        orders(&h, &alice).await.status(),
        200,
        "kept across the reload"
    );
    // orders-v2's connect timeout changes: only its pool and breaker are new.
    // The policy ends with [upstreams.orders-v2], so the last `connect_timeout` is its own.
    let tail = policy.rfind("connect_timeout = \"500ms\"").unwrap();
    let v2_changed = format!(
        "{}connect_timeout = \"400ms\"\ntimeout = \"1s\"\n",
        &policy[..tail]
    );
    std::fs::write(h.policy_path(), &v2_changed).unwrap();
    g.reload().await.unwrap();
    let changed = g.live();
    assert_eq!(
        changed.policy.upstreams[1].1.connect_timeout,
        Duration::from_millis(400)
    );
    assert!(Arc::ptr_eq(&after.upstreams[0], &changed.upstreams[0]));
    assert!(!Arc::ptr_eq(&after.upstreams[1], &changed.upstreams[1]));
    // The route's views change: the kept answers go.
    let viewed = edit(
        &v2_changed,
        &[(
            "\"orders[].total\", \"orders[].items\"",
            "\"orders[].items\"",
        )],
    );
    std::fs::write(h.policy_path(), viewed).unwrap();
    g.reload().await.unwrap();
    assert!(
        gateway(&h).live().releases[0]
            .stale
            .as_ref()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        orders(&h, &alice).await.status(),
        503,
        "nothing kept survives a view change"
    );
}

#[tokio::test]
async fn a_route_moved_to_an_unreachable_upstream_is_answered_from_its_kept_answers() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let h = Harness::with_parts(
        Arc::new(Keys::new()),
        FakeUpstream::start().await,
        policy(closed, STALE, &[]),
    )
    .await;
    let alice = customer(&h, "alice");
    assert_eq!(orders(&h, &alice).await.status(), 200);
    let calls = h.upstream.count();
    // The route now forwards to orders-v2, which refuses connections; its views are unchanged,
    // so the kept answers carry over and cover the connect error.
    let text = std::fs::read_to_string(h.policy_path()).unwrap();
    let moved = edit(
        &text,
        &[(
            "[routes.stale_if_error]",
            "upstream = \"orders-v2\"\n[routes.stale_if_error]",
        )],
    );
    std::fs::write(h.policy_path(), moved).unwrap();
    gateway(&h).reload().await.unwrap();
    let r = h
        .get(
            ORDERS,
            &[("authorization", &alice), ("x-request-id", "moved-1")],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-status"], "ordergate; hit; detail=stale");
    assert_eq!(
        h.upstream.count(),
        calls,
        "the default upstream is no longer called"
    );
    let record = h.record_of("moved-1").await;
    assert_eq!(record["served"], "stale");
    assert_eq!(record["upstream_name"], Value::Null, "nobody answered");
    let r = orders(&h, &customer(&h, "carol")).await;
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "https://ordergate.dev/problems/bad_gateway");
}

#[tokio::test]
async fn a_route_without_views_keeps_the_answer_it_streamed() {
    let stale = format!("require_scopes = [\"orders:read:full\"]\n{STALE}");
    let h = stale_gateway(&[("require_scopes = [\"orders:read:full\"]\n", &stale)]).await;
    let raw = "/v1/raw/orders/O2025010100000001";
    let erp = h.keys.erp_key.clone();
    let fresh = h.get(raw, &[("x-api-key", &erp)]).await;
    assert_eq!(fresh.status(), 200);
    let fresh: Value = fresh.json().await.unwrap();
    assert_eq!(fresh["payment"]["card_number"], "6222021234567890128");
    h.upstream
        .set_default(Reply::Json(504, json!({"error": "slow"})));
    let r = h.get(raw, &[("x-api-key", &erp)]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-status"], "ordergate; hit; detail=stale");
    assert_eq!(r.json::<Value>().await.unwrap(), fresh);
}

#[tokio::test]
async fn many_distinct_requests_keep_memory_bounded() {
    let h = stale_gateway(&[("max_entries = 100", "max_entries = 4")]).await;
    for i in 0..12 {
        let alice = customer(&h, &format!("user-{i}"));
        assert_eq!(orders(&h, &alice).await.status(), 200);
    }
    let live = gateway(&h).live();
    let store = live.releases[0].stale.as_ref().unwrap();
    assert!(store.len() <= 4, "{} entries", store.len());
    assert!(
        store.weight() <= 1024 * 1024 + 64,
        "{} bytes",
        store.weight()
    );
}

#[tokio::test]
async fn an_unknown_upstream_is_a_check_problem_with_its_location() {
    let keys = Keys::new();
    let base = support::base_policy(&keys, "127.0.0.1:9".parse().unwrap());
    let text = edit(
        &base,
        &[(
            "forward_params = { customer_id = \"customer_id\" }\n",
            "forward_params = { customer_id = \"customer_id\" }\nupstream = \"orders-v3\"\n",
        )],
    );
    let dir = tempfile::tempdir().unwrap();
    support::write_files(dir.path(), &keys);
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, &text).unwrap();
    let problems = ordergate::policy::load(&path).err().unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("upstream = \"orders-v3\""))
        .unwrap()
        + 1;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!((problems[0].line, problems[0].col), (line, 12));
    assert_eq!(
        problems[0].message,
        "unknown upstream `orders-v3` (declared: default)"
    );
}
