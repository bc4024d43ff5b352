//! Issue #5: one tamper-evident record per request, redaction, and response views per persona.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::{Harness, Reply, edit, sample_order};

const ORDERS: &str = "/v1/customers/C0000001/orders?start_date=2025-01-01&end_date=2025-01-31";

/// CONTRACT.md §4, implemented again here: seq from `first`, each `prev_hash` the previous
/// `hash`, and `hash` = SHA-256(prev_hash + "\n" + the line without its `hash` member).
fn verify_independently(lines: &[&str], first: u64) {
    let mut prev = "0".repeat(64);
    for (i, line) in lines.iter().enumerate() {
        let record: Value = serde_json::from_str(line).unwrap();
        assert_eq!(record["seq"], first + i as u64, "seq at line {}", i + 1);
        if first == 1 || i > 0 {
            assert_eq!(
                record["prev_hash"],
                prev.as_str(),
                "prev_hash at line {}",
                i + 1
            );
        }
        let cut = line.rfind(",\"hash\":\"").unwrap();
        let body = format!("{}}}", &line[..cut]);
        let mut hasher = Sha256::new();
        hasher.update(record["prev_hash"].as_str().unwrap().as_bytes());
        hasher.update(b"\n");
        hasher.update(body.as_bytes());
        assert_eq!(
            hex::encode(hasher.finalize()),
            record["hash"].as_str().unwrap(),
            "hash at line {}",
            i + 1
        );
        prev = record["hash"].as_str().unwrap().to_owned();
    }
}

