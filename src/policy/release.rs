//! A route's gray-release keys (CONTRACT §10): `upstream` (a named upstream, default
//! `"default"`), `canary = { upstream, percent, principals }` with `[routes.canary_guard]`, and
//! `[routes.stale_if_error]`. A canary is never unguarded: without `[routes.canary_guard]` it gets
//! the contract's example guard (5m, 200, 2.0, 1.5).

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::config::problems::KeyPath;
use crate::config::raw;
use crate::policy::compile::Ctx;
use crate::stage::canary::{CanarySettings, GuardSettings, UpstreamRef, threshold};
use crate::stage::stale::StaleSettings;

/// What a route's release keys compile to.
pub(super) struct Release {
    pub(super) upstream: UpstreamRef,
    pub(super) canary: Option<CanarySettings>,
    pub(super) stale: Option<StaleSettings>,
    pub(super) response_digest: [u8; 32],
}

/// Finds a named upstream; `names[0]` is `"default"`.
fn resolve(ctx: &mut Ctx<'_>, at: &KeyPath, names: &[Arc<str>], name: &str) -> UpstreamRef {
    match names.iter().position(|n| **n == *name) {
        Some(i) => UpstreamRef(i),
        None => {
            let known: Vec<&str> = names.iter().map(|n| &**n).collect();
            ctx.bad(
                at,
                format!("unknown upstream `{name}` (declared: {})", known.join(", ")),
            );
            UpstreamRef::DEFAULT
        }
    }
}

fn ratio(ctx: &mut Ctx<'_>, at: &KeyPath, value: Option<raw::Number>, default: f64) -> f64 {
    let Some(v) = value.map(raw::Number::as_f64) else {
        return default;
    };
    if !(v.is_finite() && v > 0.0) {
        ctx.bad(at, "must be a number greater than 0");
        return default;
    }
    v
}

pub(super) fn compile(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    raw: &raw::Route,
    names: &[Arc<str>],
) -> Release {
    let upstream = raw.upstream.as_deref().map_or(UpstreamRef::DEFAULT, |n| {
        resolve(ctx, &at.k("upstream"), names, n)
    });
    let canary = raw.canary.as_ref().map(|c| {
        let at_c = at.k("canary");
        let target = resolve(ctx, &at_c.k("upstream"), names, &c.upstream);
        if target == upstream && names.iter().any(|n| **n == *c.upstream) {
            ctx.bad(
                &at_c.k("upstream"),
                "the canary must name another upstream than the route's own",
            );
        }
        let percent = c.percent.map_or(0.0, raw::Number::as_f64);
        if !(0.0..=100.0).contains(&percent) {
            ctx.bad(&at_c.k("percent"), "must be between 0 and 100");
        }
        for (i, p) in c.principals.iter().enumerate() {
            if p.is_empty() {
                ctx.bad(
                    &at_c.k("principals").i(i),
                    "a principal id must not be empty",
                );
            }
        }
        CanarySettings {
            upstream: target,
            threshold: threshold(percent),
            principals: c.principals.iter().map(|p| Arc::from(p.as_str())).collect(),
            guard: guard(ctx, &at.k("canary_guard"), raw.canary_guard.as_ref()),
        }
    });
    if raw.canary.is_none() && raw.canary_guard.is_some() {
        ctx.bad(
            &at.k("canary_guard"),
            "`canary_guard` guards a `canary`, and this route has none",
        );
    }
    let stale = raw.stale_if_error.as_ref().map(|s| {
        let at = at.k("stale_if_error");
        let d = StaleSettings::default();
        let max_age = ctx.duration(&at.k("max_age"), s.max_age.as_deref(), d.max_age);
        if max_age.is_zero() {
            ctx.bad(&at.k("max_age"), "must be longer than 0");
        }
        let max_bytes = ctx.size(&at.k("max_bytes"), s.max_bytes.as_deref(), d.max_bytes);
        if max_bytes == 0 {
            ctx.bad(&at.k("max_bytes"), "must be at least 1 byte");
        }
        StaleSettings {
            max_age,
            max_entries: ctx.positive(&at.k("max_entries"), s.max_entries, d.max_entries),
            max_bytes,
        }
    });
    // The whole `[routes.response]`: views, and the owner rules and count the kept answers
    // passed when they were kept. A reload that adds or narrows an owner rule must not leave
    // answers kept under the looser one to be served stale.
    let response = raw.response.as_ref();
    Release {
        upstream,
        canary,
        stale,
        response_digest: Sha256::digest(format!("{response:?}").as_bytes()).into(),
    }
}

