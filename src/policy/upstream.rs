//! `[upstream]` and `[upstream.circuit_breaker]`: the origin the gateway forwards to, its
//! timeouts, retries and the breaker that stops calling it while it fails.

use std::sync::Arc;
use std::time::Duration;

use crate::config::files;
use crate::config::problems::KeyPath;
use crate::config::raw;
use crate::policy::compile::Ctx;
use crate::stage::circuit::BreakerSettings;
use crate::stage::proxy::UpstreamSettings;

/// `[upstream]`; `None` when its URL is unusable.
pub(super) fn compile(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    name: &str,
    raw: &raw::Upstream,
) -> Option<UpstreamSettings> {
    let url: Option<http::Uri> = raw
        .url
        .parse()
        .map_err(|_| ctx.bad(&at.k("url"), format!("`{}` is not a URL", raw.url)))
        .ok();
    let parts = url.and_then(|u| {
        let scheme = u.scheme_str().unwrap_or("");
        if scheme != "http" && scheme != "https" {
            ctx.bad(&at.k("url"), "the upstream URL must be http:// or https://");
            return None;
        }
        if u.query().is_some() {
            ctx.bad(
                &at.k("url"),
                "the upstream URL must not have a query string",
            );
            return None;
        }
        let authority = u.authority()?.as_str().to_owned();
        if authority.contains('@') {
            ctx.bad(&at.k("url"), "the upstream URL must not carry credentials");
            return None;
        }
        Some((
            scheme == "https",
            format!("{scheme}://{authority}"),
            u.path().trim_end_matches('/').to_owned(),
        ))
    });
    let ca = if raw.ca.is_empty() {
        None
    } else {
        files::certificates(&files::resolve(ctx.base, &raw.ca))
            .map_err(|e| ctx.bad(&at.k("ca"), e))
            .ok()
    };
    let connect_timeout = ctx.duration(
        &at.k("connect_timeout"),
        raw.connect_timeout.as_deref(),
        Duration::from_secs(1),
    );
    let timeout = ctx.duration(
        &at.k("timeout"),
        raw.timeout.as_deref(),
        Duration::from_secs(5),
    );
    let pool_idle_timeout = ctx.duration(
        &at.k("pool_idle_timeout"),
        raw.pool_idle_timeout.as_deref(),
        Duration::from_secs(90),
    );
    let retries = raw.retries.unwrap_or(1);
    if retries > 5 {
        ctx.bad(
            &at.k("retries"),
            "at most 5 retries (more only adds load to a failing service)",
        );
    }
    let retry_budget = raw.retry_budget.unwrap_or(0.2);
    if !(0.0..=1.0).contains(&retry_budget) {
        ctx.bad(
            &at.k("retry_budget"),
            "must be between 0 and 1 (a share of requests)",
        );
    }
    let mut breaker = breaker(ctx, &at.k("circuit_breaker"), raw.circuit_breaker.as_ref());
    breaker.upstream = Arc::from(name);
    let (https, origin, base_path) = parts?;
    Some(UpstreamSettings {
        origin,
        base_path,
        https,
        ca,
        connect_timeout,
        timeout,
        retries: retries.min(5),
        retry_budget,
        pool_idle_per_host: raw.pool_idle_per_host.unwrap_or(64) as usize,
        pool_idle_timeout,
        pools: 1,
        forward_identity: raw.forward_identity,
        expose_errors: raw.expose_errors,
        breaker,
    })
}

/// `[upstreams.NAME]`, each compiled like `[upstream]`. Returns every declared name after
/// `"default"` (so routes can be checked against them even when one failed) and the settings
/// of those that compiled.
pub(super) fn compile_named(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    raw: &indexmap::IndexMap<String, Option<raw::Upstream>>,
) -> (Vec<Arc<str>>, Vec<Option<UpstreamSettings>>) {
    let mut names = vec![Arc::from(DEFAULT_NAME)];
    let mut settings = Vec::new();
    for (name, upstream) in raw {
        let at = at.k(name);
        if name == DEFAULT_NAME {
            ctx.bad(&at, "`default` is the name of [upstream]; choose another");
        } else if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        {
            ctx.bad(
                &at,
                "upstream names may hold only letters, digits, `_`, `-` and `.`",
            );
        }
        names.push(Arc::from(name.as_str()));
        settings.push(upstream.as_ref().and_then(|u| compile(ctx, &at, name, u)));
    }
    (names, settings)
}