#[tokio::test]
async fn one_record_per_request_under_concurrency() {
    let mut h = Harness::with(|p| {
        edit(
            p,
            &[(
                "per_ip_unauthenticated = { rate = \"30/min\", burst = 10 }",
                "per_ip_unauthenticated = { rate = \"30/min\", burst = 1000 }",
            )],
        )
    })
    .await;
    h.upstream.set_default(Reply::Orders);
    let alice = h.alice();
    let erp = h.keys.erp_key.clone();
    let mut tasks = Vec::new();
    for n in 0..80 {
        let client = h.client.clone();
        let base = h.url("");
        let (alice, erp) = (alice.clone(), erp.clone());
        tasks.push(tokio::spawn(async move {
            let id = format!("load-{n}");
            let request = match n % 8 {
                0 => client.get(format!("{base}{ORDERS}")).header("authorization", &alice),
                1 => client.get(format!("{base}/v1/orders/O2025010100000001")).header("x-api-key", &erp),
                2 => client.get(format!("{base}{ORDERS}")).header("authorization", "Bearer nonsense"),
                3 => client.get(format!("{base}/v1/customers/C0000002/orders?start_date=2025-01-01&end_date=2025-01-31")).header("authorization", &alice),
                4 => client.get(format!("{base}/v1/nothing/{n}")),
                5 => client.get(format!("{base}/v1/customers/C0000001/orders?start_date=bad")).header("authorization", &alice),
                6 => client.post(format!("{base}/v1/orders/O2025010100000001")).header("x-api-key", &erp),
                _ => client.get(format!("{base}/v1/orders/O2025010100000001")),
            };
            let response = request.header("x-request-id", &id).send().await.unwrap();
            assert_eq!(response.headers()["x-request-id"], id.as_str());
            response.bytes().await.unwrap();
            id
        }));
    }
    let mut sent = HashSet::new();
    for t in tasks {
        sent.insert(t.await.unwrap());
    }
    h.stop().await;
    let text = std::fs::read_to_string(h.audit_path()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 80, "exactly one record per request");
    verify_independently(&lines, 1);
    let recorded: HashSet<String> = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["request_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(recorded, sent);
    let summary = ordergate::stage::audit::verify::verify(&[h.audit_path()]).unwrap();
    assert_eq!(
        (summary.records, summary.first_seq, summary.last_seq),
        (80, Some(1), Some(80))
    );
}

#[tokio::test]
async fn records_follow_the_contract_format_and_hold_no_secret_or_clear_pii() {
    let mut h = Harness::start().await;
    let alice = h.alice();
    let token = alice.trim_start_matches("Bearer ").to_owned();
    h.get(
        &format!("{ORDERS}&phone=13812345678"),
        &[("authorization", &alice), ("cookie", "sid=cookie-secret")],
    )
    .await;
    h.get(
        "/v1/customers/13912345678/orders?email=bob@example.com",
        &[("x-api-key", &h.keys.erp_key)],
    )
    .await;
    h.get(
        &format!(
            "/v1/orders/O2025010100000001?api_key={}",
            h.keys.logistics_key
        ),
        &[],
    )
    .await;
    h.get(
        "/v1/nothing/11010519491231002X",
        &[("authorization", "Bearer not.a.token")],
    )
    .await;
    h.stop().await;
    let text = std::fs::read_to_string(h.audit_path()).unwrap();
    for secret in [
        token.as_str(),
        &h.keys.erp_key,
        &h.keys.logistics_key,
        "cookie-secret",
        "13812345678",
        "13912345678",
        "bob@example.com",
        "11010519491231002X",
        "not.a.token",
    ] {
        assert!(!text.contains(secret), "`{secret}` reached the audit log");
    }
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let first = &records[0];
    assert!(
        first["ts"].as_str().unwrap().ends_with('Z') && first["ts"].as_str().unwrap().len() == 24
    );
    assert_eq!(first["client_ip"], "127.0.0.1");
    assert_eq!(first["tls"]["version"], "TLSv1.3");
    assert_eq!(
        first["principal"],
        json!({"id": "alice", "kind": "jwt", "tenant": null})
    );
    assert_eq!(first["route"], "customer-orders");
    assert_eq!(
        first["query"],
        json!({"start_date": "2025-01-01", "end_date": "2025-01-31", "page_size": 20, "phone": "138****5678"})
    );
    assert_eq!(
        (
            first["decision"].as_str(),
            first["reason"].as_str(),
            first["status"].as_u64()
        ),
        (Some("allow"), Some("ok"), Some(200))
    );
    assert_eq!(first["upstream_status"], 200);
    assert!(
        first["upstream_ms"].as_f64().unwrap() >= 0.0 && first["bytes_out"].as_u64().unwrap() > 0
    );
    assert_eq!(records[1]["path"], "/v1/customers/139****5678/orders");
    assert_eq!(
        (records[2]["reason"].as_str(), records[2]["detail"].as_str()),
        (Some("bad_request"), Some("api_key_in_query"))
    );
    assert_eq!(records[2]["query"], json!({}));
    assert_eq!(
        (records[3]["route"].clone(), records[3]["reason"].as_str()),
        (Value::Null, Some("not_found"))
    );
    assert_eq!(records[3]["principal"]["kind"], "none");
}

#[tokio::test]
async fn tampering_deleting_or_reordering_is_detected() {
    let mut h = Harness::start().await;
    for _ in 0..5 {
        h.get(ORDERS, &[("authorization", &h.alice())]).await;
    }
    h.stop().await;
    let original = std::fs::read_to_string(h.audit_path()).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    let check = |text: String| {
        let path = h.dir.path().join("tampered.jsonl");
        std::fs::write(&path, text).unwrap();
        ordergate::stage::audit::verify::verify(&[path])
    };
    assert!(check(original.clone()).is_ok());
    let edited = original.replacen("\"status\":200", "\"status\":404", 1);
    let broken = check(edited).unwrap_err();
    assert_eq!((broken.line, broken.seq), (1, Some(1)));
    assert!(broken.problem.contains("hash does not match"));
    let rehashed = original.replacen(
        "\"principal\":{\"id\":\"alice\"",
        "\"principal\":{\"id\":\"mallory\"",
        1,
    );
    assert!(check(rehashed).is_err());
    let mut deleted = lines.clone();
    deleted.remove(2);
    let broken = check(deleted.join("\n") + "\n").unwrap_err();
    assert_eq!((broken.line, broken.seq), (3, Some(4)));
    let mut swapped = lines.clone();
    swapped.swap(1, 3);
    assert_eq!(check(swapped.join("\n") + "\n").unwrap_err().line, 2);
}

#[tokio::test]
async fn seq_and_chain_continue_across_restart_and_rotation() {
    let keys = std::sync::Arc::new(support::Keys::new());
    let upstream = support::FakeUpstream::start().await;
    let policy = |p: &str| {
        edit(
            p,
            &[("rotate_bytes = \"100MiB\"", "rotate_bytes = \"2KiB\"")],
        )
    };
    let mut first = Harness::with_parts(keys.clone(), upstream.clone(), policy).await;
    for _ in 0..6 {
        first
            .get(ORDERS, &[("authorization", &first.alice())])
            .await;
    }
    first.stop().await;
    // Restart on the same directory: the writer resumes from the newest file's tail.
    let dir = first.dir.path().to_path_buf();
    let loaded = ordergate::policy::load(&dir.join("policy.toml")).unwrap();
    let running = ordergate::server::start(loaded, &dir.join("policy.toml"))
        .await
        .unwrap();
    let client = support::client(&keys, None, true);
    for _ in 0..6 {
        client
            .get(format!("https://127.0.0.1:{}{ORDERS}", running.addr.port()))
            .header("authorization", first.alice())
            .send()
            .await
            .unwrap();
    }
    running.shutdown().await;
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir.join("audit"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        files.len() >= 3,
        "rotation at 2KiB made several files: {files:?}"
    );
    files.reverse();
    let summary = ordergate::stage::audit::verify::verify(&files).unwrap();
    assert_eq!(
        (summary.records, summary.first_seq, summary.last_seq),
        (12, Some(1), Some(12))
    );
    files.sort_by_key(|f| {
        std::fs::read_to_string(f).unwrap().lines().next().map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
    });
    let all: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    verify_independently(&all.lines().collect::<Vec<_>>(), 1);
}

#[tokio::test]
async fn an_unwritable_audit_log_refuses_service_until_it_recovers() {
    // Rotating at every record makes the writer reopen the file each time, so a broken
    // directory shows at once.
    let h = Harness::with(|p| {
        edit(
            p,
            &[
                ("rotate_bytes = \"100MiB\"", "rotate_bytes = \"1B\""),
                ("keep_files = 5", "keep_files = 1000"),
            ],
        )
    })
    .await;
    let alice = h.alice();
    assert_eq!(
        h.get(ORDERS, &[("authorization", &alice)]).await.status(),
        200
    );
    h.wait_for_records(1).await;
    let audit = h.dir.path().join("audit");
    let aside = h.dir.path().join("audit-aside");
    std::fs::rename(&audit, &aside).unwrap();
    std::fs::write(&audit, "not a directory").unwrap();
    // The next record cannot be written; from then on requests are refused. That request's own
    // answer is aborted rather than completed (commit before completion), so it may fail.
    let _ = h
        .client
        .get(h.url(ORDERS))
        .header("authorization", &alice)
        .send()
        .await;
    let mut refused = None;
    for _ in 0..200 {
        let response = h.get(ORDERS, &[("authorization", &alice)]).await;
        if response.status() == 503 {
            refused = Some(response.json::<Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = refused.expect("requests were served while records could not be written");
    assert_eq!(
        refused["type"],
        "https://ordergate.dev/problems/audit_unavailable"
    );
    let readyz = reqwest::get(h.admin_url("/readyz")).await.unwrap();
    assert_eq!(readyz.status(), 503);
    let upstream_calls = h.upstream.count();
    assert_eq!(
        h.get(ORDERS, &[("authorization", &alice)]).await.status(),
        503
    );
    assert_eq!(
        h.upstream.count(),
        upstream_calls,
        "refused requests reach nobody"
    );
    // Repair: service resumes by itself and every record, the refusals included, is kept.
    std::fs::remove_file(&audit).unwrap();
    std::fs::rename(&aside, &audit).unwrap();
    let mut recovered = false;
    for _ in 0..300 {
        if h.get(ORDERS, &[("authorization", &alice)]).await.status() == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(recovered, "service did not resume");
    let mut h = h;
    h.stop().await;
    let files: Vec<std::path::PathBuf> = std::fs::read_dir(&audit)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let summary = ordergate::stage::audit::verify::verify(&files).unwrap();
    assert_eq!(summary.first_seq, Some(1));
    assert!(summary.records >= 5, "{summary:?}");
}

#[tokio::test]
async fn a_client_that_disconnects_is_still_recorded() {
    let mut h = Harness::start().await;
    h.upstream.queue([Reply::Delay(400)]);
    let impatient = reqwest::Client::builder()
        .tls_backend_preconfigured({
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(
                    rustls_pki_types::CertificateDer::from_pem_slice(h.keys.ca.pem().as_bytes())
                        .unwrap(),
                )
                .unwrap();
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth()
        })
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let gone = impatient
        .get(h.url("/v1/orders/O2025010100000001"))
        .header("x-api-key", &h.keys.erp_key)
        .header("x-request-id", "impatient")
        .send()
        .await;
    assert!(gone.is_err());
    let record = h.record_of("impatient").await;
    assert_eq!(record["detail"], "client_disconnected");
    assert_eq!(record["upstream_status"], 200);
    h.stop().await;
}

use rustls_pki_types::pem::PemObject as _;

#[tokio::test]
async fn each_persona_sees_its_view() {
    let h = Harness::start().await;
    let detail = "/v1/orders/O2025010100000001";
    // ERP: everything.
    let erp: Value = h
        .get(detail, &[("x-api-key", &h.keys.erp_key)])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(erp, sample_order("O2025010100000001"));
    // Logistics partner: shipping only, phone masked.
    let response = h.get(detail, &[("x-api-key", &h.keys.logistics_key)]).await;
    let length: usize = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = response.bytes().await.unwrap();
    assert_eq!(
        length,
        bytes.len(),
        "Content-Length matches the rewritten body"
    );
    let logistics: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        logistics,
        json!({"order_id": "O2025010100000001", "status": "shipped", "shipping": {"recipient": "张三", "phone": "139****4321", "address": "北京市朝阳区建国路88号", "carrier": "SF Express"}})
    );
    // Customer service: contacts masked, no payment, across the orders array.
    let agent = format!("Bearer {}", h.token("agent", &["customer_service"], &[]));
    let page: Value = h
        .get(ORDERS, &[("authorization", &agent)])
        .await
        .json()
        .await
        .unwrap();
    for order in page["orders"].as_array().unwrap() {
        assert_eq!(
            order["customer"],
            json!({"name": "张三", "phone": "138****5678", "email": "z***@example.com", "id_number": "110105********002X"})
        );
        assert!(order.get("payment").is_none());
        assert!(
            order.get("internal").is_some(),
            "allow = [*] keeps what deny does not remove"
        );
    }
    // A customer: the plain view.
    let own: Value = h
        .get(ORDERS, &[("authorization", &h.alice())])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(own["next_cursor"], "abc");
    assert_eq!(
        own["orders"][0],
        json!({"order_id": "O2025010100000001", "status": "shipped", "created_at": "2025-03-01T10:00:00+08:00", "total": 199.0, "items": [{"sku": "P1", "name": "耳机", "qty": 1, "price": 199.0}]})
    );
    // Missing fields stay missing; nulls stay null.
    h.upstream.queue([Reply::Json(
        200,
        json!({"orders": [{"order_id": "O3", "customer": {"phone": null}}, {"status": "paid"}]}),
    )]);
    let sparse: Value = h
        .get(ORDERS, &[("authorization", &agent)])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        sparse,
        json!({"orders": [{"order_id": "O3", "customer": {"phone": null}}, {"status": "paid"}]})
    );
    let body = serde_json::to_string(&page).unwrap();
    assert!(!body.contains("13812345678") && !body.contains("6222021234567890128"));
}

#[tokio::test]
async fn views_fail_closed_on_what_they_cannot_read() {
    let h = Harness::start().await;
    let detail = "/v1/orders/O2025010100000001";
    let key = h.keys.logistics_key.clone();
    for reply in [
        Reply::Raw(200, "text/html", "<html>13812345678</html>".into()),
        Reply::Raw(200, "application/json", "{not json".into()),
        Reply::Raw(
            200,
            "application/json",
            format!("{{\"pad\": \"{}\"}}", "x".repeat(9 * 1024 * 1024)),
        ),
    ] {
        h.upstream.queue([reply]);
        let response = h.get(detail, &[("x-api-key", &key)]).await;
        assert_eq!(response.status(), 502);
        let body = response.text().await.unwrap();
        assert!(body.contains("problems/bad_gateway") && !body.contains("13812345678"));
    }
    // A compressed body cannot be filtered: refused, not passed through.
    h.upstream.queue([Reply::Headers(
        200,
        vec![
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        "\u{1f}\u{8b}not really gzip".into(),
    )]);
    let response = h
        .get(detail, &[("x-api-key", &key), ("x-request-id", "gzipped")])
        .await;
    assert_eq!(response.status(), 502);
    assert_eq!(h.record_of("gzipped").await["detail"], "view_encoded_body");
    // Without a view the body streams through as sent.
    h.upstream
        .queue([Reply::Raw(200, "text/plain", "raw".into())]);
    assert_eq!(
        h.get(
            "/v1/raw/orders/O2025010100000001",
            &[("x-api-key", &h.keys.erp_key)]
        )
        .await
        .text()
        .await
        .unwrap(),
        "raw"
    );
    // A caller lacking the route's scopes is refused before the upstream is called.
    let calls = h.upstream.count();
    let scoped = format!(
        "Bearer {}",
        h.token(
            "svc",
            &[],
            &[(
                "scope",
                json!("orders:read:any_customer orders:read:full_but_not_really")
            )]
        )
    );
    assert_eq!(
        h.get(
            "/v1/customers/C0000002/orders?start_date=2025-01-01&end_date=2025-01-31",
            &[("authorization", &scoped)]
        )
        .await
        .status(),
        403
    );
    assert_eq!(h.upstream.count(), calls);
}

#[tokio::test]
async fn a_caller_with_no_view_on_a_route_is_refused_before_the_upstream() {
    // The order-detail route without its plain view: customer service matches none.
    let h = Harness::with(|p| {
        edit(p, &[(
            "[[routes.response.views]]\nscope = \"orders:read\"\nallow = [\"order_id\", \"status\", \"created_at\", \"total\", \"items\"]\n",
            "",
        )])
    })
    .await;
    let agent = format!("Bearer {}", h.token("agent", &["customer_service"], &[]));
    let response = h
        .get(
            "/v1/orders/O2025010100000001",
            &[("authorization", &agent), ("x-request-id", "viewless")],
        )
        .await;
    assert_eq!(response.status(), 403);
    assert_eq!(h.record_of("viewless").await["detail"], "no_view");
    assert_eq!(h.upstream.count(), 0);
    // The ERP still has its view.
    assert_eq!(
        h.get(
            "/v1/orders/O2025010100000001",
            &[("x-api-key", &h.keys.erp_key)]
        )
        .await
        .status(),
        200
    );
}

/// Starts a second gateway on `dir` (the first one stopped), as a restart would.
async fn restart(dir: &std::path::Path) -> ordergate::server::Running {
    let loaded = ordergate::policy::load(&dir.join("policy.toml")).unwrap();
    ordergate::server::start(loaded, &dir.join("policy.toml"))
        .await
        .unwrap()
}

/// Every file of the audit directory, as `audit verify` would be given them.
fn audit_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir.join("audit"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// Runs `ordergate audit verify` on `files`: (success, stdout, stderr).
fn verify_cli(files: &[std::path::PathBuf]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ordergate"))
        .args(["audit", "verify"])
        .args(files)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_very_long_path_or_subject_is_cut_in_the_record_and_the_gateway_restarts() {
    let mut h = Harness::start().await;
    let long_path = format!("/v1/customers/{}/orders", "a".repeat(5_000));
    let long_sub = format!(
        "Bearer {}",
        h.token(
            &"张".repeat(600),
            &["customer"],
            &[("customer_id", json!("C0000001"))]
        )
    );
    h.get(&long_path, &[("x-request-id", "long-path")]).await;
    h.get(
        ORDERS,
        &[("authorization", &long_sub), ("x-request-id", "long-sub")],
    )
    .await;
    let path = h.record_of("long-path").await["path"].clone();
    let path = path.as_str().unwrap();
    assert!(path.len() <= 1024 && path.ends_with('…'), "{path}");
    assert!(path.starts_with("/v1/customers/aaa"), "{path}");
    let sub = h.record_of("long-sub").await["principal"]["id"].clone();
    let sub = sub.as_str().unwrap();
    assert!(sub.len() <= 1024 && sub.ends_with('…'), "{sub}");
    assert!(sub.starts_with("张张"), "{sub}");
    h.stop().await;
    let running = restart(h.dir.path()).await;
    let client = support::client(&h.keys, None, true);
    let after = client
        .get(format!("https://127.0.0.1:{}{ORDERS}", running.addr.port()))
        .header("authorization", h.alice())
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 200);
    running.shutdown().await;
    let summary = ordergate::stage::audit::verify::verify(&[h.audit_path()]).unwrap();
    assert_eq!((summary.first_seq, summary.last_seq), (Some(1), Some(3)));
}

#[tokio::test]
async fn a_cut_or_garbage_tail_is_cut_back_at_start_and_the_chain_continues() {
    let mut h = Harness::start().await;
    h.upstream.set_default(Reply::Orders);
    for _ in 0..3 {
        h.get(ORDERS, &[("authorization", &h.alice())]).await;
    }
    h.stop().await;
    let path = h.audit_path();
    let good = std::fs::read_to_string(&path).unwrap();
    let last = good.lines().last().unwrap();
    // What a crash mid-write leaves, then bytes no writer made: garbage, invalid UTF-8.
    let mut damaged = good.clone().into_bytes();
    damaged.extend_from_slice(b"\xe5\xbc\xa0garbage\n");
    damaged.extend_from_slice(&last.as_bytes()[..last.len() / 2]);
    std::fs::write(&path, &damaged).unwrap();
    let running = restart(h.dir.path()).await;
    let client = support::client(&h.keys, None, true);
    for _ in 0..2 {
        let response = client
            .get(format!("https://127.0.0.1:{}{ORDERS}", running.addr.port()))
            .header("authorization", h.alice())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    running.shutdown().await;
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with(&good), "the complete records are kept");
    verify_independently(&text.lines().collect::<Vec<_>>(), 1);
    assert_eq!(text.lines().count(), 5);
    let (ok, stdout, stderr) = verify_cli(&[path]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("chain starts at seq 1"), "{stdout}");
    assert!(!stderr.contains("warning"), "{stderr}");
}

#[tokio::test]
async fn pruned_files_are_counted_and_verify_warns_that_the_chain_starts_late() {
    let mut h = Harness::with(|p| {
        edit(
            p,
            &[
                ("rotate_bytes = \"100MiB\"", "rotate_bytes = \"1B\""),
                ("keep_files = 5", "keep_files = 1"),
            ],
        )
    })
    .await;
    let metrics = reqwest::get(h.admin_url("/metrics")).await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("ordergate_audit_files_pruned_total"),
        "exported before anything was pruned: {metrics}"
    );
    for _ in 0..5 {
        h.get(ORDERS, &[("authorization", &h.alice())]).await;
    }
    h.stop().await;
    let files = audit_files(h.dir.path());
    assert_eq!(
        files.len(),
        2,
        "the current file and one rotated: {files:?}"
    );
    // The admin listener is gone with the gateway; read the process-wide recorder instead.
    let rendered = ordergate::vocab::metrics::render();
    let pruned: f64 = rendered
        .lines()
        .find_map(|l| l.strip_prefix("ordergate_audit_files_pruned_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(pruned >= 3.0, "{rendered}");
    let summary = ordergate::stage::audit::verify::verify(&files).unwrap();
    assert!(summary.starts_late(), "{summary:?}");
    let (ok, stdout, stderr) = verify_cli(&files);
    assert!(
        ok,
        "an intact chain that starts later still passes: {stderr}"
    );
    let first = summary.first_seq.unwrap();
    assert!(
        stdout.contains(&format!("chain starts at seq {first} (not 1)")),
        "{stdout}"
    );
    assert!(
        stderr.contains("warning") && stderr.contains("pruned"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_response_whose_record_cannot_be_written_is_aborted_not_completed() {
    // Rotating at every record makes the writer reopen the file each time, so a broken
    // directory fails the very next write.
    let mut h = Harness::with(|p| {
        edit(
            p,
            &[
                ("rotate_bytes = \"100MiB\"", "rotate_bytes = \"1B\""),
                ("keep_files = 5", "keep_files = 1000"),
            ],
        )
    })
    .await;
    let alice = h.alice();
    let first = h.get(ORDERS, &[("authorization", &alice)]).await;
    assert_eq!(first.status(), 200);
    assert!(first.bytes().await.is_ok(), "a recorded answer completes");
    h.wait_for_records(1).await;
    h.upstream.queue([Reply::Delay(500)]);
    let request = {
        let client = h.client.clone();
        let url = h.url(ORDERS);
        let alice = alice.clone();
        tokio::spawn(async move {
            let response = client
                .get(url)
                .header("authorization", alice)
                .header("x-request-id", "in-flight-when-the-disk-broke")
                .send()
                .await?;
            let status = response.status();
            response.bytes().await.map(|body| (status, body))
        })
    };
    // The request is at the upstream: break the log before its answer comes back.
    for _ in 0..500 {
        if h.upstream.count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(h.upstream.count(), 2);
    let audit = h.dir.path().join("audit");
    let aside = h.dir.path().join("audit-aside");
    std::fs::rename(&audit, &aside).unwrap();
    std::fs::write(&audit, "not a directory").unwrap();
    let outcome = request.await.unwrap();
    assert!(
        outcome.is_err(),
        "the client holds a complete answer that has no record: {outcome:?}"
    );
    // Repaired, the log keeps that record too (the request was made; its answer was cut).
    std::fs::remove_file(&audit).unwrap();
    std::fs::rename(&aside, &audit).unwrap();
    h.stop().await;
    let files = audit_files(h.dir.path());
    ordergate::stage::audit::verify::verify(&files).unwrap();
}
