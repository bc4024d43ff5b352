//! Raw policy → [`Policy`]: the driver that compiles each section in order (one module per
//! section beside this one) and the context they share. Every check reports its problem at the
//! key it concerns and carries on, so `ordergate check` lists everything wrong at once. Files the
//! policy names are read and parsed here, so a reload that would fail on them is refused before
//! anything is swapped.

use std::path::Path;
use std::time::Duration;

use http::Method;

use crate::config::choice::Choice;
use crate::config::problems::{KeyPath, Problems};
use crate::config::raw;
use crate::policy::{
    Policy, abuse, audit, auth, events, rate_limits, roles, routes, server, signatures, upstream,
    volume,
};
use crate::stage::route::{PathTemplate, RouteTable};
use crate::vocab::scopes::ScopeRegistry;
use crate::vocab::units::{parse_duration, parse_size};

/// Compiling context: where files are, and what is wrong so far.
pub(super) struct Ctx<'a> {
    /// The policy file's directory: relative file names resolve here.
    pub(super) base: &'a Path,
    pub(super) problems: &'a mut Problems,
}

impl Ctx<'_> {
    pub(super) fn bad(&mut self, at: &KeyPath, message: impl Into<String>) {
        self.problems.at(at, message);
    }

    pub(super) fn warn(&mut self, at: &KeyPath, message: impl Into<String>) {
        self.problems.warn(at, message);
    }

    pub(super) fn duration(
        &mut self,
        at: &KeyPath,
        value: Option<&str>,
        default: Duration,
    ) -> Duration {
        match value.map(parse_duration) {
            None => default,
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                self.bad(at, e);
                default
            }
        }
    }

    pub(super) fn size(&mut self, at: &KeyPath, value: Option<&str>, default: u64) -> u64 {
        match value.map(parse_size) {
            None => default,
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                self.bad(at, e);
                default
            }
        }
    }

    /// A key with fixed choices: `default` when absent; `None` when the choice is unknown, after
    /// reporting `refusal(text)` at `at` (the message lists the choices).
    pub(super) fn choice<T: Copy>(
        &mut self,
        at: &KeyPath,
        value: Option<&Choice<T>>,
        default: T,
        refusal: impl FnOnce(&str) -> String,
    ) -> Option<T> {
        match value {
            None => Some(default),
            Some(Choice::Known(choice)) => Some(*choice),
            Some(Choice::Unknown(text)) => {
                self.bad(at, refusal(text));
                None
            }
        }
    }

    pub(super) fn positive(&mut self, at: &KeyPath, value: Option<u32>, default: u32) -> u32 {
        match value {
            Some(0) => {
                self.bad(at, "must be at least 1");
                default
            }
            Some(v) => v,
            None => default,
        }
    }
}

