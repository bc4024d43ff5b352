//! Issue #6, shared backend: two gateway instances against one real Redis share buckets and
//! freezes exactly; when Redis stops they fall back as `on_backend_error` says, and use it again
//! when it returns.

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use support::{FakeUpstream, Harness, Keys, RedisServer, edit};

const ORDERS: &str = "/v1/customers/C0000001/orders?start_date=2025-01-01&end_date=2025-01-31";

fn redis_policy(redis: &RedisServer, extra: &[(&str, &str)]) -> impl FnOnce(&str) -> String {
    let url = redis.url();
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    move |p: &str| {
        let mut edits = vec![(
            "backend = \"local\"".to_owned(),
            format!("backend = \"redis\"\nredis_url = \"{url}\"\nredis_timeout = \"200ms\""),
        )];
        edits.extend(extra);
        let edits: Vec<(&str, &str)> = edits
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        edit(p, &edits)
    }
}

/// Two gateways with the same keys and policy (each with its own fake upstream).
async fn pair(redis: &RedisServer, extra: &[(&str, &str)]) -> (Harness, Harness) {
    let keys = Arc::new(Keys::new());
    let a = Harness::with_parts(
        keys.clone(),
        FakeUpstream::start().await,
        redis_policy(redis, extra),
    )
    .await;
    let b = Harness::with_parts(
        keys,
        FakeUpstream::start().await,
        redis_policy(redis, extra),
    )
    .await;
    wait_connected(&a).await;
    wait_connected(&b).await;
    (a, b)
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

#[tokio::test]
async fn two_instances_admit_exactly_one_buckets_allowance() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (a, b) = pair(
        &redis,
        &[(
            "rate_limit = { rate = \"120/min\", burst = 20 }",
            "rate_limit = { rate = \"1/min\", burst = 5 }",
        )],
    )
    .await;
    let alice = a.alice();
    let mut admitted = 0;
    let mut remaining = Vec::new();
    for n in 0..12 {
        let h = if n % 2 == 0 { &a } else { &b };
        let r = h.get(ORDERS, &[("authorization", &alice)]).await;
        if r.status() == 200 {
            admitted += 1;
            remaining.push(
                r.headers()["ratelimit-remaining"]
                    .to_str()
                    .unwrap()
                    .to_owned(),
            );
        } else {
            assert_eq!(r.status(), 429);
        }
    }
    assert_eq!(
        admitted, 5,
        "admitted across both instances equals the bucket's allowance"
    );
    assert_eq!(remaining, ["4", "3", "2", "1", "0"]);
    assert_eq!(a.upstream.count() + b.upstream.count(), 5);
    assert!(!redis.keys("ordergate:rl:*").is_empty());
    assert!(
        !redis.keys("ordergate:rl:{p:jwt:alice}:*").is_empty(),
        "shared buckets are keyed by the principal's kind and id"
    );
}

#[tokio::test]
async fn denials_and_freezes_are_shared() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    // Buckets wide enough for the polling below: a 429 is a denial too, so polls that drained
    // alice's bucket would freeze her again right after the unfreeze.
    let (a, b) = pair(
        &redis,
        &[
            ("max_denials = 1000", "max_denials = 3"),
            (
                "rate_limit = { rate = \"120/min\", burst = 20 }",
                "rate_limit = { rate = \"60000/min\", burst = 2000 }",
            ),
            (
                "per_principal = { rate = \"1000/min\", burst = 100 }",
                "per_principal = { rate = \"60000/min\", burst = 2000 }",
            ),
        ],
    )
    .await;
    let alice = a.alice();
    let other = "/v1/customers/C0000002/orders?start_date=2025-01-01&end_date=2025-01-31";
    assert_eq!(
        a.get(other, &[("authorization", &alice)]).await.status(),
        403
    );
    assert_eq!(
        b.get(other, &[("authorization", &alice)]).await.status(),
        403
    );
    assert_eq!(
        a.get(other, &[("authorization", &alice)]).await.status(),
        403
    );
    // The third denial (counted across instances) froze alice and the IP; B learns within a second.
    let mut frozen_on_b = false;
    for _ in 0..300 {
        let r = b.get(ORDERS, &[("authorization", &alice)]).await;
        if r.status() == 403 {
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["type"], "https://ordergate.dev/problems/frozen");
            frozen_on_b = true;
            break;
        }
        assert_eq!(r.status(), 200, "B must learn the freeze, not make its own");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(frozen_on_b, "the freeze did not reach the other instance");
    let admin = reqwest::Client::new();
    let listed: Value = admin
        .get(b.admin_url("/admin/frozen"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    for key in ["ip:127.0.0.1", "principal:jwt:alice"] {
        assert_eq!(
            admin
                .delete(b.admin_url(&format!("/admin/frozen/{key}")))
                .send()
                .await
                .unwrap()
                .status(),
            204
        );
    }
    let mut thawed_on_a = false;
    for _ in 0..300 {
        let status = a.get(ORDERS, &[("authorization", &alice)]).await.status();
        if status == 200 {
            thawed_on_a = true;
            break;
        }
        assert_eq!(status, 403, "A answers frozen until it learns the unfreeze");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(thawed_on_a, "the unfreeze did not reach the other instance");
}

#[tokio::test]
async fn falls_back_while_redis_is_down_and_uses_it_again_when_it_returns() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let port = redis.port;
    let keys = Arc::new(Keys::new());
    let local = Harness::with_parts(
        keys.clone(),
        FakeUpstream::start().await,
        redis_policy(&redis, &[]),
    )
    .await;
    let strict = Harness::with_parts(
        keys,
        FakeUpstream::start().await,
        redis_policy(
            &redis,
            &[(
                "on_backend_error = \"local\"",
                "on_backend_error = \"reject\"",
            )],
        ),
    )
    .await;
    wait_connected(&local).await;
    wait_connected(&strict).await;
    let alice = local.alice();
    assert_eq!(
        local
            .get(ORDERS, &[("authorization", &alice)])
            .await
            .status(),
        200
    );
    assert_eq!(
        strict
            .get(ORDERS, &[("authorization", &alice)])
            .await
            .status(),
        200
    );
    redis.stop();
    let r = local.get(ORDERS, &[("authorization", &alice)]).await;
    assert_eq!(
        r.status(),
        200,
        "on_backend_error = local keeps serving with this instance's buckets"
    );
    assert!(r.headers().contains_key("ratelimit-remaining"));
    let r = strict.get(ORDERS, &[("authorization", &alice)]).await;
    assert_eq!(r.status(), 503, "on_backend_error = reject");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "https://ordergate.dev/problems/overloaded");
    // Redis returns (empty): both instances use it again.
    let redis = RedisServer::start_on(port).await;
    let mut back = false;
    for _ in 0..300 {
        if strict
            .get(ORDERS, &[("authorization", &alice)])
            .await
            .status()
            == 200
        {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(back, "service did not resume when redis returned");
    assert_eq!(
        local
            .get(ORDERS, &[("authorization", &alice)])
            .await
            .status(),
        200
    );
    assert!(
        !redis.keys("ordergate:rl:*").is_empty(),
        "buckets live in redis again"
    );
    let metrics = local.metrics().await;
    assert!(metrics.contains("ordergate_rate_limit_backend_errors_total"));
}
