//! `serve --shadow NEXT` (CONTRACT §9): a request mix is answered byte for byte the same with
//! and without a shadow policy, and `ordergate_shadow_diff_total` rises by exactly the requests
//! the candidate decides differently, by kind; a reload reloads the candidate too. The metrics
//! recorder is the process's: the tests that count take turns ([`SERIAL`]) and count from
//! where they start.

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

/// The tests that read the process's counters, one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Shadow decisions done so far.
fn decisions() -> u64 {
    series(
        &metrics(),
        "ordergate_shadow_requests_total",
        &[("result", "decided")],
    )
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
    let _turn = SERIAL.lock().await;
    support::install();
    let start = decisions();
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
    decided(start + mix.len() as u64).await;
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
    decided(start + 2 * mix.len() as u64).await;
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

/// The candidate adds an `allow_ips` to the order-detail route: requests from the source it
/// leaves out (through a proxy both policies trust) are the only disagreements, one `decision`
/// each; requests from the admitted source, and refusals before the caller's lists are checked,
/// agree. The live answers are those of the running policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_ip_list_disagrees_on_exactly_the_sources_it_refuses() {
    let _turn = SERIAL.lock().await;
    support::install();
    let trust = |p: &str| {
        edit(
            p,
            &[(
                "shutdown_grace = \"3s\"\n",
                "shutdown_grace = \"3s\"\ntrusted_proxies = [\"127.0.0.1\"]\n",
            )],
        )
    };
    let keys = Arc::new(Keys::new());
    let upstream = FakeUpstream::start().await;
    let h = Harness::with_parts(keys.clone(), upstream.clone(), trust).await;
    let live_text = std::fs::read_to_string(h.policy_path()).unwrap();
    let next = h.dir.path().join("next.toml");
    let candidate = edit(
        &live_text,
        &[(
            "id = \"order-detail\"\n",
            "id = \"order-detail\"\nallow_ips = [\"203.0.113.0/24\"]\n",
        )],
    );
    assert_ne!(candidate, live_text);
    std::fs::write(&next, candidate).unwrap();
    let gateway = h.running.as_ref().unwrap().gateway.clone();
    gateway.start_shadow(&next).await.unwrap();

    let detail = "/v1/orders/O20250101000001";
    let erp = keys.erp_key.as_str();
    let (inside, outside) = ("203.0.113.5", "198.51.100.7");
    // (source, credential, live status, a disagreement)
    let mix: [(&str, Option<&str>, u16, bool); 7] = [
        (inside, Some(erp), 200, false),
        (outside, Some(erp), 200, true),
        (outside, Some(erp), 200, true),
        (outside, None, 401, false),
        (outside, Some("not-a-key"), 401, false),
        (inside, Some(erp), 200, false),
        (outside, Some(erp), 200, true),
    ];
    let m = metrics();
    let diff = |m: &str, kind: &str| {
        series(
            m,
            "ordergate_shadow_diff_total",
            &[("route", "order-detail"), ("kind", kind)],
        )
    };
    let before = [diff(&m, "decision"), diff(&m, "status"), diff(&m, "view")];
    let start = decisions();
    for (i, (source, key, status, _)) in mix.iter().enumerate() {
        let id = format!("ip-{i}");
        let mut headers = vec![("x-forwarded-for", *source), ("x-request-id", id.as_str())];
        if let Some(key) = key {
            headers.push(("x-api-key", key));
        }
        let got = answer(&h, detail, &headers).await;
        assert_eq!(got.0, *status, "request {i} from {source}");
    }
    decided(start + mix.len() as u64).await;
    let m = metrics();
    let refused = mix.iter().filter(|s| s.3).count() as u64;
    assert_eq!(diff(&m, "decision") - before[0], refused, "{m}");
    assert_eq!(diff(&m, "status") - before[1], 0, "{m}");
    assert_eq!(diff(&m, "view") - before[2], 0, "{m}");
}

/// The candidate demands signatures on the order-detail route: every unsigned request it
/// would refuse (401 `signature_missing`) is one `decision` disagreement; a request refused
/// before the signature stage (no credential) is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_signature_requirement_disagrees_on_unsigned_requests() {
    let _turn = SERIAL.lock().await;
    support::install();
    let keys = Arc::new(Keys::new());
    let upstream = FakeUpstream::start().await;
    let h = Harness::with_parts(keys.clone(), upstream.clone(), |p| p.to_owned()).await;
    let live_text = std::fs::read_to_string(h.policy_path()).unwrap();
    let next = h.dir.path().join("next.toml");
    let candidate = edit(
        &live_text,
        &[(
            "id = \"order-detail\"\n",
            "id = \"order-detail\"\nrequire_signature = true\n",
        )],
    );
    std::fs::write(&next, candidate).unwrap();
    let gateway = h.running.as_ref().unwrap().gateway.clone();
    gateway.start_shadow(&next).await.unwrap();
    let detail = "/v1/orders/O20250101000001";
    let erp = keys.erp_key.as_str();
    let decision = |m: &str| {
        series(
            m,
            "ordergate_shadow_diff_total",
            &[("route", "order-detail"), ("kind", "decision")],
        )
    };
    let before = decision(&metrics());
    let start = decisions();
    let mix: [(Option<&str>, u16); 4] = [
        (Some(erp), 200),
        (None, 401),
        (Some(erp), 200),
        (Some(erp), 200),
    ];
    for (i, (key, status)) in mix.iter().enumerate() {
        let id = format!("sig-{i}");
        let mut headers = vec![("x-request-id", id.as_str())];
        if let Some(key) = key {
            headers.push(("x-api-key", key));
        }
        assert_eq!(answer(&h, detail, &headers).await.0, *status, "request {i}");
    }
    decided(start + mix.len() as u64).await;
    assert_eq!(decision(&metrics()) - before, 3, "{}", metrics());
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