/// Compiles the raw policy. `None` when anything is wrong (see `problems`).
pub fn compile(raw: raw::Policy, source: &Path, problems: &mut Problems) -> Option<Policy> {
    let base = source.parent().unwrap_or(Path::new("."));
    let mut ctx = Ctx { base, problems };
    let root = KeyPath::root();
    let mut scopes = ScopeRegistry::default();

    let server = match &raw.server {
        Some(s) => server::compile(&mut ctx, &root.k("server"), s),
        None => {
            ctx.bad(&root, "missing section [server]");
            None
        }
    };
    let upstream = match &raw.upstream {
        Some(u) => upstream::compile(&mut ctx, &root.k("upstream"), upstream::DEFAULT_NAME, u),
        None => {
            ctx.bad(&root, "missing section [upstream]");
            None
        }
    };
    let (upstream_names, named_upstreams) =
        upstream::compile_named(&mut ctx, &root.k("upstreams"), &raw.upstreams);
    // Under per-core threading every serving thread gets a connection pool of its own.
    let pools = server
        .as_ref()
        .map_or(1, crate::policy::ServerSettings::upstream_pools);
    let upstream = upstream.map(|u| u.with_pools(pools));
    let named_upstreams: Vec<_> = named_upstreams
        .into_iter()
        .map(|u| u.map(|u| u.with_pools(pools)))
        .collect();
    let roles = roles::compile(&mut ctx, &root.k("roles"), &raw.roles, &mut scopes);
    let client_auth = server
        .as_ref()
        .and_then(|s| s.tls.as_ref())
        .map(|t| t.client_auth);
    let auth = auth::compile(
        &mut ctx,
        &root.k("auth"),
        &raw.auth,
        &roles,
        &mut scopes,
        client_auth,
    );
    let server_max = server.as_ref().map_or(64 * 1024, |s| s.max_request_body);
    let routes = routes::compile(
        &mut ctx,
        &root.k("routes"),
        &raw.routes,
        &mut scopes,
        server_max,
        &upstream_names,
    );
    let rate_limits =
        rate_limits::compile(&mut ctx, &root.k("rate_limits"), raw.rate_limits.as_ref());
    let abuse = abuse::compile(&mut ctx, &root.k("abuse"), raw.abuse.as_ref());
    let volume = volume::compile(
        &mut ctx,
        &root.k("abuse"),
        raw.abuse.as_ref(),
        &routes,
        abuse.freeze_for,
    );
    let events = events::compile(&mut ctx, &root.k("events"), raw.events.as_ref());
    let mut signatures = signatures::compile(&mut ctx, &root.k("auth"), &raw);
    if let Some(crate::stage::rate_limit::Backend::Redis { timeout, .. }) =
        rate_limits.as_ref().map(|r| &r.backend)
    {
        signatures.fleet_propagation = crate::stage::signature::fleet::propagation(*timeout);
    }
    let audit = match &raw.audit {
        Some(a) => Some(audit::compile(&mut ctx, &root.k("audit"), a)),
        None => {
            ctx.bad(
                &root,
                "missing section [audit]: every request must leave a record",
            );
            None
        }
    };
    if raw.routes.is_empty() {
        ctx.bad(&root, "no [[routes]]: the gateway would refuse everything");
    }
    let table = {
        let shapes: Vec<(Method, PathTemplate)> = routes
            .iter()
            .map(|r| (r.method.clone(), r.path.clone()))
            .collect();
        match RouteTable::build(&shapes) {
            Ok(t) => Some(t),
            Err((index, message)) => {
                ctx.bad(&root.k("routes").i(index).k("path"), message);
                None
            }
        }
    };
    if !ctx.problems.is_empty() || routes.len() != raw.routes.len() {
        return None;
    }
    let upstream = upstream?;
    let mut upstreams = vec![(upstream_names[0].clone(), upstream.clone())];
    for (name, settings) in upstream_names[1..].iter().zip(named_upstreams) {
        upstreams.push((name.clone(), settings?));
    }
    Some(Policy {
        source: source.to_path_buf(),
        server: server?,
        upstream,
        upstreams,
        auth,
        signatures,
        roles,
        scopes,
        routes,
        table: table?,
        rate_limits: rate_limits?,
        abuse,
        audit: audit?,
        warnings: Vec::new(),
        volume,
        events,
        sha256: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::policy::fixtures::{exact_problems_in, problems};

    #[test]
    fn missing_sections_are_reported_at_the_top() {
        assert_eq!(
            exact_problems_in(Path::new("/nonexistent-ordergate"), "[auth]\n"),
            [
                "1:1: missing section [audit]: every request must leave a record",
                "1:1: missing section [server]",
                "1:1: missing section [upstream]",
                "1:1: no [[routes]]: the gateway would refuse everything",
            ]
            .join("\n")
        );
    }

    /// Two templates that match the same paths are refused at the later one's `path`.
    #[test]
    fn routes_that_clash_are_reported_at_the_later_path() {
        let first = r#"[[routes]]
id = "a"
method = "GET"
path = "/a/{x}"
require_scopes = ["s"]
[routes.params.x]
type = "string"
[[routes]]
id = "b"
method = "GET"
path = "/a/{y}"
require_scopes = ["s"]
[routes.params.y]
type = "string"
"#;
        assert_eq!(
            problems(first),
            "11:8: path `/a/{y}` conflicts with another route: Insertion failed due to conflict \
             with previously registered route: /a/{x}"
        );
    }
}
