//! The layer rule, read from the sources: imports go down only.
//!
//! ```text
//!  cli, demo, openapi, token, main      the commands
//!  server                               listeners, TLS, signals, admin
//!  pipeline | review                    the stage order, the tower service | explain, diff
//!  context, gateway                     one request's facts; state that outlives a policy
//!  policy                               the compiled policy (aggregates the stages' settings)
//!  config | stage                       the file as written | one module per stage, in order
//!  vocab                                errors, units, percent, query, scopes, redaction, body
//! ```
//!
//! A stage may use an earlier stage (its request facts), never a later one, and never config,
//! policy, context, gateway or pipeline: it is handed its own settings. Test code (`tests.rs`
//! files and whatever follows `#[cfg(test)]`) is exempt: tests may build settings any way.

use std::path::{Path, PathBuf};

/// Stages in pipeline order, as `src/stage/mod.rs` lists them.
fn stage_order() -> Vec<String> {
    let text = std::fs::read_to_string(src().join("stage/mod.rs")).unwrap();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';').to_owned())
        .collect()
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Where a module path (`vocab::error`, `stage::authn`, `gateway`) sits.
#[derive(Debug, Clone, PartialEq)]
enum Place {
    Vocab(String),
    Config,
    Stage(usize, String),
    Policy,
    Gateway,
    Pipeline,
    Review,
    Server,
    Commands,
}

impl Place {
    fn rank(&self) -> u8 {
        match self {
            Place::Vocab(_) => 0,
            Place::Config | Place::Stage(..) => 1,
            Place::Policy => 2,
            Place::Gateway => 3,
            Place::Pipeline | Place::Review => 4,
            Place::Server => 5,
            Place::Commands => 6,
        }
    }
}

fn place(segments: &[&str], stages: &[String]) -> Option<Place> {
    let first = *segments.first()?;
    Some(match first {
        "vocab" => Place::Vocab(segments.get(1).unwrap_or(&"").to_string()),
        "config" => Place::Config,
        "stage" => {
            let Some(name) = segments.get(1) else {
                return Some(Place::Stage(0, String::new())); // stage/mod.rs: the list itself
            };
            let index = stages.iter().position(|s| s == name)?;
            Place::Stage(index, name.to_string())
        }
        "policy" => Place::Policy,
        "context" | "gateway" => Place::Gateway,
        "pipeline" => Place::Pipeline,
        "review" => Place::Review,
        "server" => Place::Server,
        "cli" | "demo" | "openapi" | "token" | "main" | "lib" => Place::Commands,
        _ => return None,
    })
}

/// Why `from` may not import `to`, if it may not.
fn violation(from: &Place, to: &Place) -> Option<&'static str> {
    match (from, to) {
        (Place::Stage(a, _), Place::Stage(b, _)) if b > a => Some("a stage imports a later stage"),
        (Place::Stage(..), Place::Config) => Some("a stage imports the config"),
        (Place::Config, Place::Stage(..)) => Some("the config imports a stage"),
        (Place::Vocab(m), Place::Vocab(n)) if m == "error" && n == "body" => {
            Some("error.rs builds no bodies")
        }
        _ if to.rank() > from.rank() => Some("an import goes up"),
        _ => None,
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::a::b` path in the non-test part of `text`, as segments.
fn crate_paths(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let tail = &rest[at + "crate::".len()..];
            let path: Vec<String> = tail
                .split("::")
                .map(|s| {
                    s.chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect::<String>()
                })
                .take_while(|s| !s.is_empty())
                .collect();
            found.push((n + 1, path));
            rest = tail;
        }
    }
    found
}

#[test]
fn imports_go_down_only() {
    let stages = stage_order();
    assert!(stages.len() >= 10, "stage/mod.rs lists the stages");
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut problems = Vec::new();
    for file in &files {
        if file
            .file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with("tests.rs"))
        {
            continue;
        }
        let rel = file.strip_prefix(&root).unwrap();
        let rel_text = rel.to_string_lossy().replace(".rs", "");
        let segments: Vec<&str> = rel_text.split('/').filter(|s| *s != "mod").collect();
        let Some(from) = place(&segments, &stages) else {
            problems.push(format!("{}: not in any layer", rel.display()));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (line, path) in crate_paths(&text) {
            let refs: Vec<&str> = path.iter().map(String::as_str).collect();
            let Some(to) = place(&refs, &stages) else {
                continue;
            };
            if let Some(why) = violation(&from, &to) {
                problems.push(format!(
                    "{}:{line}: {why}: crate::{}",
                    rel.display(),
                    path.join("::")
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "layer rule broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_rule_catches_what_it_should() {
    let stages: Vec<String> = ["route", "authn", "proxy"].map(String::from).to_vec();
    let authn = place(&["stage", "authn"], &stages).unwrap();
    let proxy = place(&["stage", "proxy"], &stages).unwrap();
    assert!(violation(&authn, &proxy).is_some());
    assert!(violation(&proxy, &authn).is_none());
    assert!(violation(&authn, &Place::Policy).is_some());
    assert!(violation(&authn, &Place::Config).is_some());
    assert!(violation(&Place::Vocab("error".into()), &authn).is_some());
    assert!(violation(&Place::Pipeline, &authn).is_none());
    assert_eq!(
        crate_paths("use crate::stage::authn::Principal;\n#[cfg(test)]\nuse crate::policy;"),
        vec![(1, vec!["stage".into(), "authn".into(), "Principal".into()])]
    );
}
