//! The `ordergate` command (CONTRACT.md §1), run as users run it.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ordergate");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The reference policy, unchanged, with the files it names present.
fn reference_policy(dir: &Path) -> std::path::PathBuf {
    let keys = support::Keys::new();
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    std::fs::write(dir.join("certs/server.crt"), &keys.server.cert_pem).unwrap();
    std::fs::write(dir.join("certs/server.key"), &keys.server.key_pem).unwrap();
    std::fs::write(dir.join("certs/partners-ca.pem"), keys.partners.pem()).unwrap();
    std::fs::write(
        dir.join("keys/jwks.json"),
        ordergate::demo::pki::jwks(&[&keys.es256]),
    )
    .unwrap();
    let path = dir.join("policy.toml");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/config/policy.example.toml"),
        &path,
    )
    .unwrap();
    path
}

#[test]
fn check_accepts_the_reference_policy_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = reference_policy(dir.path());
    let out = run(&["check", "-c", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains("ok — 2 route(s)"), "{stdout}");
}

#[test]
fn check_reports_every_problem_as_file_line_col() {
    let dir = tempfile::tempdir().unwrap();
    let path = reference_policy(dir.path());
    let text_in = std::fs::read_to_string(&path).unwrap();
    let broken = text_in
        .replacen(
            "require_scopes = [\"orders:read\"]",
            "require_scope = [\"orders:read\"]",
            1,
        )
        .replacen("max = 100", "max = \"lots\"", 1)
        .replacen("jwks_refresh = \"5m\"", "jwks_refresh = \"5 minutes\"", 1)
        .replacen("keys/jwks.json", "keys/missing.json", 1);
    std::fs::write(&path, broken).unwrap();
    let out = run(&["check", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with(path.to_str().unwrap()))
        .collect();
    assert_eq!(lines.len(), 4, "{stderr}");
    for line in &lines {
        let rest = line.strip_prefix(&format!("{}:", path.display())).unwrap();
        let mut parts = rest.splitn(3, ':');
        assert!(
            parts.next().unwrap().parse::<usize>().is_ok()
                && parts.next().unwrap().parse::<usize>().is_ok(),
            "{line}"
        );
    }
    assert!(stderr.contains("unknown field `require_scope`"));
    assert!(stderr.contains("missing.json"));
    assert!(stderr.contains("unknown unit"));
    let missing = run(&["check", "-c", "/nonexistent/policy.toml"]);
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn the_local_example_policy_checks() {
    let out = Command::new(BIN)
        .args([
            "check",
            "-c",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/local.toml"),
        ])
        .env("ORDERGATE_DEV_SECRET", "0123456789abcdef0123456789abcdef")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let unset = Command::new(BIN)
        .args([
            "check",
            "-c",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/local.toml"),
        ])
        .env_remove("ORDERGATE_DEV_SECRET")
        .output()
        .unwrap();
    assert_eq!(unset.status.code(), Some(1));
    assert!(text(&unset.stderr).contains("ORDERGATE_DEV_SECRET"));
}

#[test]
fn apikey_new_prints_a_key_once_and_a_block_that_loads() {
    let out = run(&[
        "apikey", "new", "--id", "erp-sync", "--roles", "erp", "--tenant", "acme", "--days", "90",
    ]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    let key = stdout
        .lines()
        .find_map(|l| l.strip_prefix("# ogk_"))
        .map(|k| format!("ogk_{k}"))
        .unwrap();
    let block: String = stdout
        .lines()
        .skip_while(|l| !l.starts_with("[[auth.api_keys.keys]]"))
        .map(|l| format!("{l}\n"))
        .collect();
    use sha2::Digest;
    assert!(block.contains(&format!(
        "hash = \"sha256:{}\"",
        hex::encode(sha2::Sha256::digest(key.as_bytes()))
    )));
    assert!(!block.contains(&key), "the block holds only the hash");
    let parsed: toml::Value = toml::from_str(&block).unwrap();
    let entry = &parsed["auth"]["api_keys"]["keys"][0];
    assert_eq!(entry["roles"][0].as_str(), Some("erp"));
    assert!(entry["not_after"].as_str().is_some());
    assert_ne!(
        key,
        text(&run(&["apikey", "new", "--id", "x"]).stdout)
            .lines()
            .find_map(|l| l.strip_prefix("# "))
            .unwrap()
    );
}

#[test]
fn token_mints_what_the_gateway_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let key =
        ordergate::demo::pki::JwtKey::generate(jsonwebtoken::Algorithm::ES256, "cli").unwrap();
    let pem = dir.path().join("key.pem");
    std::fs::write(&pem, &key.private_pem).unwrap();
    let out = run(&[
        "token",
        "--key",
        pem.to_str().unwrap(),
        "--sub",
        "alice",
        "--iss",
        "https://idp.test/",
        "--aud",
        "ordergate",
        "--kid",
        "cli",
        "--scope",
        "orders:read",
        "--roles",
        "customer",
        "--claim",
        "customer_id=C0000001",
        "--claim",
        "level=3",
        "--ttl",
        "15m",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_owned();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    use base64::Engine as _;
    let decode = |s: &str| {
        serde_json::from_slice::<Value>(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(decode(parts[0])["alg"], "ES256");
    assert_eq!(decode(parts[0])["kid"], "cli");
    let claims = decode(parts[1]);
    assert_eq!(claims["customer_id"], "C0000001");
    assert_eq!(claims["level"], 3);
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        900
    );
    let bad = run(&["token", "--key", "/nonexistent.pem", "--sub", "x"]);
    assert!(!bad.status.success());
}

#[test]
fn audit_verify_exits_1_and_names_the_first_broken_record() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let audit = rt.block_on(async {
        let mut h = support::Harness::start().await;
        for _ in 0..3 {
            h.get(
                "/v1/orders/O2025010100000001",
                &[("x-api-key", &h.keys.erp_key)],
            )
            .await;
        }
        h.stop().await;
        let copy = dir.path().join("audit.jsonl");
        std::fs::copy(h.audit_path(), &copy).unwrap();
        copy
    });
    let ok = run(&["audit", "verify", audit.to_str().unwrap()]);
    assert!(ok.status.success());
    assert!(text(&ok.stdout).starts_with("ok: 3 record(s)"));
    let original = std::fs::read_to_string(&audit).unwrap();
    std::fs::write(
        &audit,
        original
            .replacen("\"status\":200", "\"status\":201", 2)
            .replacen("\"status\":201", "\"status\":200", 1),
    )
    .unwrap();
    let broken = run(&["audit", "verify", audit.to_str().unwrap()]);
    assert_eq!(broken.status.code(), Some(1));
    assert!(
        text(&broken.stderr).contains(&format!(
            "{}:2: seq 2: hash does not match",
            audit.display()
        )),
        "{}",
        text(&broken.stderr)
    );
}

#[test]
fn openapi_prints_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let path = reference_policy(dir.path());
    let out = run(&["openapi", "-c", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/orders/{order_id}"]["get"].is_object());
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["check", "--help"],
        vec!["demo", "--help"],
        vec!["apikey", "new", "--help"],
        vec!["token", "--help"],
        vec!["audit", "verify", "--help"],
        vec!["openapi", "--help"],
    ] {
        let out = run(&args);
        assert!(out.status.success(), "{args:?}");
        assert!(text(&out.stdout).contains("Usage"), "{args:?}");
    }
    let wrong = run(&["serve"]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(text(&wrong.stderr).contains("--config"));
}

#[test]
fn the_demo_runs_its_tour_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "demo",
            "--exit-after-tour",
            "--port",
            "0",
            "--admin-port",
            "0",
            "--state",
            dir.path().to_str().unwrap(),
        ])
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    for expected in [
        "→ 200",
        "→ 403",
        "→ 400",
        "→ 401",
        "429",
        "circuit_open",
        "ok: ",
        "explain -c",
        "--as sf-logistics",
        "→ exit 2",
        "+ widened  key:sf-logistics customer-orders field orders[].shipping.phone: unmasked",
    ] {
        assert!(
            stdout.contains(expected),
            "`{expected}` missing from the tour:\n{stdout}"
        );
    }
    assert!(stdout.contains("curl -s --cacert $CA"));
    assert!(!stdout.contains("(the tour stopped early"), "{stdout}");
}
