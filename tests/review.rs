//! `ordergate explain` and `ordergate diff` (CONTRACT §9), run as users run them: golden
//! outputs on the reference policy and the demo policy (text and JSON), exit codes, and one diff
//! case per rule kind, each reported as widening and its reverse as narrowing.
//!
//! Golden files live in `tests/golden/`; after an intended change, regenerate them with
//! `ORDERGATE_BLESS=1 cargo test --test review` and review the diff of `tests/golden/`.

mod support;

use std::path::{Path, PathBuf};
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

/// Compares `actual` with `tests/golden/NAME`, or writes it there under `ORDERGATE_BLESS=1`.
fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("ORDERGATE_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with ORDERGATE_BLESS=1)", path.display()));
    assert_eq!(
        actual, expected,
        "{name} differs from its golden file (ORDERGATE_BLESS=1 regenerates it)"
    );
}

/// The files the reference policy names, written under `dir` at its paths.
fn reference_files(dir: &Path) {
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
}

fn reference_text() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/policy.example.toml"
    ))
    .unwrap()
}

/// A directory with the reference policy's files, where policies are written by name.
struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        reference_files(dir.path());
        Self(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn edited(text: &str, edits: &[(&str, &str)]) -> String {
    support::edit(text, edits)
}

fn explain(policy: &Path, args: &[&str]) -> Output {
    let mut all = vec!["explain", "-c", policy.to_str().unwrap()];
    all.extend_from_slice(args);
    run(&all)
}

fn diff(old: &Path, new: &Path, json: bool) -> Output {
    let mut args = vec!["diff", old.to_str().unwrap(), new.to_str().unwrap()];
    if json {
        args.extend(["--format", "json"]);
    }
    run(&args)
}

#[test]
fn explain_on_the_reference_policy_matches_its_golden_files() {
    let dir = Dir::new();
    let policy = dir.write("policy.toml", &reference_text());
    for (name, args) in [
        ("explain-sf-logistics.txt", vec!["--as", "sf-logistics"]),
        (
            "explain-sf-logistics-phone.txt",
            vec!["--as", "sf-logistics", "--field", "orders[].customer.phone"],
        ),
        (
            "explain-customer.txt",
            vec![
                "--as",
                "jwt:roles=customer;claim=customer_id=C000001",
                "--field",
                "orders[].total",
            ],
        ),
        (
            "explain-jd-marketplace-detail.txt",
            vec![
                "--as",
                "mtls:jd-marketplace",
                "--route",
                "order-detail",
                "--field",
                "shipping.phone",
            ],
        ),
        (
            "explain-erp-sync.json",
            vec![
                "--as",
                "erp-sync",
                "--field",
                "orders[].payment",
                "--format",
                "json",
            ],
        ),
    ] {
        let out = explain(&policy, &args);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
        golden(name, &text(&out.stdout));
    }
}

/// A reviewed change of the reference policy, golden in text and JSON: the contact view shows
/// payment, a key lives longer, the order-detail route gets a tighter bucket.
#[test]
fn diff_on_the_reference_policy_matches_its_golden_files() {
    let dir = Dir::new();
    let base = reference_text();
    let old = dir.write("policy.toml", &base);
    let new = dir.write(
        "policy-proposed.toml",
        &edited(
            &base,
            &[
                ("deny = [\"orders[].payment\"]\n", ""),
                (
                    "not_after = \"2027-04-01T00:00:00Z\"",
                    "not_after = \"2027-10-01T00:00:00Z\"",
                ),
                (
                    "rate_limit = { rate = \"300/min\", burst = 50 }",
                    "rate_limit = { rate = \"100/min\", burst = 50 }",
                ),
            ],
        ),
    );
    let out = diff(&old, &new, false);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    golden("reference-diff.txt", &text(&out.stdout));
    let out = diff(&old, &new, true);
    assert_eq!(out.status.code(), Some(2));
    golden("reference-diff.json", &text(&out.stdout));
}

#[test]
fn explain_refuses_bad_questions_with_exit_1() {
    let dir = Dir::new();
    let policy = dir.write("policy.toml", &reference_text());
    for (args, message) in [
        (vec!["--as", "nobody"], "no API key or mTLS client `nobody`"),
        (
            vec!["--as", "key:jd-marketplace"],
            "no API key `jd-marketplace`",
        ),
        (vec!["--as", "mtls:erp-sync"], "no mTLS client `erp-sync`"),
        (vec!["--as", "jwt:role=customer"], "unknown part `role=`"),
        (vec!["--as", "jwt:roles=ghost"], "unknown role `ghost`"),
        (
            vec!["--as", "jwt:claim=customer_id"],
            "is not `claim=NAME=VALUE`",
        ),
        (
            vec!["--as", "erp-sync", "--route", "ghost"],
            "no route `ghost`",
        ),
        (
            vec!["--as", "erp-sync", "--field", "a..b"],
            "is not a field name",
        ),
    ] {
        let out = explain(&policy, &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).contains(message),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let broken = dir.write("broken.toml", "[server]\n");
    let out = explain(&broken, &["--as", "erp-sync"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("broken.toml:"),
        "{}",
        text(&out.stderr)
    );
}

/// `explain --as WHO` on `customer-orders`: its reach, as JSON.
fn reach_on(policy: &Path, who: &str) -> Value {
    let args = [
        "--as",
        who,
        "--route",
        "customer-orders",
        "--format",
        "json",
    ];
    let out = explain(policy, &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["routes"][0]["reach"].clone()
}

/// The caller's decisions are the gateway's: a customer is bound to its own customer id, a
/// caller without the claim is refused, a bypass scope opens every customer.
#[test]
fn explain_reads_the_gateways_decisions() {
    let dir = Dir::new();
    let policy = dir.write("policy.toml", &reference_text());
    let reach = |who: &str| reach_on(&policy, who);
    let own = reach("jwt:roles=customer;claim=customer_id=C000001");
    assert_eq!(own["access"], "owner_bound");
    assert_eq!(own["bound_to"], "C000001");
    assert_eq!(own["view"], "orders:read");
    let no_claim = reach("jwt:roles=customer");
    assert_eq!(no_claim["access"], "refused");
    assert_eq!(no_claim["detail"], "owner_mismatch");
    let no_scope = reach("jwt:scopes=orders:read:contact");
    assert_eq!(no_scope["detail"], "scope_missing");
    let agent = reach("jwt:roles=customer_service");
    assert_eq!(agent["access"], "allowed");
    assert_eq!(agent["view"], "orders:read:contact");
    let no_view = reach("jwt:scopes=orders:read,orders:read:any_customer,x");
    assert_eq!(no_view["access"], "allowed", "orders:read has a view");
}

/// `explain` judges the owner value the gateway would send upstream, as validation does: a
/// claim the parameter refuses reaches nothing, and on an integer parameter a claim of `0042`
/// (which would go upstream as customer 42) is refused, where `42` is bound to its own.
#[test]
fn explain_judges_the_owner_value_sent_upstream() {
    let dir = Dir::new();
    let string = dir.write("string.toml", &reference_text());
    let integer = dir.write(
        "integer.toml",
        &edited(
            &reference_text(),
            &[(
                "[routes.params.customer_id]\ntype = \"string\"\npattern = \"^C[0-9]{6,12}$\"",
                "[routes.params.customer_id]\ntype = \"integer\"",
            )],
        ),
    );
    let reach = |policy: &Path, claim: &str| {
        reach_on(
            policy,
            &format!("jwt:roles=customer;claim=customer_id={claim}"),
        )
    };
    for (policy, claim, access, detail) in [
        (&string, "C000001", "owner_bound", Value::Null),
        (&string, "X1", "refused", "invalid_value".into()),
        (&integer, "42", "owner_bound", Value::Null),
        (&integer, "0042", "refused", "owner_mismatch".into()),
        (&integer, "C000001", "refused", "invalid_value".into()),
    ] {
        let fact = reach(policy, claim);
        assert_eq!(fact["access"], access, "claim {claim}: {fact}");
        assert_eq!(fact["detail"], detail, "claim {claim}: {fact}");
    }
    let refused = reach(&integer, "0042");
    let rule = refused["rule"].as_str().unwrap();
    assert!(rule.contains("goes upstream as \"42\""), "{rule}");
    // A key whose attribute is a set is bound to each customer in it the gateway lets through.
    let set = dir.write(
        "set.toml",
        &edited(
            &reference_text(),
            &[(
                "roles = [\"logistics_partner\"]\n",
                "roles = [\"customer\"]\nattributes = { customer_id = [\"C000002\", \"X3\", \"C000004\"] }\n",
            )],
        ),
    );
    let fact = reach_on(&set, "sf-logistics");
    assert_eq!(fact["access"], "owner_bound", "{fact}");
    assert_eq!(fact["bound_to"], "C000002, C000004", "{fact}");
}

/// The demo policy as the demo writes it, and the demo's "next" policy beside it.
fn demo_dir() -> (Dir, PathBuf, PathBuf) {
    let dir = Dir::new();
    let hash = |n: u8| format!("sha256:{}", format!("{n:02x}").repeat(32));
    let (erp, logistics) = (hash(1), hash(2));
    let acme = |key| ordergate::demo::policy_template::ApiKeyEntry {
        tenant: Some("acme"),
        ..key
    };
    let keys = [
        acme(ordergate::demo::policy_template::ApiKeyEntry::new(
            "erp-sync",
            &erp,
            &["erp"],
        )),
        acme(ordergate::demo::policy_template::ApiKeyEntry::new(
            "sf-logistics",
            &logistics,
            &["logistics_partner"],
        )),
    ];
    let text =
        ordergate::demo::demo_policy("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:9", &keys).render();
    let next = ordergate::demo::next_policy(&text).unwrap();
    let old = dir.write("policy.toml", &text);
    let new = dir.write("policy-next.toml", &next);
    (dir, old, new)
}

#[test]
fn explain_and_diff_on_the_demo_policy_match_their_golden_files() {
    let (_dir, old, new) = demo_dir();
    let out = explain(
        &old,
        &["--as", "sf-logistics", "--field", "orders[].shipping.phone"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    golden("demo-explain-sf-logistics.txt", &text(&out.stdout));
    let out = explain(
        &old,
        &[
            "--as",
            "sf-logistics",
            "--field",
            "orders[].shipping.phone",
            "--format",
            "json",
        ],
    );
    golden("demo-explain-sf-logistics.json", &text(&out.stdout));
    let out = diff(&old, &new, false);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.lines().any(|l| l.starts_with(
            "+ widened  key:sf-logistics customer-orders field orders[].shipping.phone: unmasked"
        )),
        "{stdout}"
    );
    golden("demo-diff.txt", &stdout);
    let out = diff(&old, &new, true);
    assert_eq!(out.status.code(), Some(2));
    golden("demo-diff.json", &text(&out.stdout));
    let out = diff(&new, &old, false);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
}

#[test]
fn diff_exit_codes() {
    let dir = Dir::new();
    let policy = dir.write("policy.toml", &reference_text());
    let same = dir.write("same.toml", &reference_text());
    let out = diff(&policy, &same, false);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(
        text(&out.stdout).lines().last(),
        Some("no change in exposure")
    );
    let out = diff(&policy, &same, true);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["exit_code"], 0);
    assert_eq!(json["changes"], Value::Array(vec![]));
    let broken = dir.write("broken.toml", "[server]\n");
    for (a, b) in [(&policy, &broken), (&broken, &policy)] {
        let out = diff(a, b, false);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("broken.toml:"),
            "{}",
            text(&out.stderr)
        );
    }
    let missing = dir.0.path().join("missing.toml");
    assert_eq!(diff(&policy, &missing, false).status.code(), Some(1));
}

/// A diff case: its name, the edits that widen, and the start of the line that must say so.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

/// A case that first sets a rule (the first edits) and then changes it (the second).
type Prepared<'a> = (
    &'a str,
    &'a [(&'a str, &'a str)],
    &'a [(&'a str, &'a str)],
    &'a str,
);

/// One edit per rule kind of the reference policy; each widens, and undone it narrows. The
/// line that says why is checked, with its subject, route and item.
#[test]
fn each_rule_kind_widens_one_way_and_narrows_the_other() {
    let dir = Dir::new();
    let base = reference_text();
    let cases: &[Case] = &[
        (
            "a scope added to a role",
            &[(
                "scopes = [\"orders:read\"]                  # owner",
                "scopes = [\"orders:read\", \"orders:read:contact\"]  # owner",
            )],
            "role:customer customer-orders field orders[].customer.phone: newly visible, masked",
        ),
        (
            "a mask removed",
            &[("mask = { \"orders[].shipping.phone\" = \"phone\" }", "")],
            "key:sf-logistics customer-orders field orders[].shipping.phone: unmasked",
        ),
        (
            "a deny removed",
            &[("deny = [\"orders[].payment\"]\n", "")],
            "role:customer_service customer-orders field orders[].payment: newly visible",
        ),
        (
            "a route added",
            &[(
                "[rate_limits]",
                "[[routes]]\nid = \"order-status\"\nmethod = \"GET\"\npath = \"/v1/orders/{order_id}/status\"\nrequire_scopes = [\"orders:read\"]\n[routes.params.order_id]\ntype = \"string\"\n\n[rate_limits]",
            )],
            "role:customer order-status reach: newly reachable (any customer)",
        ),
        (
            "a bypass scope granted",
            &[(
                "bypass_scopes = [\"orders:read:any_customer\"] }",
                "bypass_scopes = [\"orders:read:any_customer\", \"orders:read\"] }",
            )],
            "route customer-orders route: bypass scope orders:read granted",
        ),
        (
            "a key's not_after extended",
            &[(
                "not_after = \"2027-02-20T00:00:00Z\"",
                "not_after = \"2027-08-20T00:00:00Z\"",
            )],
            "key:sf-logistics - credential: not_after extended",
        ),
        (
            "a rate limit loosened",
            &[(
                "rate_limit = { rate = \"120/min\", burst = 20 }",
                "rate_limit = { rate = \"240/min\", burst = 20 }",
            )],
            "route customer-orders rate_limit: rate loosened",
        ),
    ];
    // The wave-2 rules: the reference policy has none, so each case first sets the rule (the
    // first edits), then widens it (the second).
    let owners = "[[routes.response.owners]]\nfield = \"customer.id\"\nclaim = \"customer_id\"\nbypass_scopes = [\"orders:read:any_customer\"]\n\n[rate_limits]";
    let next = "\n[upstreams.orders-v2]\nurl = \"http://127.0.0.1:9\"\n";
    let canary = |percent: &str| {
        format!(
            "id = \"order-detail\"\ncanary = {{ upstream = \"orders-v2\", percent = {percent} }}\n"
        )
    };
    let (ten, twenty) = (canary("10"), canary("20"));
    let volume = |max: &str| {
        format!(
            "[abuse.volume]\nrecords = {{ max = {max}, window = \"1h\" }}\naction = \"freeze\"\n\n[audit]"
        )
    };
    let (hundred, thousand) = (volume("100"), volume("1000"));
    let prepared: &[Prepared] = &[
        (
            "a CIDR added to a key's IP list",
            &[(
                "id = \"erp-sync\"\n",
                "id = \"erp-sync\"\nallow_ips = [\"203.0.113.0/24\"]\n",
            )],
            &[(
                "[\"203.0.113.0/24\"]",
                "[\"203.0.113.0/24\", \"198.51.100.0/24\"]",
            )],
            "key:erp-sync - allow_ips: IP list widened",
        ),
        (
            "a route's IP list removed",
            &[(
                "id = \"customer-orders\"\n",
                "id = \"customer-orders\"\nallow_ips = [\"10.0.0.0/8\"]\n",
            )],
            &[("allow_ips = [\"10.0.0.0/8\"]\n", "")],
            "route customer-orders allow_ips: IP list removed",
        ),
        (
            "the server's IP list made wider",
            &[("[server]\n", "[server]\nallow_ips = [\"10.1.0.0/16\"]\n")],
            &[("10.1.0.0/16", "10.0.0.0/8")],
            "policy - allow_ips server: IP list widened",
        ),
        (
            "a signature requirement removed",
            &[(
                "id = \"order-detail\"\n",
                "id = \"order-detail\"\nrequire_signature = true\n",
            )],
            &[("require_signature = true\n", "")],
            "route order-detail require_signature: signature requirement removed",
        ),
        (
            "a response-owner entry removed",
            &[("[rate_limits]", owners)],
            &[(owners, "[rate_limits]")],
            "route order-detail response owners: response owner customer.id removed",
        ),
        (
            "a response-owner bypass scope added",
            &[("[rate_limits]", owners)],
            &[(
                "bypass_scopes = [\"orders:read:any_customer\"]\n\n",
                "bypass_scopes = [\"orders:read:any_customer\", \"orders:read:full\"]\n\n",
            )],
            "route order-detail response owners: response owner customer.id: bypass scope orders:read:full granted",
        ),
        (
            "a canary added",
            &[("[audit]", &format!("{next}\n[audit]"))],
            &[("id = \"order-detail\"\n", &ten)],
            "route order-detail upstream: canary orders-v2 added",
        ),
        (
            "a canary's percent raised",
            &[
                ("[audit]", &format!("{next}\n[audit]")),
                ("id = \"order-detail\"\n", &ten),
            ],
            &[(&ten, &twenty)],
            "route order-detail upstream: canary share raised (10% → 20%)",
        ),
        (
            "a volume limit loosened",
            &[("[audit]", &hundred)],
            &[(&hundred, &thousand)],
            "policy - volume: volume records loosened",
        ),
    ];
    let all = cases
        .iter()
        .map(|(name, edits, line)| (*name, &[][..], *edits, *line))
        .chain(prepared.iter().copied());
    for (name, from, edits, line) in all {
        let start = edited(&base, from);
        let old = dir.write("old.toml", &start);
        let new = dir.write("new.toml", &edited(&start, edits));
        let out = diff(&old, &new, false);
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{name}: {stdout}{}",
            text(&out.stderr)
        );
        let want = format!("+ widened  {line}");
        assert!(
            stdout.lines().any(|l| l.starts_with(&want)),
            "{name}: no `{want}` in\n{stdout}"
        );
        assert!(!stdout.contains("- narrowed"), "{name}: {stdout}");
        let out = diff(&new, &old, false);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(3), "{name} reversed: {stdout}");
        assert!(!stdout.contains("+ widened"), "{name} reversed: {stdout}");
        let item = line.split(':').next().unwrap();
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("- narrowed {item}"))),
            "{name} reversed: no `- narrowed {item}` in\n{stdout}"
        );
    }
}

