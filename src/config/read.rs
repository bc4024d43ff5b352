//! Reads the policy text into the raw model section by section, so that one broken route or key
//! does not hide the problems of the others.

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::problems::Problems;
use super::raw;

/// Parses `text`; returns the raw policy (sections that failed are `None`) and the spanned
/// document used later to locate compile problems. `None` when the TOML itself is malformed.
pub fn read<'t>(
    text: &'t str,
    problems: &mut Problems,
) -> Option<(raw::Policy, Spanned<DeTable<'t>>)> {
    let doc = match DeTable::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            problems.at_span(e.span().unwrap_or(0..0), e.message().trim().to_owned());
            return None;
        }
    };
    let mut policy = raw::Policy::default();
    for (key, value) in doc.get_ref().iter() {
        match key.get_ref().as_ref() {
            "server" => policy.server = take(value, problems),
            "upstream" => policy.upstream = take(value, problems),
            "upstreams" => {
                if let Some(table) = table(value, problems) {
                    for (name, upstream) in table {
                        let upstream = take(upstream, problems);
                        policy
                            .upstreams
                            .insert(name.get_ref().to_string(), upstream);
                    }
                }
            }
            "auth" => policy.auth = read_auth(value, problems),
            "roles" => {
                if let Some(table) = table(value, problems) {
                    for (name, role) in table {
                        let role = take(role, problems);
                        policy.roles.insert(name.get_ref().to_string(), role);
                    }
                }
            }
            "routes" => policy.routes = routes(value, problems),
            "rate_limits" => policy.rate_limits = take(value, problems),
            "abuse" => policy.abuse = take(value, problems),
            "audit" => policy.audit = take(value, problems),
            "events" => policy.events = take(value, problems),
            other => problems.at_span(
                key.span(),
                format!(
                    "unknown section `{other}`, expected one of `server`, `upstream`, `upstreams`, \
                     `auth`, `roles`, `routes`, `rate_limits`, `abuse`, `audit`, `events`"
                ),
            ),
        }
    }
    Some((policy, doc))
}

/// Reads `[[routes]]`. A route that fails is read again part by part (each parameter,
/// constraint and view), so that problems after the first one in that route are reported too.
fn routes(value: &Spanned<DeValue<'_>>, problems: &mut Problems) -> Vec<Option<raw::Route>> {
    let Some(items) = value.get_ref().as_array() else {
        return each(value, problems);
    };
    items
        .iter()
        .map(|item| {
            let route = take::<raw::Route>(item, problems);
            if route.is_none()
                && let Some(table) = item.get_ref().as_table()
            {
                for (key, part) in table {
                    match key.get_ref().as_ref() {
                        "params" | "query" => {
                            for (_, param) in part.get_ref().as_table().into_iter().flatten() {
                                let _ = take::<raw::Param>(param, problems);
                            }
                        }
                        "constraints" => {
                            let _ = each::<raw::Constraint>(part, problems);
                        }
                        "response" => {
                            let views = part.get_ref().as_table().and_then(|t| t.get("views"));
                            if let Some(views) = views {
                                let _ = each::<raw::View>(views, problems);
                            }
                            let owners = part.get_ref().as_table().and_then(|t| t.get("owners"));
                            if let Some(owners) = owners {
                                let _ = each::<raw::AnswerOwner>(owners, problems);
                            }
                        }
                        _ => {}
                    }
                }
            }
            route
        })
        .collect()
}

fn read_auth(value: &Spanned<DeValue<'_>>, problems: &mut Problems) -> raw::Auth {
    let mut auth = raw::Auth::default();
    let Some(t) = table(value, problems) else {
        return auth;
    };
    for (key, value) in t {
        match key.get_ref().as_ref() {
            "jwt" => auth.jwt = take(value, problems),
            "api_keys" => {
                let mut api_keys = raw::ApiKeys::default();
                for (key, value) in table(value, problems).into_iter().flatten() {
                    match key.get_ref().as_ref() {
                        "header" => api_keys.header = take(value, problems),
                        "keys" => api_keys.keys = each(value, problems),
                        other => unknown(problems, key, other, "`header`, `keys`"),
                    }
                }
                auth.api_keys = Some(api_keys);
            }
            "mtls" => {
                for (key, value) in table(value, problems).into_iter().flatten() {
                    match key.get_ref().as_ref() {
                        "clients" => auth.mtls_clients = each(value, problems),
                        other => unknown(problems, key, other, "`clients`"),
                    }
                }
            }
            "signatures" => auth.signatures = take(value, problems),
            other => unknown(
                problems,
                key,
                other,
                "`jwt`, `api_keys`, `mtls`, `signatures`",
            ),
        }
    }
    auth
}

fn unknown(
    problems: &mut Problems,
    key: &Spanned<toml::de::DeString<'_>>,
    name: &str,
    expected: &str,
) {
    problems.at_span(
        key.span(),
        format!("unknown field `{name}`, expected one of {expected}"),
    );
}

fn table<'a, 't>(
    value: &'a Spanned<DeValue<'t>>,
    problems: &mut Problems,
) -> Option<&'a DeTable<'t>> {
    let t = value.get_ref().as_table();
    if t.is_none() {
        problems.at_span(
            value.span(),
            format!("expected a table, found {}", value.get_ref().type_str()),
        );
    }
    t
}

/// Reads an array of tables element by element.
fn each<T: DeserializeOwned>(
    value: &Spanned<DeValue<'_>>,
    problems: &mut Problems,
) -> Vec<Option<T>> {
    match value.get_ref().as_array() {
        Some(items) => items.iter().map(|item| take(item, problems)).collect(),
        None => {
            problems.at_span(
                value.span(),
                format!("expected an array, found {}", value.get_ref().type_str()),
            );
            Vec::new()
        }
    }
}

fn take<T: DeserializeOwned>(value: &Spanned<DeValue<'_>>, problems: &mut Problems) -> Option<T> {
    match T::deserialize(ValueDeserializer::from(value.clone())) {
        Ok(v) => Some(v),
        Err(e) => {
            problems.at_span(
                e.span().unwrap_or_else(|| value.span()),
                e.message().trim().to_owned(),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn problems_of(text: &str) -> Vec<String> {
        let mut problems = Problems::default();
        let doc = read(text, &mut problems).map(|(_, doc)| doc);
        problems
            .resolve(Path::new("p.toml"), text, doc.as_ref())
            .into_iter()
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn every_broken_section_is_reported_with_its_location() {
        let text = "[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n\n[[routes]]\nid = \"a\"\nmethod = \"GET\"\npath = \"/a\"\nrequire_scope = [\"x\"]\n\n[[routes]]\nid = \"b\"\n\n[bogus]\n";
        let out = problems_of(text);
        assert_eq!(out.len(), 4, "{out:#?}");
        assert!(
            out[0].starts_with("p.toml:3:1: unknown field `lisen`"),
            "{}",
            out[0]
        );
        assert!(
            out[1].starts_with("p.toml:9:1: unknown field `require_scope`"),
            "{}",
            out[1]
        );
        assert!(
            out[2].starts_with("p.toml:11:1: missing field `method`"),
            "{}",
            out[2]
        );
        assert!(
            out[3].starts_with("p.toml:14:2: unknown section `bogus`"),
            "{}",
            out[3]
        );
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let out = problems_of("[server]\nlisten = \n");
        assert_eq!(out.len(), 1);
        assert!(out[0].starts_with("p.toml:2:"), "{}", out[0]);
    }
}
