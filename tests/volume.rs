//! Issue 12 item 4, the volume and enumeration guard (CONTRACT §8.3): a caller walking through
//! customer ids is alerted on, or frozen, at `max` + 1 distinct values and not at `max`, on one
//! instance and across two sharing one real Redis; the same for `records` counted from routes'
//! `[routes.response] count`, with and without a view.

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use support::webhook::kinds;
use support::{Answer, FakeUpstream, Harness, Keys, Receiver, RedisServer, edit};

const SECRET: &str = "volume-guard-test-secret-0123456789abcdef";

fn orders(customer: u32) -> String {
    format!("/v1/customers/C{customer:07}/orders?start_date=2025-01-01&end_date=2025-01-31")
}

/// The test policy with the guard (`distinct` customer ids, `max` 3), events to `receiver`
/// and, with `redis`, the shared backend.
fn guarded(
    action: &'static str,
    receiver: String,
    redis: Option<String>,
) -> impl FnOnce(&str) -> String {
    move |p: &str| {
        let mut text = p.to_owned();
        if let Some(url) = redis {
            text = edit(
                &text,
                &[(
                    "backend = \"local\"",
                    &format!(
                        "backend = \"redis\"\nredis_url = \"{url}\"\nredis_timeout = \"500ms\""
                    ),
                )],
            );
        }
        format!(
            "{text}\n[abuse.volume]\ndistinct = {{ param = \"customer_id\", max = 3, window = \"1h\" }}\n\
             action = \"{action}\"\n\n[events]\nwebhook_url = \"{receiver}\"\n\
             webhook_secret_file = \"events.secret\"\n"
        )
    }
}

async fn start(keys: Arc<Keys>, change: impl FnOnce(&str) -> String) -> Harness {
    Harness::with_files(
        keys,
        FakeUpstream::start().await,
        change,
        &[("events.secret", SECRET.to_owned())],
    )
    .await
}

async fn get(h: &Harness, customer: u32) -> u16 {
    let key = h.keys.erp_key.clone();
    h.get(&orders(customer), &[("x-api-key", &key)])
        .await
        .status()
        .as_u16()
}