/// `explain` names every wave-2 rule that applies to the caller: its own and the route's IP
/// lists, the server's, the signature requirement, response owners, the canary side it is on
/// (by the gateway's assignment: a named principal), stale answers and the volume guard.
#[test]
fn explain_names_the_wave_2_rules_that_apply() {
    let dir = Dir::new();
    let policy = edited(
        &reference_text(),
        &[
            ("[server]\n", "[server]\nallow_ips = [\"10.0.0.0/8\"]\n"),
            (
                "id = \"erp-sync\"\n",
                "id = \"erp-sync\"\nallow_ips = [\"10.1.0.0/16\"]\n",
            ),
            (
                "id = \"order-detail\"\n",
                "id = \"order-detail\"\nallow_ips = [\"10.1.2.0/24\"]\nrequire_signature = true\n\
                 canary = { upstream = \"orders-v2\", percent = 5, principals = [\"erp-sync\"] }\n",
            ),
            (
                "[rate_limits]",
                "[[routes.response.owners]]\nfield = \"customer.id\"\nclaim = \"customer_id\"\n\
                 bypass_scopes = [\"orders:read:full\"]\n\n[routes.stale_if_error]\nmax_age = \"10m\"\n\n[rate_limits]",
            ),
            (
                "[audit]",
                "[abuse.volume]\ndistinct = { param = \"customer_id\", max = 50, window = \"1h\" }\n\
                 action = \"freeze\"\n\n[upstreams.orders-v2]\nurl = \"http://127.0.0.1:9\"\n\n[audit]",
            ),
        ],
    );
    let path = dir.write("policy.toml", &policy);
    let out = explain(&path, &["--as", "erp-sync", "--route", "order-detail"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    for line in [
        "server IP list: only from [10.0.0.0/8]",
        "IP lists of the credential and its roles: only from [10.1.0.0/16]",
        "signature: no signature required",
        "volume guard: 50 distinct customer_id per 1h per principal, then freeze",
        "  upstream: default; canary orders-v2 for 5% of principals and always erp-sync",
        "  canary side: on the canary (orders-v2) while its guard holds",
        "  IP list: only from [10.1.2.0/24]",
        "  signature: every caller must sign (require_signature)",
        "  response owners: answer must hold customer.id in claim customer_id unless orders:read:full",
        "  stale: stale_if_error: answers up to 10min old",
        "  refused (signature_invalid): require_signature: the credential has no signature key",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(line)),
            "no `{line}` in\n{stdout}"
        );
    }
    let out = explain(
        &path,
        &[
            "--as",
            "sf-logistics",
            "--route",
            "order-detail",
            "--format",
            "json",
        ],
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let route = &json["routes"][0];
    assert_eq!(route["require_signature"]["required"], true, "{json}");
    assert_eq!(route["allow_ips"]["lists"][0][0], "10.1.2.0/24", "{json}");
    assert_eq!(
        route["response_owners"]["entries"][0]["field"],
        "customer.id"
    );
    assert_eq!(route["upstream"]["canary"]["basis_points"], 500);
    let side = route["canary_side"]["side"].as_str().unwrap();
    let bucket = ordergate::stage::canary::bucket("order-detail", "sf-logistics");
    let want = if bucket < 500 { "canary" } else { "primary" };
    assert_eq!(side, want, "the gateway's own assignment");
    assert_eq!(json["volume"]["distinct"]["max"], 50);

    // Lists that no address is in all of: refused by them, whatever the request.
    let disjoint = edited(&policy, &[("[\"10.1.2.0/24\"]", "[\"192.0.2.0/24\"]")]);
    let path = dir.write("disjoint.toml", &disjoint);
    let out = explain(&path, &["--as", "erp-sync", "--route", "order-detail"]);
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("  refused (ip_not_allowed): allow_ips: no address")),
        "{stdout}"
    );
}
