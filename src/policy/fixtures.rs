//! Test fixtures for the section compilers: a small policy that compiles, and the problems of a
//! policy that puts one section of the test's own first, as `LINE:COL: message` lines. Putting
//! the section under test first makes its line numbers those of the fixture text itself.

use std::path::Path;

/// The base policy, section by section: `(header, text)`.
const BASE: &[(&str, &str)] = &[
    (
        "server",
        "[server]\nlisten = \"127.0.0.1:8080\"\ninsecure_plaintext = true\n",
    ),
    ("upstream", "[upstream]\nurl = \"http://127.0.0.1:9000\"\n"),
    (
        "routes",
        "[[routes]]\nid = \"orders.get\"\nmethod = \"GET\"\npath = \"/orders/{id}\"\n\
         require_scopes = [\"orders:read\"]\n[routes.params.id]\ntype = \"string\"\n",
    ),
    ("audit", "[audit]\npath = \"-\"\n"),
];

/// True when `text` writes section `name` (a `[name]`, `[[name]]` or `[name.…]` header).
fn writes(text: &str, name: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim_start_matches('[');
        l.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with(']') || rest.starts_with('.'))
    })
}

/// `first` followed by the base sections it does not write.
pub(super) fn policy(first: &str) -> String {
    let mut text = first.to_owned();
    for (name, section) in BASE {
        if !writes(first, name) {
            text.push('\n');
            text.push_str(section);
        }
    }
    text
}

/// The problems of [`policy`]`(first)` as if read from `dir/p.toml`, one `LINE:COL: message`
/// per line (empty when it compiles).
pub(super) fn problems_in(dir: &Path, first: &str) -> String {
    exact_problems_in(dir, &policy(first))
}

/// The problems of exactly `text`, read as `dir/p.toml`, one `LINE:COL: message` per line.
pub(super) fn exact_problems_in(dir: &Path, text: &str) -> String {
    let path = dir.join("p.toml");
    match super::load_str(&path, text) {
        Ok(_) => String::new(),
        Err(problems) => problems
            .iter()
            .map(|p| format!("{}:{}: {}", p.line, p.col, p.message))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// The compiled [`policy`]`(first)`, read as `dir/p.toml`; panics with the problems.
pub(super) fn compiled(dir: &Path, first: &str) -> super::Policy {
    match super::load_str(&dir.join("p.toml"), &policy(first)) {
        Ok(policy) => policy,
        Err(problems) => panic!("{problems:#?}"),
    }
}

/// [`problems_in`] a directory that does not exist: every file the policy names is missing.
pub(super) fn problems(first: &str) -> String {
    problems_in(Path::new("/nonexistent-ordergate"), first)
}

/// Checks a table of `(section text, every expected problem in file order)`, naming the
/// failing row.
pub(super) fn check(cases: &[(&str, &[&str])]) {
    for (n, (first, expected)) in cases.iter().enumerate() {
        let got = problems(first);
        assert_eq!(got, expected.join("\n"), "case {n}:\n{first}");
    }
}

#[test]
fn the_base_policy_compiles() {
    assert_eq!(problems(""), "");
}