/// The name routes give `[upstream]`.
pub const DEFAULT_NAME: &str = "default";

/// `[upstream.circuit_breaker]`; absent, the defaults.
fn breaker(ctx: &mut Ctx<'_>, at: &KeyPath, raw: Option<&raw::CircuitBreaker>) -> BreakerSettings {
    let d = BreakerSettings::default();
    let Some(raw) = raw else { return d };
    let failure_rate = raw.failure_rate.unwrap_or(d.failure_rate);
    if !(failure_rate > 0.0 && failure_rate <= 1.0) {
        ctx.bad(
            &at.k("failure_rate"),
            "must be greater than 0 and at most 1",
        );
    }
    let failure_statuses = raw.failure_statuses.clone().unwrap_or(d.failure_statuses);
    for (i, s) in failure_statuses.iter().enumerate() {
        if !(100..=599).contains(s) {
            ctx.bad(
                &at.k("failure_statuses").i(i),
                format!("{s} is not an HTTP status"),
            );
        }
    }
    BreakerSettings {
        consecutive_failures: ctx.positive(
            &at.k("consecutive_failures"),
            raw.consecutive_failures,
            d.consecutive_failures,
        ),
        failure_rate,
        window: ctx.duration(&at.k("window"), raw.window.as_deref(), d.window),
        min_requests: ctx.positive(&at.k("min_requests"), raw.min_requests, d.min_requests),
        open_for: ctx.duration(&at.k("open_for"), raw.open_for.as_deref(), d.open_for),
        half_open_probes: ctx.positive(
            &at.k("half_open_probes"),
            raw.half_open_probes,
            d.half_open_probes,
        ),
        failure_statuses,
        upstream: Arc::from(DEFAULT_NAME),
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::fixtures::check;

    #[test]
    fn bad_upstream_values_are_reported_at_their_keys() {
        check(&[
            (
                "[upstream]\nurl = \"ftp://127.0.0.1\"\n",
                &["2:7: the upstream URL must be http:// or https://"],
            ),
            (
                "[upstream]\nurl = \"http://127.0.0.1/?a=1\"\n",
                &["2:7: the upstream URL must not have a query string"],
            ),
            (
                "[upstream]\nurl = \"http://user:pw@127.0.0.1\"\n",
                &["2:7: the upstream URL must not carry credentials"],
            ),
            (
                "[upstream]\nurl = \"not a url\"\n",
                &["2:7: `not a url` is not a URL"],
            ),
            (
                r#"[upstream]
url = "http://127.0.0.1:9000"
ca = "ca.pem"
connect_timeout = "1"
timeout = "0"
pool_idle_timeout = "forever"
retries = 6
retry_budget = 1.5
"#,
                &[
                    "3:6: /nonexistent-ordergate/ca.pem: No such file or directory (os error 2)",
                    "4:19: duration `1` needs a unit (ms, s, m, h, d)",
                    "5:11: duration `0` needs a unit (ms, s, m, h, d)",
                    "6:21: duration `forever` must start with a whole number",
                    "7:11: at most 5 retries (more only adds load to a failing service)",
                    "8:16: must be between 0 and 1 (a share of requests)",
                ],
            ),
            (
                r#"[upstream]
url = "http://127.0.0.1:9000"
[upstream.circuit_breaker]
consecutive_failures = 0
failure_rate = 0.0
window = "10"
min_requests = 0
open_for = "x"
half_open_probes = 0
failure_statuses = [500, 99, 600]
"#,
                &[
                    "4:24: must be at least 1",
                    "5:16: must be greater than 0 and at most 1",
                    "6:10: duration `10` needs a unit (ms, s, m, h, d)",
                    "7:16: must be at least 1",
                    "8:12: duration `x` must start with a whole number",
                    "9:20: must be at least 1",
                    "10:26: 99 is not an HTTP status",
                    "10:30: 600 is not an HTTP status",
                ],
            ),
            (
                r#"[upstream]
url = "http://127.0.0.1:9000"
retry_budget = -0.1
[upstream.circuit_breaker]
failure_rate = 1.5
"#,
                &[
                    "3:16: must be between 0 and 1 (a share of requests)",
                    "5:16: must be greater than 0 and at most 1",
                ],
            ),
        ]);
    }
}
