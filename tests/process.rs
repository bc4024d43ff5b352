//! The gateway as a process: signals, reloads, shutdown under load, and what reaches stderr.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use support::{Keys, edit};

const BIN: &str = env!("CARGO_BIN_EXE_ordergate");
const ORDERS: &str = "/v1/customers/C0000001/orders?start_date=2025-01-01&end_date=2025-01-31";

/// A running `ordergate serve` with its stderr collected.
struct Process {
    child: Child,
    port: u16,
    admin: u16,
    stderr: Arc<Mutex<String>>,
}

impl Process {
    fn start(policy: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "-c", policy.to_str().unwrap()])
            .args(extra)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            // The test names its own filter; none at all is the default's test.
            .env_remove("RUST_LOG");
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = BufReader::new(child.stderr.take().unwrap());
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                if let Some(rest) = line.split("ordergate listening addr=127.0.0.1:").nth(1) {
                    let port: u16 = rest.split_whitespace().next().unwrap().parse().unwrap();
                    let admin: u16 = rest
                        .split("admin=Some(127.0.0.1:")
                        .nth(1)
                        .unwrap()
                        .trim_end_matches(')')
                        .parse()
                        .unwrap();
                    let _ = tx.send((port, admin));
                } else if let Ok(json) = serde_json::from_str::<Value>(&line)
                    && json["message"] == "ordergate listening"
                {
                    let port = |v: &Value| {
                        v.as_str()
                            .unwrap()
                            .trim_start_matches("Some(")
                            .trim_end_matches(')')
                            .rsplit(':')
                            .next()
                            .unwrap()
                            .parse::<u16>()
                            .unwrap()
                    };
                    let _ = tx.send((port(&json["addr"]), port(&json["admin"])));
                }
                sink.lock().push_str(&line);
                sink.lock().push('\n');
            }
        });
        let (port, admin) = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the gateway did not start");
        Self {
            child,
            port,
            admin,
            stderr,
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    fn wait(&mut self) -> std::process::ExitStatus {
        for _ in 0..3000 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        panic!("the gateway did not exit");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn setup(
    keys: &Keys,
    upstream: std::net::SocketAddr,
    change: impl FnOnce(&str) -> String,
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    support::write_files(dir.path(), keys);
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, change(&support::base_policy(keys, upstream))).unwrap();
    (dir, path)
}

fn alice(keys: &Keys) -> String {
    format!(
        "Bearer {}",
        support::token_with(
            &keys.es256,
            "alice",
            &["customer"],
            &[("customer_id", serde_json::json!("C0000001"))]
        )
    )
}

#[tokio::test]
async fn sigterm_under_load_with_rotation_loses_no_record() {
    let keys = Arc::new(Keys::new());
    let upstream = support::FakeUpstream::start().await;
    let (dir, path) = setup(&keys, upstream.addr, |p| {
        edit(
            p,
            &[
                ("rotate_bytes = \"100MiB\"", "rotate_bytes = \"8KiB\""),
                ("keep_files = 5", "keep_files = 1000"),
                (
                    "rate_limit = { rate = \"120/min\", burst = 20 }",
                    "rate_limit = { rate = \"100000/min\", burst = 10000 }",
                ),
                (
                    "per_principal = { rate = \"1000/min\", burst = 100 }",
                    "per_principal = { rate = \"100000/min\", burst = 10000 }",
                ),
            ],
        )
    });
    let mut process = Process::start(&path, &[], &[("RUST_LOG", "info")]);
    let client = support::client(&keys, None, false);
    let auth = alice(&keys);
    let answered = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (client, auth, url, answered) = (
            client.clone(),
            auth.clone(),
            process.url(ORDERS),
            answered.clone(),
        );
        workers.push(tokio::spawn(async move {
            for n in 0..100 {
                let id = format!("w{w}-{n}");
                match client
                    .get(&url)
                    .header("authorization", &auth)
                    .header("x-request-id", &id)
                    .send()
                    .await
                {
                    Ok(r) => {
                        let _ = r.bytes().await;
                        answered.lock().push(id);
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    for _ in 0..2000 {
        if answered.lock().len() >= 150 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    process.signal("TERM");
    for w in workers {
        w.await.unwrap();
    }
    let status = tokio::task::spawn_blocking(move || process.wait())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    let files: Vec<PathBuf> = std::fs::read_dir(dir.path().join("audit"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(files.len() > 2, "the log rotated: {files:?}");
    let mut args = vec!["audit".to_owned(), "verify".to_owned()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let verify = Command::new(BIN).args(&args).output().unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let recorded: std::collections::HashSet<String> = files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| {
                    serde_json::from_str::<Value>(l).unwrap()["request_id"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let answered = answered.lock();
    assert!(answered.len() >= 150);
    for id in answered.iter() {
        assert!(recorded.contains(id), "{id} was answered but not recorded");
    }
    assert_eq!(
        recorded.len(),
        answered.len(),
        "nothing unanswered was recorded as served"
    );
}

#[tokio::test]
async fn sighup_reloads_a_valid_policy_and_keeps_the_old_one_when_invalid() {
    let keys = Arc::new(Keys::new());
    let upstream = support::FakeUpstream::start().await;
    let (_dir, path) = setup(&keys, upstream.addr, |p| p.to_owned());
    let process = Process::start(&path, &[], &[("RUST_LOG", "info")]);
    let client = support::client(&keys, None, true);
    let auth = alice(&keys);
    let status = |url: String| {
        let (client, auth) = (client.clone(), auth.clone());
        async move {
            client
                .get(url)
                .header("authorization", auth)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(process.url(ORDERS)).await, 200);
    // Invalid: refused, counted, the old policy keeps serving.
    let original = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        original.replacen(
            "require_scopes = [\"orders:read\"]",
            "require_scope = [\"orders:read\"]",
            1,
        ),
    )
    .unwrap();
    process.signal("HUP");
    let metrics_url = format!("http://127.0.0.1:{}/metrics", process.admin);
    let mut counted = false;
    for _ in 0..500 {
        let metrics = reqwest::get(&metrics_url)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("ordergate_reloads_total{result=\"invalid\"} 1") {
            counted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(counted, "the invalid reload was not counted");
    assert_eq!(status(process.url(ORDERS)).await, 200);
    assert!(process.stderr.lock().contains("reload refused"));
    // Valid: customers lose the route.
    std::fs::write(
        &path,
        original.replacen(
            "require_scopes = [\"orders:read\"]",
            "require_scopes = [\"orders:read:any_customer\"]",
            1,
        ),
    )
    .unwrap();
    process.signal("HUP");
    let mut applied = false;
    for _ in 0..500 {
        if status(process.url(ORDERS)).await == 403 {
            applied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(applied, "the valid reload was not applied");
}

#[tokio::test]
async fn watch_reloads_on_file_change() {
    let keys = Arc::new(Keys::new());
    let upstream = support::FakeUpstream::start().await;
    let (_dir, path) = setup(&keys, upstream.addr, |p| p.to_owned());
    let process = Process::start(&path, &["--watch"], &[("RUST_LOG", "info")]);
    let client = support::client(&keys, None, true);
    let auth = alice(&keys);
    assert_eq!(
        client
            .get(process.url(ORDERS))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let original = std::fs::read_to_string(&path).unwrap();
    // Replace the file atomically, as editors and config managers do.
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        original.replacen(
            "require_scopes = [\"orders:read\"]",
            "require_scopes = [\"orders:read:any_customer\"]",
            1,
        ),
    )
    .unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let mut applied = false;
    for _ in 0..500 {
        if client
            .get(process.url(ORDERS))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap()
            .status()
            == 403
        {
            applied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(applied, "the change was not picked up");
}

/// `13512345678` with every digit percent-encoded.
const ENCODED_PHONE: &str = "%31%33%35%31%32%33%34%35%36%37%38";

#[tokio::test]
async fn stderr_never_carries_credentials_or_clear_personal_data() {
    let keys = Arc::new(Keys::new());
    let upstream = support::FakeUpstream::start().await;
    let (_dir, path) = setup(&keys, upstream.addr, |p| p.to_owned());
    let mut process = Process::start(&path, &["--log-format", "json"], &[("RUST_LOG", "debug")]);
    let client = support::client(&keys, None, true);
    let auth = alice(&keys);
    let token = auth.trim_start_matches("Bearer ").to_owned();
    let requests = [
        client
            .get(process.url(&format!("{ORDERS}&phone=13812345678")))
            .header("authorization", &auth),
        client
            .get(process.url("/v1/customers/13912345678/orders"))
            .header("x-api-key", &keys.erp_key),
        // Percent-encoded, and with the country code but no `+`: the log redacts the path
        // as the record does (decoded for the check).
        client
            .get(process.url("/v1/customers/%2B8613712345678/orders"))
            .header("x-api-key", &keys.erp_key),
        client
            .get(process.url("/v1/customers/8613612345670/orders"))
            .header("x-api-key", &keys.erp_key),
        client
            .get(process.url(&format!("/v1/customers/{ENCODED_PHONE}/orders")))
            .header("x-api-key", &keys.erp_key),
        client.get(process.url(&format!(
            "/v1/orders/O2025010100000001?api_key={}",
            keys.logistics_key
        ))),
        client
            .get(process.url("/v1/orders/O2025010100000001"))
            .header("authorization", "Bearer forged.token.value")
            .header("cookie", "sid=cookie-secret"),
    ];
    for r in requests {
        r.send().await.unwrap();
    }
    upstream.queue([support::Reply::Hang]);
    client
        .get(process.url("/v1/orders/O2025010100000001"))
        .header("x-api-key", &keys.erp_key)
        .send()
        .await
        .unwrap();
    process.signal("TERM");
    tokio::task::spawn_blocking(move || {
        process.wait();
        let log = process.stderr.lock().clone();
        assert!(log.contains("\"level\":\"INFO\""), "JSON logs: {log}");
        for secret in [
            token.as_str(),
            &keys.erp_key,
            &keys.logistics_key,
            "cookie-secret",
            "forged.token.value",
            "13812345678",
            "13912345678",
            "13712345678",
            "13612345670",
            ENCODED_PHONE,
        ] {
            assert!(!log.contains(secret), "`{secret}` reached stderr:\n{log}");
        }
    })
    .await
    .unwrap();
}

/// Every record of every file in `dir`, by request id.
fn recorded_ids(files: &[PathBuf]) -> std::collections::HashSet<String> {
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| {
                    serde_json::from_str::<Value>(l).unwrap()["request_id"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn sigkill_under_load_leaves_a_verifiable_log_with_every_completed_answer() {
    let keys = Arc::new(Keys::new());
    let upstream = support::FakeUpstream::start().await;
    let (dir, path) = setup(&keys, upstream.addr, |p| {
        edit(
            p,
            &[
                ("rotate_bytes = \"100MiB\"", "rotate_bytes = \"16KiB\""),
                ("keep_files = 5", "keep_files = 1000"),
                (
                    "rate_limit = { rate = \"120/min\", burst = 20 }",
                    "rate_limit = { rate = \"100000/min\", burst = 10000 }",
                ),
                (
                    "per_principal = { rate = \"1000/min\", burst = 100 }",
                    "per_principal = { rate = \"100000/min\", burst = 10000 }",
                ),
            ],
        )
    });
    let process = Process::start(&path, &[], &[]);
    let client = support::client(&keys, None, false);
    let auth = alice(&keys);
    let completed = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (client, auth, url, completed) = (
            client.clone(),
            auth.clone(),
            process.url(ORDERS),
            completed.clone(),
        );
        workers.push(tokio::spawn(async move {
            for n in 0..200 {
                let id = format!("k{w}-{n}");
                let sent = client
                    .get(&url)
                    .header("authorization", &auth)
                    .header("x-request-id", &id)
                    .send()
                    .await;
                let Ok(response) = sent else { return };
                // Only an answer received whole counts: its last byte came after its record.
                if response.bytes().await.is_ok() {
                    completed.lock().push(id);
                } else {
                    return;
                }
            }
        }));
    }
    for _ in 0..2000 {
        if completed.lock().len() >= 150 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    process.signal("KILL");
    for w in workers {
        w.await.unwrap();
    }
    drop(process);
    // Restart: a line the kill cut is cut back; the chain continues.
    let mut again = Process::start(&path, &[], &[("RUST_LOG", "info")]);
    let after = client
        .get(again.url(ORDERS))
        .header("authorization", &auth)
        .header("x-request-id", "after-restart")
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 200);
    after.bytes().await.unwrap();
    again.signal("TERM");
    let status = tokio::task::spawn_blocking(move || again.wait())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    let files: Vec<PathBuf> = std::fs::read_dir(dir.path().join("audit"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let mut args = vec!["audit".to_owned(), "verify".to_owned()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let verify = Command::new(BIN).args(&args).output().unwrap();
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(String::from_utf8_lossy(&verify.stdout).contains("chain starts at seq 1"));
    let recorded = recorded_ids(&files);
    let completed = completed.lock();
    assert!(completed.len() >= 150, "{} answers", completed.len());
    for id in completed.iter() {
        assert!(
            recorded.contains(id),
            "{id} was answered whole but not recorded"
        );
    }
    assert!(recorded.contains("after-restart"));
}

#[tokio::test]
async fn shutdown_with_a_hanging_upstream_exits_within_grace_plus_two_seconds_and_records_the_cut_request()
 {
    let keys = Arc::new(Keys::new());
    let upstream = support::FakeUpstream::start().await;
    upstream.set_default(support::Reply::Hang);
    let (dir, path) = setup(&keys, upstream.addr, |p| {
        edit(
            p,
            &[
                ("shutdown_grace = \"3s\"", "shutdown_grace = \"1s\""),
                ("request_timeout = \"5s\"", "request_timeout = \"60s\""),
                ("\ntimeout = \"1s\"", "\ntimeout = \"60s\""),
            ],
        )
    });
    let mut process = Process::start(&path, &[], &[]);
    // Over HTTP/2, so the drain sends GOAWAY on a connection with a stream still open.
    let client = support::client(&keys, None, true);
    let request = tokio::spawn(
        client
            .get(process.url(ORDERS))
            .header("authorization", alice(&keys))
            .header("x-request-id", "cut-by-shutdown")
            .send(),
    );
    for _ in 0..1000 {
        if upstream.count() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        upstream.count(),
        1,
        "the request reached the hanging upstream"
    );
    let signalled = std::time::Instant::now();
    process.signal("TERM");
    let status = tokio::task::spawn_blocking(move || process.wait())
        .await
        .unwrap();
    let elapsed = signalled.elapsed();
    assert!(status.success(), "exit status {status:?}");
    // CONTRACT §11: out within shutdown_grace + 2 s, and the grace itself was given.
    assert!(elapsed < Duration::from_secs(3), "exited after {elapsed:?}");
    assert!(
        elapsed >= Duration::from_secs(1),
        "exited after {elapsed:?}"
    );
    if let Ok(answer) = request.await.unwrap() {
        assert_eq!(answer.status(), 503);
    }
    let log = std::fs::read_to_string(dir.path().join("audit/audit.jsonl")).unwrap();
    let records: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let cut: Vec<&Value> = records
        .iter()
        .filter(|r| r["request_id"] == "cut-by-shutdown")
        .collect();
    assert_eq!(cut.len(), 1, "{records:?}");
    assert_eq!(cut[0]["detail"], "shutdown", "{}", cut[0]);
    assert_eq!(cut[0]["status"], 503);
    assert_eq!(cut[0]["reason"], "overloaded");
}

/// `serve --shadow` (CONTRACT §9): a disagreement is logged with the request id and both
/// decisions, never the token or a parameter's value; SIGHUP reloads the candidate too.
#[tokio::test]
async fn shadow_disagreements_are_logged_redacted_and_sighup_reloads_the_candidate() {
    let keys = Arc::new(Keys::new());
    let upstream = support::FakeUpstream::start().await;
    let (dir, path) = setup(&keys, upstream.addr, |p| p.to_owned());
    let live = std::fs::read_to_string(&path).unwrap();
    let next = dir.path().join("next.toml");
    let wider = edit(
        &live,
        &[(
            "[roles.customer]\nscopes = [\"orders:read\"]",
            "[roles.customer]\nscopes = [\"orders:read\", \"orders:read:any_customer\"]",
        )],
    );
    std::fs::write(&next, &wider).unwrap();
    let process = Process::start(
        &path,
        &["--shadow", next.to_str().unwrap()],
        &[("RUST_LOG", "info")],
    );
    let client = support::client(&keys, None, false);
    let auth = alice(&keys);
    let token = auth.trim_start_matches("Bearer ").to_owned();
    let other =
        "/v1/customers/C0000002/orders?start_date=2025-01-01&end_date=2025-01-31&phone=13812345678";
    let send = |id: &'static str| {
        client
            .get(process.url(other))
            .header("authorization", &auth)
            .header("x-request-id", id)
            .send()
    };
    assert_eq!(send("shadow-log-1").await.unwrap().status(), 403);
    let decided = |n: u64| {
        let admin = process.admin;
        async move {
            for _ in 0..500 {
                let text = reqwest::get(format!("http://127.0.0.1:{admin}/metrics"))
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                let done: u64 = text
                    .lines()
                    .filter(|l| {
                        l.starts_with("ordergate_shadow_requests_total{result=\"decided\"}")
                    })
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                    .sum();
                if done >= n {
                    return text;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("fewer than {n} shadow decisions");
        }
    };
    let metrics = decided(1).await;
    assert!(
        metrics
            .contains("ordergate_shadow_diff_total{route=\"customer-orders\",kind=\"decision\"} 1")
            || metrics.contains(
                "ordergate_shadow_diff_total{kind=\"decision\",route=\"customer-orders\"} 1"
            ),
        "{metrics}"
    );
    let logged = process.stderr.lock().clone();
    let line = logged
        .lines()
        .find(|l| l.contains("shadow-log-1"))
        .unwrap_or_else(|| panic!("no shadow line:\n{logged}"));
    assert!(line.contains("decides this request differently"), "{line}");
    assert!(line.contains("403 forbidden owner_mismatch"), "{line}");
    assert!(line.contains("admit"), "{line}");
    for secret in [token.as_str(), "13812345678", "C0000002"] {
        assert!(
            !logged.contains(secret),
            "`{secret}` reached stderr:\n{logged}"
        );
    }

    // SIGHUP: the candidate, now the live policy, agrees again.
    std::fs::write(&next, &live).unwrap();
    process.signal("HUP");
    for _ in 0..500 {
        if process.stderr.lock().contains("shadow policy reloaded") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(process.stderr.lock().contains("shadow policy reloaded"));
    assert_eq!(send("shadow-log-2").await.unwrap().status(), 403);
    decided(2).await;
    assert!(!process.stderr.lock().contains("shadow-log-2"));
}

/// A SIGHUP sent the moment the gateway says it listens (here while `--shadow` still loads its
/// candidate) reloads it: the signal was registered before, so the default action (ending
/// the process) never meets it.
#[tokio::test]
async fn a_sighup_as_soon_as_the_gateway_listens_reloads_it() {
    let keys = Arc::new(Keys::new());
    let upstream = support::FakeUpstream::start().await;
    let (dir, path) = setup(&keys, upstream.addr, |p| p.to_owned());
    let next = dir.path().join("next.toml");
    std::fs::copy(&path, &next).unwrap();
    let mut process = Process::start(&path, &["--shadow", next.to_str().unwrap()], &[]);
    process.signal("HUP");
    for _ in 0..1000 {
        if process.stderr.lock().contains("policy reloaded") {
            break;
        }
        assert!(
            process.child.try_wait().unwrap().is_none(),
            "the SIGHUP ended the process: {}",
            process.stderr.lock()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(process.stderr.lock().contains("policy reloaded"));
    process.signal("TERM");
    assert!(process.wait().success(), "{}", process.stderr.lock());
}

/// A TLS ClientHello whose SNI host name is `host` (an IP address, or not a valid name), enough
/// for rustls to parse the extension; the handshake itself then fails.
fn client_hello(host: &[u8]) -> Vec<u8> {
    let len16 = |n: usize| u16::try_from(n).unwrap().to_be_bytes();
    let mut sni = vec![0];
    sni.extend(len16(host.len()));
    sni.extend(host);
    let mut list = len16(sni.len()).to_vec();
    list.extend(sni);
    let mut extensions = vec![0, 0];
    extensions.extend(len16(list.len()));
    extensions.extend(list);
    extensions.extend([0x00, 0x2b, 0x00, 0x03, 0x02, 0x03, 0x04]); // supported_versions: 1.3
    let mut body = vec![0x03, 0x03];
    body.extend([7u8; 32]); // random
    body.push(0); // no session id
    body.extend([0x00, 0x02, 0x13, 0x01]); // TLS_AES_128_GCM_SHA256
    body.extend([0x01, 0x00]); // null compression
    body.extend(len16(extensions.len()));
    body.extend(extensions);
    let mut handshake = vec![0x01];
    handshake.extend(&u32::try_from(body.len()).unwrap().to_be_bytes()[1..]);
    handshake.extend(body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend(len16(handshake.len()));
    record.extend(handshake);
    record
}

/// Sends ClientHellos with an IP address and a malformed name as SNI, then reloads and waits
/// for the reload's line, so everything the handshakes logged is on stderr by then.
async fn stderr_after_odd_sni(process: &Process) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for host in [&b"127.0.0.1"[..], b"not_a_host!name"] {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", process.port))
            .await
            .unwrap();
        stream.write_all(&client_hello(host)).await.unwrap();
        let mut answer = Vec::new();
        // The server answers with an alert and closes; the read ends either way.
        let _ =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    }
    process.signal("HUP");
    for _ in 0..1000 {
        if process.stderr.lock().contains("policy reloaded") {
            return process.stderr.lock().clone();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the reload was not logged");
}

/// rustls warns on every handshake whose SNI is an IP address or not a valid name: by default
/// (no `RUST_LOG`) that is filtered out, so an unauthenticated client cannot write a log line
/// per connection. Asked for, the warning is there — the trigger is real.
#[tokio::test]
async fn odd_sni_cannot_write_log_lines_by_default() {
    let keys = Arc::new(Keys::new());
    let upstream = support::FakeUpstream::start().await;
    let (_dir, path) = setup(&keys, upstream.addr, |p| p.to_owned());
    let quiet = Process::start(&path, &[], &[]);
    let text = stderr_after_odd_sni(&quiet).await;
    assert!(text.contains("ordergate listening"), "{text}");
    assert!(!text.contains("Illegal SNI"), "{text}");
    drop(quiet);
    let asked = Process::start(&path, &[], &[("RUST_LOG", "info,rustls=warn")]);
    let text = stderr_after_odd_sni(&asked).await;
    assert!(text.contains("Illegal SNI"), "{text}");
}
