//! Issue 12, item 1 (CONTRACT §8.1): the shipped Prometheus rules are valid, their unit tests pass,
//! every alert the contract names is there with `severity`, `summary` and `runbook`, and every
//! metric the rules and the Grafana dashboard use is one the gateway exports from the start.
//! promtool comes from Debian's `prometheus` package; without it the promtool test is skipped with
//! a note, unless `ORDERGATE_REQUIRE_PROMTOOL` is set (CI sets it). Its own test binary, so no
//! other test's traffic can create a series before the scrape.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::Harness;

const ALERTS: [&str; 14] = [
    "OrdergateAuditUnavailable",
    "OrdergateCircuitOpen",
    "OrdergateUpstreamErrors",
    "OrdergateAuthFailureSpike",
    "OrdergateOwnerMismatchBurst",
    "OrdergateFrozen",
    "OrdergateSignatureReplays",
    "OrdergateCredentialExpiresSoon",
    "OrdergateCertificateExpiresSoon",
    "OrdergateReloadFailed",
    "OrdergateJwksRefreshFailing",
    "OrdergateHighLatency",
    "OrdergateVolumeExceeded",
    "OrdergateCanaryRolledBack",
];

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(deploy(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// promtool, or `None` (skip) when it is not installed and not required.
fn promtool() -> Option<&'static str> {
    let installed = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        assert!(
            std::env::var_os("ORDERGATE_REQUIRE_PROMTOOL").is_none(),
            "promtool is required (ORDERGATE_REQUIRE_PROMTOOL is set): apt-get install --no-install-recommends prometheus"
        );
        eprintln!(
            "SKIPPED: promtool is not installed (apt-get install --no-install-recommends prometheus)"
        );
        return None;
    }
    Some("promtool")
}

fn run_promtool(args: &[&str]) {
    let Some(promtool) = promtool() else { return };
    let out = Command::new(promtool)
        .args(args)
        .current_dir(deploy("prometheus"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_rules_pass_promtool_check() {
    run_promtool(&["check", "rules", "ordergate-rules.yml"]);
}

#[test]
fn the_rules_pass_their_unit_tests() {
    run_promtool(&["test", "rules", "ordergate-rules.test.yml"]);
}

/// The rule file as blocks, one per `- alert:` entry (the text up to the next one).
fn alert_blocks(rules: &str) -> Vec<(String, String)> {
    let mut blocks: Vec<(String, String)> = Vec::new();
    for line in rules.lines() {
        if let Some(name) = line.trim().strip_prefix("- alert: ") {
            blocks.push((name.trim().to_owned(), String::new()));
        } else if line.trim_start().starts_with("- name: ") {
            blocks.push((String::new(), String::new()));
        } else if let Some((_, text)) = blocks.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    blocks.retain(|(name, _)| !name.is_empty());
    blocks
}

#[test]
fn every_contract_alert_is_defined_once_with_severity_summary_and_runbook() {
    let rules = read("prometheus/ordergate-rules.yml");
    let blocks = alert_blocks(&rules);
    let names: Vec<&str> = blocks.iter().map(|(n, _)| n.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    let mut expected = ALERTS.to_vec();
    expected.sort_unstable();
    assert_eq!(sorted, expected, "alerts in the rule file");
    for (name, body) in &blocks {
        assert!(
            body.contains("severity: critical") || body.contains("severity: warning"),
            "{name}: severity"
        );
        assert!(
            body.contains("team: operations") || body.contains("team: security"),
            "{name}: team"
        );
        assert!(body.contains("summary: \""), "{name}: summary");
        let anchor = format!("runbook: \"README.md#runbook-{}\"", name.to_lowercase());
        assert!(body.contains(&anchor), "{name}: {anchor}");
    }
}

/// Each `runbook` anchor leads somewhere: README.md has a `### Runbook: <alert>` section.
#[test]
fn every_alert_has_a_runbook_section() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = std::fs::read_to_string(root.join("README.md")).unwrap();
    for alert in ALERTS {
        let heading = format!("\n### Runbook: {alert}\n");
        assert!(docs.contains(&heading), "no runbook section for {alert}");
    }
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_unit_test() {
    let tests = read("prometheus/ordergate-rules.test.yml");
    for alert in ALERTS {
        let cases: Vec<&str> = tests
            .split("- eval_time:")
            .skip(1)
            .filter(|case| case.contains(&format!("alertname: {alert}\n")))
            .collect();
        assert!(
            cases.iter().any(|c| c.contains("exp_alerts: []")),
            "{alert}: no not-firing case"
        );
        assert!(
            cases.iter().any(|c| c.contains("exp_labels:")),
            "{alert}: no firing case"
        );
    }
}

/// Every `ordergate_…` metric name in `text`, histogram series mapped to their family.
fn metric_names(text: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"\bordergate_[a-z0-9_]*[a-z0-9]").unwrap();
    re.find_iter(text)
        .map(|m| {
            let name = m.as_str();
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name)
                .to_owned()
        })
        .collect()
}

/// Every panel's `expr` (panels inside rows too), and the queries of the templating variables.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    fn panel_exprs(panels: &Value, out: &mut Vec<String>) {
        for panel in panels.as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push(expr.to_owned());
                }
            }
            panel_exprs(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    panel_exprs(&dashboard["panels"], &mut out);
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if var["type"] == "query" {
            let query = &var["query"];
            if let Some(q) = query["query"].as_str().or(query.as_str()) {
                out.push(q.to_owned());
            }
        }
    }
    out
}

/// promtool parses each dashboard query as a recording rule, Grafana's variables filled in.
#[test]
fn the_dashboard_queries_are_valid_promql() {
    let Some(promtool) = promtool() else { return };
    let dashboard: Value = serde_json::from_str(&read("grafana/ordergate.json")).unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, query) in dashboard_queries(&dashboard)
        .iter()
        .filter(|q| !q.starts_with("label_values("))
        .enumerate()
    {
        let expr = query
            .replace("$__rate_interval", "5m")
            .replace("$job", ".*")
            .replace("$instance", ".*")
            .replace("$route", ".*");
        // A JSON string is a valid YAML double-quoted scalar.
        let expr = serde_json::to_string(&expr).unwrap();
        rules.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {expr}\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dashboard-rules.yml");
    std::fs::write(&path, &rules).unwrap();
    let out = Command::new(promtool)
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "a dashboard query does not parse:\n{}\n{}\n{rules}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn every_metric_in_the_rules_and_the_dashboard_is_exported_at_start() {
    let h = Harness::start().await;
    let text = h.metrics().await;
    let exported: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| metric_names(l.split(['{', ' ']).next().unwrap_or("")))
        .collect();

    let rules = read("prometheus/ordergate-rules.yml");
    let dashboard: Value = serde_json::from_str(&read("grafana/ordergate.json")).unwrap();
    let queries = dashboard_queries(&dashboard);
    assert!(
        queries.len() >= 10,
        "the dashboard has few queries: {queries:?}"
    );
    let used: BTreeSet<String> = metric_names(&rules)
        .into_iter()
        .chain(queries.iter().flat_map(|q| metric_names(q)))
        .collect();
    let missing: Vec<&String> = used.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "used by the rules or the dashboard but not exported at start: {missing:?}\n{text}"
    );
    // The check sees what it should: the rules use these.
    for name in [
        "ordergate_denials_total",
        "ordergate_credential_expiry_timestamp_seconds",
        "ordergate_request_duration_seconds",
    ] {
        assert!(used.contains(name), "{name}");
    }
}