/// Waits (bounded) until `h` answers `customer` with `status`.
async fn until_status(h: &Harness, customer: u32, status: u16) {
    for _ in 0..100 {
        if get(h, customer).await == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never answered {status}");
}

#[tokio::test]
async fn walking_customer_ids_freezes_at_max_plus_one_and_not_at_max() {
    let receiver = Receiver::start(Answer::Status(200)).await;
    let h = start(
        Arc::new(Keys::new()),
        guarded("freeze", receiver.url(), None),
    )
    .await;
    for customer in [1, 2, 3, 1, 2, 3, 3] {
        assert_eq!(
            get(&h, customer).await,
            200,
            "{customer}: at most max distinct ids"
        );
    }
    // Refused requests are not answers: they never count.
    let key = h.keys.erp_key.clone();
    for customer in 5..8 {
        let path = format!("/v1/customers/C{customer:07}/orders?start_date=2025-01-01");
        assert_eq!(h.get(&path, &[("x-api-key", &key)]).await.status(), 400);
    }
    assert_eq!(get(&h, 3).await, 200);
    assert_eq!(
        get(&h, 4).await,
        200,
        "the crossing request itself was answered"
    );
    assert_eq!(get(&h, 1).await, 403, "then the principal is frozen");
    let key = h.keys.erp_key.clone();
    let frozen = h
        .get(
            &orders(2),
            &[("x-api-key", &key), ("x-request-id", "after-the-freeze")],
        )
        .await;
    assert_eq!(frozen.status(), 403);
    let body: serde_json::Value = frozen.json().await.unwrap();
    assert_eq!(body["type"], "https://ordergate.dev/problems/frozen");
    let record = h.record_of("after-the-freeze").await;
    assert_eq!(
        (&record["reason"], &record["detail"]),
        (&"frozen".into(), &"principal_frozen".into())
    );
    assert_eq!(h.upstream.count(), 9, "frozen requests reach nobody");
    let got = receiver
        .wait_until(|d| kinds(d).iter().any(|k| k == "freeze"))
        .await;
    assert_eq!(kinds(&got), ["volume_exceeded", "freeze"]);
    for d in &got {
        let body = d.json();
        assert_eq!(body["principal"], "api_key:erp-sync");
        assert_eq!(body["detail"], "volume_distinct");
        assert!(d.verifies(SECRET.as_bytes()));
    }
    for d in &got {
        assert_eq!(d.json()["route"], "customer-orders");
        assert_eq!(d.json()["client_ip"], "127.0.0.1");
    }
    let frozen: serde_json::Value = reqwest::get(h.admin_url("/admin/frozen"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(frozen[0]["key"], "principal:api_key:erp-sync");
}

/// A scraper that waits out its freeze and goes on inside the window is frozen again at its
/// next answer (it is still over the limit), with a new event: the guard does not stay quiet
/// until the window has emptied. Local and on Redis.
async fn a_scraper_back_from_its_freeze_is_frozen_again(redis: Option<&RedisServer>) {
    let receiver = Receiver::start(Answer::Status(200)).await;
    let guard = guarded("freeze", receiver.url(), redis.map(RedisServer::url));
    let h = start(Arc::new(Keys::new()), move |p| {
        guard(&edit(p, &[("freeze_for = \"15m\"", "freeze_for = \"1s\"")]))
    })
    .await;
    if redis.is_some() {
        wait_connected(&h).await;
    }
    for customer in 1..=4 {
        assert_eq!(get(&h, customer).await, 200, "{customer}");
    }
    until_status(&h, 1, 403).await;
    // The freeze runs out; the principal is still over `max` inside the 1 h window.
    until_status(&h, 5, 200).await;
    until_status(&h, 6, 403).await;
    let got = receiver
        .wait_until(|d| kinds(d).iter().filter(|k| *k == "freeze").count() >= 2)
        .await;
    let volume = kinds(&got)
        .iter()
        .filter(|k| *k == "volume_exceeded")
        .count();
    assert!(volume >= 2, "a new crossing each time: {:?}", kinds(&got));
}

#[tokio::test]
async fn a_scraper_back_from_its_freeze_is_frozen_again_locally() {
    a_scraper_back_from_its_freeze_is_frozen_again(None).await;
}

#[tokio::test]
async fn a_scraper_back_from_its_freeze_is_frozen_again_on_redis() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    a_scraper_back_from_its_freeze_is_frozen_again(Some(&redis)).await;
}

#[tokio::test]
async fn alert_reports_once_and_keeps_serving() {
    let receiver = Receiver::start(Answer::Status(200)).await;
    let h = start(
        Arc::new(Keys::new()),
        guarded("alert", receiver.url(), None),
    )
    .await;
    for customer in 1..=6 {
        assert_eq!(get(&h, customer).await, 200);
    }
    h.running.as_ref().unwrap().gateway.reload().await.unwrap();
    let got = receiver
        .wait_until(|d| kinds(d).iter().any(|k| k == "reload"))
        .await;
    assert_eq!(
        kinds(&got),
        ["volume_exceeded", "reload"],
        "one crossing, one event"
    );
    let metrics = h.metrics().await;
    assert!(
        metrics.lines().any(|l| l
            .starts_with("ordergate_volume_exceeded_total{limit=\"distinct\"} ")
            && !l.ends_with(" 0")),
        "{metrics}"
    );
}

async fn wait_connected(h: &Harness) {
    let gateway = h.running.as_ref().unwrap().gateway.clone();
    for _ in 0..500 {
        if gateway.limiter.redis().is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the gateway did not connect to redis");
}

/// Members of the principal's shared distinct set (waiting, bounded, until there are `n`).
async fn shared_members(redis: &RedisServer, n: usize) -> usize {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let key = "ordergate:vol:{principal:api_key:erp-sync}:d";
    let mut count = 0;
    for _ in 0..200 {
        count = redis::cmd("ZCARD")
            .arg(key)
            .query_async(&mut con)
            .await
            .unwrap();
        if count >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    count
}

/// Waits (bounded) until the shared distinct set holds the hashes of these customers' ids.
async fn shared_holds(redis: &RedisServer, customers: &[u32]) {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let key = "ordergate:vol:{principal:api_key:erp-sync}:d";
    for _ in 0..200 {
        let mut all = true;
        for customer in customers {
            let hash =
                ordergate::stage::volume::value_hash("customer_id", &format!("C{customer:07}"));
            let score: Option<f64> = redis::cmd("ZSCORE")
                .arg(key)
                .arg(format!("{hash:016x}"))
                .query_async(&mut con)
                .await
                .unwrap();
            all &= score.is_some();
        }
        if all {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the shared set never held {customers:?}");
}

async fn pair(
    action: &'static str,
    redis: &RedisServer,
    receiver: &Receiver,
) -> (Harness, Harness) {
    let keys = Arc::new(Keys::new());
    let a = start(
        keys.clone(),
        guarded(action, receiver.url(), Some(redis.url())),
    )
    .await;
    let b = start(keys, guarded(action, receiver.url(), Some(redis.url()))).await;
    wait_connected(&a).await;
    wait_connected(&b).await;
    (a, b)
}

#[tokio::test]
async fn two_instances_share_the_distinct_count_and_the_freeze() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let receiver = Receiver::start(Answer::Status(200)).await;
    let (a, b) = pair("freeze", &redis, &receiver).await;
    assert_eq!(get(&a, 1).await, 200);
    assert_eq!(get(&b, 2).await, 200);
    assert_eq!(get(&a, 3).await, 200);
    assert_eq!(
        shared_members(&redis, 3).await,
        3,
        "both instances count into one set"
    );
    for (h, customer) in [(&b, 1), (&a, 2), (&b, 3)] {
        assert_eq!(
            get(h, customer).await,
            200,
            "max distinct ids, across both: no freeze"
        );
    }
    assert_eq!(
        get(&b, 4).await,
        200,
        "the crossing request itself was answered"
    );
    until_status(&b, 1, 403).await;
    until_status(&a, 1, 403).await;
    let got = receiver
        .wait_until(|d| kinds(d).iter().any(|k| k == "freeze"))
        .await;
    assert_eq!(kinds(&got), ["volume_exceeded", "freeze"]);
    assert_eq!(
        shared_members(&redis, 4).await,
        4,
        "the set holds at most max + 1 hashes"
    );
    assert!(
        redis
            .keys("ordergate:vol:*")
            .iter()
            .all(|k| !k.contains("C000000")),
        "values are kept as hashes only"
    );
}

#[tokio::test]
async fn two_instances_alert_once_per_crossing() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let receiver = Receiver::start(Answer::Status(200)).await;
    let (a, b) = pair("alert", &redis, &receiver).await;
    for (n, customer) in (1..=6).enumerate() {
        let h = if n % 2 == 0 { &a } else { &b };
        assert_eq!(get(h, customer).await, 200);
    }
    // The last two values in the shared set: every request's count has run.
    shared_holds(&redis, &[5, 6]).await;
    for h in [&a, &b] {
        h.running.as_ref().unwrap().gateway.reload().await.unwrap();
    }
    let got = receiver
        .wait_until(|d| {
            let kinds = kinds(d);
            kinds.iter().filter(|k| *k == "reload").count() == 2
                && kinds.iter().any(|k| k == "volume_exceeded")
        })
        .await;
    let crossings = kinds(&got)
        .iter()
        .filter(|k| *k == "volume_exceeded")
        .count();
    assert_eq!(crossings, 1, "{:?}", kinds(&got));
}

/// The `records` limit through the shared script directly (routes' `count` is another change):
/// two guards, as two instances, add up in one Redis and fire once, at max + 1.
#[tokio::test]
async fn the_records_limit_is_shared_and_fires_at_max_plus_one() {
    use ordergate::stage::abuse::{AbuseGuard, AbuseSettings};
    use ordergate::stage::rate_limit::RedisBuckets;
    use ordergate::stage::volume::{
        Answered, RecordsLimit, VolumeAction, VolumeGuard, VolumeSettings,
    };
    use ordergate::vocab::event::{Deliver, Event, EventKind, Events};
    use ordergate::vocab::principal_kind::PrincipalKind;

    #[derive(Clone, Default)]
    struct Recorder(Arc<parking_lot::Mutex<Vec<Event>>>);
    impl Deliver for Recorder {
        fn deliver(&self, event: Event) {
            self.0.lock().push(event);
        }
    }

    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let client = redis::Client::open(redis.url()).unwrap();
    let store = RedisBuckets::connect(client, Duration::from_millis(500), "ordergate:".into())
        .await
        .unwrap();
    let events = Events::default();
    let seen = Recorder::default();
    events.set_deliverer(Some(Box::new(seen.clone())));
    let instances: Vec<(VolumeGuard, AbuseGuard)> = (0..2)
        .map(|_| {
            let mut volume = VolumeGuard::default();
            volume.report_to(events.clone());
            let mut abuse = AbuseGuard::default();
            abuse.report_to(events.clone());
            (volume, abuse)
        })
        .collect();
    let settings = VolumeSettings {
        distinct: None,
        records: Some(RecordsLimit {
            max: 100,
            window: Duration::from_secs(3600),
        }),
        action: VolumeAction::Freeze(Duration::from_secs(900)),
    };
    let answered = |records| Answered {
        principal_key: "principal:api_key:erp-sync".into(),
        client_ip: "127.0.0.1".parse().unwrap(),
        route: "customer-orders".into(),
        value: None,
        records: Some(records),
    };
    let abuse_settings = AbuseSettings::default();
    for (n, records) in [60, 40, 0].into_iter().enumerate() {
        let (volume, abuse) = &instances[n % 2];
        volume
            .observe(
                &settings,
                abuse,
                &abuse_settings,
                Some(store.store()),
                &answered(records),
            )
            .await;
    }
    assert!(seen.0.lock().is_empty(), "100 records = max: nothing fires");
    let (volume, abuse) = &instances[1];
    volume
        .observe(
            &settings,
            abuse,
            &abuse_settings,
            Some(store.store()),
            &answered(1),
        )
        .await;
    let (volume, abuse) = &instances[0];
    volume
        .observe(
            &settings,
            abuse,
            &abuse_settings,
            Some(store.store()),
            &answered(5),
        )
        .await;
    let kinds: Vec<_> = seen.0.lock().iter().map(|e| (e.kind, e.detail)).collect();
    assert_eq!(
        kinds,
        [
            (EventKind::VolumeExceeded, Some("volume_records")),
            (EventKind::Freeze, Some("volume_records"))
        ],
        "one crossing across both instances"
    );
    assert!(
        instances[1]
            .1
            .is_principal_frozen(PrincipalKind::ApiKey, "erp-sync")
    );
    assert!(
        instances[0]
            .1
            .holds("principal:api_key:erp-sync", Some(store.store()))
            .await,
        "the freeze is shared"
    );
}

/// `customer-orders` (with views) and a route without views, both counting `orders`, guarded by
/// `records = { max = 6 }`; with `redis`, the shared backend.
fn counted(receiver: String, redis: Option<String>) -> impl FnOnce(&str) -> String {
    move |p: &str| {
        let mut text = edit(
            p,
            &[(
                "[[routes.response.views]]\nscope = \"orders:read:full\"\n",
                "[routes.response]\ncount = \"orders\"\n[[routes.response.views]]\nscope = \"orders:read:full\"\n",
            )],
        );
        if let Some(url) = redis {
            text = edit(
                &text,
                &[(
                    "backend = \"local\"",
                    &format!(
                        "backend = \"redis\"\nredis_url = \"{url}\"\nredis_timeout = \"500ms\""
                    ),
                )],
            );
        }
        format!(
            "{text}\n[[routes]]\nid = \"orders-unviewed\"\nmethod = \"GET\"\npath = \"/v1/unviewed/orders\"\n\
             upstream_path = \"/api/orders\"\nrequire_scopes = [\"orders:read:full\"]\n\
             [routes.response]\ncount = \"orders\"\n\n\
             [abuse.volume]\nrecords = {{ max = 6, window = \"1h\" }}\naction = \"freeze\"\n\n\
             [events]\nwebhook_url = \"{receiver}\"\nwebhook_secret_file = \"events.secret\"\n"
        )
    }
}

const UNVIEWED: &str = "/v1/unviewed/orders";

/// A page of `n` orders.
fn page(n: usize) -> support::Reply {
    let orders: Vec<_> = (0..n)
        .map(|i| support::sample_order(&format!("O20250101{i:08}")))
        .collect();
    support::Reply::Json(200, serde_json::json!({ "orders": orders }))
}

/// One GET with the ERP key: status and the audit record's `records`.
async fn counted_get(h: &Harness, path: &str, reply: Option<support::Reply>) -> (u16, Value) {
    if let Some(reply) = reply {
        h.upstream.queue([reply]);
    }
    let key = h.keys.erp_key.clone();
    let response = h.get(path, &[("x-api-key", &key)]).await;
    let status = response.status().as_u16();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    (status, h.record_of(&id).await["records"].clone())
}

#[tokio::test]
async fn the_records_limit_fires_at_max_plus_one_records_and_not_at_max() {
    let receiver = Receiver::start(Answer::Status(200)).await;
    let h = start(Arc::new(Keys::new()), counted(receiver.url(), None)).await;
    // The view route counts the upstream's array (the ERP's view keeps every field).
    assert_eq!(counted_get(&h, &orders(1), None).await, (200, 2.into()));
    // The route without views counts the answer it streams through.
    assert_eq!(counted_get(&h, UNVIEWED, None).await, (200, 2.into()));
    assert_eq!(
        counted_get(&h, &orders(1), Some(page(2))).await,
        (200, 2.into())
    );
    // 6 records = max: nothing fires; empty pages and uncountable answers add nothing.
    assert_eq!(
        counted_get(&h, UNVIEWED, Some(page(0))).await,
        (200, 0.into())
    );
    let uncountable = support::Reply::Json(200, serde_json::json!({"orders": "none"}));
    assert_eq!(
        counted_get(&h, UNVIEWED, Some(uncountable)).await,
        (200, Value::Null)
    );
    assert_eq!(
        counted_get(&h, &orders(1), Some(page(0))).await,
        (200, 0.into())
    );
    // A refused request returns no record: it never counts.
    let key = h.keys.erp_key.clone();
    let bad = "/v1/customers/C0000001/orders?start_date=2025-01-01";
    assert_eq!(h.get(bad, &[("x-api-key", &key)]).await.status(), 400);
    assert!(
        receiver.deliveries().is_empty(),
        "at max: {:?}",
        kinds(&receiver.deliveries())
    );
    // The 7th record: the crossing request is answered, the next one refused.
    assert_eq!(
        counted_get(&h, UNVIEWED, Some(page(1))).await,
        (200, 1.into())
    );
    assert_eq!(counted_get(&h, &orders(1), None).await.0, 403);
    assert_eq!(counted_get(&h, UNVIEWED, None).await.0, 403);
    let got = receiver
        .wait_until(|d| kinds(d).iter().any(|k| k == "freeze"))
        .await;
    assert_eq!(kinds(&got), ["volume_exceeded", "freeze"]);
    for d in &got {
        let body = d.json();
        assert_eq!(body["detail"], "volume_records");
        assert_eq!(body["principal"], "api_key:erp-sync");
        assert_eq!(body["route"], "orders-unviewed", "the crossing route");
    }
    let metrics = h.metrics().await;
    // The recorder is the test process's: other tests cross this limit too. The events above
    // say this instance crossed once.
    assert!(
        metrics.lines().any(|l| l
            .strip_prefix("ordergate_volume_exceeded_total{limit=\"records\"} ")
            .is_some_and(|n| n != "0")),
        "{metrics}"
    );
}

/// Waits (bounded) until the principal's shared record sums add up to `n`; returns the sum.
async fn shared_records(redis: &RedisServer, n: u64) -> u64 {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let key = "ordergate:vol:{principal:api_key:erp-sync}:r";
    let mut sum = 0;
    for _ in 0..200 {
        let values: Vec<u64> = redis::cmd("HVALS")
            .arg(key)
            .query_async(&mut con)
            .await
            .unwrap();
        sum = values.iter().sum();
        if sum >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sum
}

#[tokio::test]
async fn two_instances_share_the_records_count_and_freeze_at_max_plus_one() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let receiver = Receiver::start(Answer::Status(200)).await;
    let keys = Arc::new(Keys::new());
    let a = start(keys.clone(), counted(receiver.url(), Some(redis.url()))).await;
    let b = start(keys, counted(receiver.url(), Some(redis.url()))).await;
    wait_connected(&a).await;
    wait_connected(&b).await;
    assert_eq!(counted_get(&a, &orders(1), None).await, (200, 2.into()));
    assert_eq!(counted_get(&b, UNVIEWED, None).await, (200, 2.into()));
    assert_eq!(counted_get(&a, UNVIEWED, None).await, (200, 2.into()));
    assert_eq!(
        shared_records(&redis, 6).await,
        6,
        "both add into one window"
    );
    // At max on the shared count: neither instance freezes.
    assert_eq!(
        counted_get(&b, &orders(1), Some(page(0))).await,
        (200, 0.into())
    );
    assert_eq!(
        counted_get(&a, &orders(1), Some(page(0))).await,
        (200, 0.into())
    );
    assert!(receiver.deliveries().is_empty());
    // One more record, at the other instance than the one that last counted.
    assert_eq!(
        counted_get(&b, &orders(1), Some(page(1))).await,
        (200, 1.into())
    );
    assert_eq!(shared_records(&redis, 7).await, 7);
    until_status(&a, 1, 403).await;
    until_status(&b, 1, 403).await;
    let got = receiver
        .wait_until(|d| kinds(d).iter().any(|k| k == "freeze"))
        .await;
    assert_eq!(kinds(&got), ["volume_exceeded", "freeze"], "one crossing");
    for d in &got {
        let body = d.json();
        assert_eq!(body["detail"], "volume_records");
        assert_eq!(
            body["route"], "customer-orders",
            "fired by the 7th record, not the 6th"
        );
    }
}
