//! `serve --shadow NEXT` (CONTRACT §9): a request mix is answered byte for byte the same with
//! and without a shadow policy, and `ordergate_shadow_diff_total` rises by exactly the requests
//! the candidate decides differently, by kind; a reload reloads the candidate too. One test in
//! this file: the metrics recorder is the process's.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{FakeUpstream, Harness, Keys, edit};

/// The candidate: customers may read any customer's orders (a decision changed), and the
/// carrier view shows the shipping phone unmasked (a view changed).
fn candidate(policy: &str) -> String {
    edit(
        policy,
        &[
            (
                "[roles.customer]\nscopes = [\"orders:read\"]",
                "[roles.customer]\nscopes = [\"orders:read\", \"orders:read:any_customer\"]",
            ),
            ("mask = { \"orders[].shipping.phone\" = \"phone\" }\n", ""),
        ],
    )
}

/// The value of one series in the metrics text (0 when absent).
fn series(text: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn metrics() -> String {
    ordergate::vocab::metrics::render()
}

/// Waits (bounded) until `n` shadow decisions are done.
async fn decided(n: u64) {
    for _ in 0..500 {
        if series(
            &metrics(),
            "ordergate_shadow_requests_total",
            &[("result", "decided")],
        ) >= n
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("fewer than {n} shadow decisions:\n{}", metrics());
}

/// One answer, as the client sees it: status, headers but `date`, body bytes.
async fn answer(h: &Harness, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<String>, Vec<u8>) {
    let response = h.get(path, headers).await;
    let status = response.status().as_u16();
    let mut heads: Vec<String> = response
        .headers()
        .iter()
        .filter(|(k, _)| *k != "date")
        .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?")))
        .collect();
    heads.sort();
    (status, heads, response.bytes().await.unwrap().to_vec())
}

/// A request of the mix: path, credential headers, and the disagreement it must cause
/// (route, kind), if any.
type Step<'a> = (&'a str, Vec<(&'a str, &'a str)>, Option<(&'a str, &'a str)>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_changes_no_answer_and_counts_each_disagreement() {
    support::install();
    let keys = Arc::new(Keys::new());
    let upstream = FakeUpstream::start().await;
    let plain = Harness::with_parts(keys.clone(), upstream.clone(), |p| p.to_owned()).await;
    let shadowed = Harness::with_parts(keys.clone(), upstream.clone(), |p| p.to_owned()).await;
    let live_text = std::fs::read_to_string(shadowed.policy_path()).unwrap();
    let next = shadowed.dir.path().join("next.toml");
    std::fs::write(&next, candidate(&live_text)).unwrap();
    let gateway = shadowed.running.as_ref().unwrap().gateway.clone();
    gateway.start_shadow(&next).await.unwrap();

    let alice = plain.alice();
    let range = "start_date=2025-01-01&end_date=2025-01-31";
    let own = format!("/v1/customers/C0000001/orders?{range}");
    let other = format!("/v1/customers/C0000002/orders?{range}");
    let other_bad = format!("{other}&page_size=500");
    let own_bad = format!("{own}&page_size=500");
    let detail = "/v1/orders/O20250101000001";
    let (erp, logistics) = (keys.erp_key.as_str(), keys.logistics_key.as_str());
    let mix: Vec<Step> = vec![
        (&own, vec![("authorization", &alice)], None),
        (
            &other,
            vec![("authorization", &alice)],
            Some(("customer-orders", "decision")),
        ),
        (
            &other_bad,
            vec![("authorization", &alice)],
            Some(("customer-orders", "status")),
        ),
        (
            &other,
            vec![("x-api-key", logistics)],
            Some(("customer-orders", "view")),
        ),
        (&own, vec![], None),
        (detail, vec![("x-api-key", erp)], None),
        ("/v1/nothing-here", vec![("x-api-key", erp)], None),
        (&own_bad, vec![("authorization", &alice)], None),
        (
            detail,
            vec![("authorization", &alice)],
            Some(("order-detail", "decision")),
        ),
    ];
    let kinds = ["decision", "status", "view"];
    let before: Vec<u64> = ["customer-orders", "order-detail"]
        .iter()
        .flat_map(|r| {
            let m = metrics();
            kinds.map(|k| {
                series(
                    &m,
                    "ordergate_shadow_diff_total",
                    &[("route", r), ("kind", k)],
                )
            })
        })
        .collect();
    let statuses = [200, 403, 403, 200, 401, 200, 404, 400, 403];
    for (i, (path, creds, _)) in mix.iter().enumerate() {
        let id = format!("shadow-{i}");
        let mut headers = creds.clone();
        headers.push(("x-request-id", &id));
        let a = answer(&plain, path, &headers).await;
        let b = answer(&shadowed, path, &headers).await;
        assert_eq!(a.0, statuses[i], "request {i} ({path})");
        assert_eq!(
            a, b,
            "request {i} ({path}) is answered differently under --shadow"
        );
    }
    decided(mix.len() as u64).await;
    let m = metrics();
    for (n, route) in ["customer-orders", "order-detail"].iter().enumerate() {
        for (j, kind) in kinds.iter().enumerate() {
            let want = mix
                .iter()
                .filter(|(_, _, d)| *d == Some((*route, *kind)))
                .count() as u64;
            let got = series(
                &m,
                "ordergate_shadow_diff_total",
                &[("route", route), ("kind", kind)],
            );
            assert_eq!(got - before[n * 3 + j], want, "{route} {kind}:\n{m}");
        }
    }
    assert!(
        m.contains("ordergate_shadow_diff_total{route=\"order-raw\",kind=\"view\"} 0")
            || m.contains("ordergate_shadow_diff_total{kind=\"view\",route=\"order-raw\"} 0"),
        "every route's series is exported at 0:\n{m}"
    );

    // A reload reloads the candidate too: now the same as the live policy, it agrees on all.
    std::fs::write(&next, &live_text).unwrap();
    gateway.reload().await.unwrap();
    let total = |m: &str| series(m, "ordergate_shadow_diff_total", &[]);
    let disagreements = total(&m);
    for (i, (path, creds, _)) in mix.iter().enumerate() {
        let id = format!("again-{i}");
        let mut headers = creds.clone();
        headers.push(("x-request-id", &id));
        answer(&shadowed, path, &headers).await;
    }
    decided(2 * mix.len() as u64).await;
    assert_eq!(
        total(&metrics()),
        disagreements,
        "the same policy never disagrees"
    );

    // An invalid candidate is refused at reload, and the previous one kept.
    std::fs::write(&next, "[server]\n").unwrap();
    assert!(gateway.reload().await.is_err());
    assert!(gateway.shadow().is_some());
}

/// A candidate that does not load stops `serve` before it listens (exit 1, located problems).
#[test]
fn serve_refuses_a_candidate_that_does_not_load() {
    support::install();
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    support::write_files(dir.path(), &keys);
    let upstream: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, support::base_policy(&keys, upstream)).unwrap();
    let broken = dir.path().join("next.toml");
    std::fs::write(&broken, "[server]\n").unwrap();
    for next in [broken.clone(), dir.path().join("missing.toml")] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ordergate"))
            .args([
                "serve",
                "-c",
                policy.to_str().unwrap(),
                "--shadow",
                next.to_str().unwrap(),
            ])
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{next:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = next.file_name().unwrap().to_str().unwrap();
        assert!(stderr.contains(&format!("{name}:")), "{stderr}");
    }
}