fn guard(ctx: &mut Ctx<'_>, at: &KeyPath, raw: Option<&raw::CanaryGuard>) -> GuardSettings {
    let d = GuardSettings::default();
    let Some(raw) = raw else { return d };
    let window = ctx.duration(&at.k("window"), raw.window.as_deref(), d.window);
    if window < Duration::from_secs(1) {
        ctx.bad(&at.k("window"), "must be at least 1s");
    }
    GuardSettings {
        window,
        min_requests: ctx.positive(&at.k("min_requests"), raw.min_requests, d.min_requests),
        max_error_ratio: ratio(
            ctx,
            &at.k("max_error_ratio"),
            raw.max_error_ratio,
            d.max_error_ratio,
        ),
        max_p99_ratio: ratio(
            ctx,
            &at.k("max_p99_ratio"),
            raw.max_p99_ratio,
            d.max_p99_ratio,
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::policy::fixtures::{check, compiled};
    use crate::stage::canary::UpstreamRef;

    const ROUTE: &str = "[[routes]]\nid = \"orders.get\"\nmethod = \"GET\"\npath = \"/orders/{id}\"\n\
                         require_scopes = [\"orders:read\"]\n";

    #[test]
    fn the_kept_answers_digest_covers_views_owners_and_count() {
        let base = format!(
            "{ROUTE}[routes.params.id]\ntype = \"string\"\n\
             [routes.stale_if_error]\nmax_age = \"1m\"\n"
        );
        let digest = |response: &str| {
            let p = compiled(
                Path::new("/nonexistent-ordergate"),
                &format!("{base}{response}"),
            );
            p.routes[0].response_digest
        };
        let plain = digest("");
        let owned = digest(
            "[[routes.response.owners]]\nfield = \"customer_id\"\nclaim = \"customer_id\"\n",
        );
        let bypass = digest(
            "[[routes.response.owners]]\nfield = \"customer_id\"\nclaim = \"customer_id\"\n\
             bypass_scopes = [\"orders:read\"]\n",
        );
        assert_ne!(plain, owned, "an owner rule added");
        assert_ne!(owned, bypass, "an owner rule's bypass changed");
        assert_eq!(plain, digest(""), "the same policy, the same digest");
    }

    #[test]
    fn release_keys_compile() {
        let text = format!(
            "{ROUTE}upstream = \"default\"\n\
             canary = {{ upstream = \"orders-v2\", percent = 5.0, principals = [\"erp-sync\"] }}\n\
             [routes.params.id]\ntype = \"string\"\n\
             [routes.canary_guard]\nwindow = \"1m\"\nmin_requests = 50\nmax_error_ratio = 3\n\
             [routes.stale_if_error]\nmax_age = \"1m\"\nmax_entries = 10\nmax_bytes = \"1MiB\"\n\
             [upstreams.orders-v2]\nurl = \"http://127.0.0.1:9001\"\ntimeout = \"2s\"\n"
        );
        let p = compiled(Path::new("/nonexistent-ordergate"), &text);
        assert_eq!(&*p.upstreams[1].0, "orders-v2");
        assert_eq!(p.upstreams[1].1.timeout, std::time::Duration::from_secs(2));
        let r = &p.routes[0];
        assert_eq!(r.upstream, UpstreamRef::DEFAULT);
        let c = r.canary.as_ref().unwrap();
        assert_eq!((c.upstream, c.threshold), (UpstreamRef(1), 500));
        assert_eq!(c.guard.min_requests, 50);
        assert_eq!(c.guard.max_error_ratio, 3.0);
        assert_eq!(c.guard.max_p99_ratio, 1.5, "the default");
        assert_eq!(r.stale.as_ref().unwrap().max_entries, 10);
    }

    #[test]
    fn bad_release_keys_are_reported_at_their_keys() {
        check(&[
            (
                r#"[[routes]]
id = "orders.get"
method = "GET"
path = "/orders"
require_scopes = ["orders:read"]
upstream = "nowhere"
canary = { upstream = "ghost", percent = 101, principals = [""] }
[routes.canary_guard]
window = "10ms"
min_requests = 0
max_error_ratio = -1
max_p99_ratio = 0
[routes.stale_if_error]
max_age = "0s"
max_entries = 0
max_bytes = "0"
"#,
                &[
                    "6:12: unknown upstream `nowhere` (declared: default)",
                    "7:23: unknown upstream `ghost` (declared: default)",
                    "7:42: must be between 0 and 100",
                    "7:61: a principal id must not be empty",
                    "9:10: must be at least 1s",
                    "10:16: must be at least 1",
                    "11:19: must be a number greater than 0",
                    "12:17: must be a number greater than 0",
                    "14:11: must be longer than 0",
                    "15:15: must be at least 1",
                    "16:13: must be at least 1 byte",
                ],
            ),
            (
                r#"[[routes]]
id = "orders.get"
method = "GET"
path = "/orders"
require_scopes = ["orders:read"]
upstream = "v2"
canary = { upstream = "v2" }
[upstreams.v2]
url = "http://127.0.0.1:9001"
[upstreams.default]
url = "http://127.0.0.1:9002"
[upstreams."bad name"]
url = "ftp://x"
"#,
                &[
                    "7:23: the canary must name another upstream than the route's own",
                    "10:1: `default` is the name of [upstream]; choose another",
                    "12:1: upstream names may hold only letters, digits, `_`, `-` and `.`",
                    "13:7: the upstream URL must be http:// or https://",
                ],
            ),
            (
                r#"[[routes]]
id = "orders.get"
method = "GET"
path = "/orders"
require_scopes = ["orders:read"]
[routes.canary_guard]
min_requests = 5
"#,
                &["6:1: `canary_guard` guards a `canary`, and this route has none"],
            ),
        ]);
    }
}
