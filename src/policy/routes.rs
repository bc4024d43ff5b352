//! `[[routes]]`: method, path templates, parameters (`params.rs` compiles each schema),
//! constraints, the scopes and owner binding stage 6 demands, a per-route bucket and the response
//! views.

use std::collections::HashSet;
use std::sync::Arc;

use http::Method;

use crate::config::choice::Choice;
use crate::config::problems::KeyPath;
use crate::config::raw;
use crate::policy::Route;
use crate::policy::compile::Ctx;
use crate::policy::rate_limits::bucket;
use crate::stage::authz::{Access, OwnerBinding, OwnerParam};
use crate::stage::owners::{AnswerRules, OwnerRule};
use crate::stage::route::PathTemplate;
use crate::stage::validate::{Constraint, RouteParams};
use crate::stage::views::watch::{MAX_OWNER_ENTRIES, Watch};
use crate::stage::views::{CompiledView, FieldPath};
use crate::vocab::mask::Masker;
use crate::vocab::scopes::ScopeRegistry;

/// Every route that compiles; ids must be unique and outside the reserved `admin.` prefix.
pub(super) fn compile(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    raw: &[Option<raw::Route>],
    scopes: &mut ScopeRegistry,
    server_max: u64,
    upstreams: &[Arc<str>],
) -> Vec<Route> {
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    for (i, route) in raw.iter().enumerate() {
        let Some(route) = route else { continue };
        let at = at.i(i);
        if route.id.is_empty() || route.id.starts_with("admin.") || !ids.insert(route.id.clone()) {
            ctx.bad(
                &at.k("id"),
                format!("route id `{}` is empty, reserved or used twice", route.id),
            );
        }
        if let Some(r) = self::route(ctx, &at, route, scopes, server_max, upstreams) {
            out.push(r);
        }
    }
    out
}

/// One route; `None` when anything in it is wrong (its problems are reported).
fn route(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    raw: &raw::Route,
    scopes: &mut ScopeRegistry,
    server_max: u64,
    upstreams: &[Arc<str>],
) -> Option<Route> {
    let before = ctx.problems.len();
    let method = match Method::from_bytes(raw.method.as_bytes()) {
        Ok(m) if raw.method.bytes().all(|b| b.is_ascii_uppercase()) => Some(m),
        _ => {
            ctx.bad(
                &at.k("method"),
                format!(
                    "`{}` is not an HTTP method in capitals (e.g. GET)",
                    raw.method
                ),
            );
            None
        }
    };
    let body = super::body::compile(
        raw.body.as_ref(),
        method.as_ref(),
        server_max,
        at,
        ctx.problems,
    );
    let path = PathTemplate::parse(&raw.path)
        .map_err(|e| ctx.bad(&at.k("path"), e))
        .ok();
    let upstream_path = PathTemplate::parse(raw.upstream_path.as_deref().unwrap_or(&raw.path))
        .map_err(|e| ctx.bad(&at.k("upstream_path"), e))
        .ok();
    let path_names: Vec<Arc<str>> = path
        .as_ref()
        .map(|p| p.params().cloned().collect())
        .unwrap_or_default();
    if let Some(up) = &upstream_path {
        for name in up.params() {
            if !path_names.contains(name) {
                ctx.bad(
                    &at.k("upstream_path"),
                    format!("`{{{name}}}` is not a parameter of `path`"),
                );
            }
        }
    }
    let params = route_params(ctx, at, raw, &path_names);
    // Authorisation.
    let require_scopes = scopes.set_of(raw.require_scopes.iter().map(String::as_str));
    if raw.require_scopes.is_empty() {
        ctx.bad(
            &at.k("require_scopes"),
            "list at least one scope: routes are denied by default",
        );
    }
    let owner = raw
        .owner
        .as_ref()
        .map(|o| owner(ctx, &at.k("owner"), o, raw, &path_names, scopes));
    let rate_limit = raw
        .rate_limit
        .as_ref()
        .and_then(|b| bucket(ctx, &at.k("rate_limit"), format!("route:{}", raw.id), b));
    let views = views(ctx, at, raw, scopes);
    let answer = answer(ctx, &at.k("response"), raw.response.as_ref(), scopes);
    let allow_ips = super::ip_lists::compile(ctx, &at.k("allow_ips"), &raw.allow_ips);
    let release = super::release::compile(ctx, at, raw, upstreams);
    if ctx.problems.len() != before {
        return None;
    }
    Some(Route {
        id: Arc::from(raw.id.as_str()),
        method: method?,
        path: path?,
        upstream_path: upstream_path?,
        access: Access {
            require_scopes,
            owner,
            view_scopes: views.iter().map(|v| v.scope.clone()).collect(),
        },
        require_scope_names: raw.require_scopes.clone(),
        body,
        rate_limit,
        params,
        views,
        summary: raw.summary.clone(),
        allow_ips,
        answer,
        upstream: release.upstream,
        canary: release.canary,
        stale: release.stale,
        response_digest: release.response_digest,
        require_signature: raw.require_signature,
    })
}

/// `params`, `query`, `forward_params` and `constraints`: every path parameter has a schema,
/// every schema a path parameter, and constraints name date parameters of this route.
fn route_params(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    raw: &raw::Route,
    path_names: &[Arc<str>],
) -> RouteParams {
    let mut params = RouteParams::default();
    for name in path_names {
        match raw.params.get(&**name) {
            Some(p) => {
                if let Some(s) =
                    crate::policy::params::compile(name, p, &at.k("params").k(name), ctx.problems)
                {
                    params.path.push(s);
                }
            }
            None => ctx.bad(
                &at.k("path"),
                format!("path parameter `{name}` has no schema under [routes.params.{name}]"),
            ),
        }
    }
    for name in raw.params.keys() {
        if !path_names.iter().any(|n| **n == **name) {
            ctx.bad(
                &at.k("params").k(name),
                format!("`{name}` is not a parameter of `path`"),
            );
        }
    }
    for (name, p) in &raw.query {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        {
            ctx.bad(
                &at.k("query").k(name),
                "query parameter names may hold only letters, digits, `_`, `-` and `.`",
            );
        }
        if let Some(s) =
            crate::policy::params::compile(name, p, &at.k("query").k(name), ctx.problems)
        {
            params.query.push(s);
        }
    }
    for (from, to) in &raw.forward_params {
        if !path_names.iter().any(|n| **n == **from) {
            ctx.bad(
                &at.k("forward_params").k(from),
                format!("`{from}` is not a parameter of `path`"),
            );
        }
        if to.is_empty() || raw.query.contains_key(to) {
            ctx.bad(
                &at.k("forward_params").k(from),
                format!("`{to}` is empty or clashes with a query parameter"),
            );
        }
        params
            .forward_params
            .push((Arc::from(from.as_str()), Arc::from(to.as_str())));
    }
    for (i, c) in raw.constraints.iter().enumerate() {
        let at = at.k("constraints").i(i);
        match &c.kind {
            Choice::Known(raw::ConstraintKind::DateRange) => {}
            Choice::Unknown(other) => {
                ctx.bad(
                    &at.k("kind"),
                    format!("unknown constraint kind `{other}` (known: date_range)"),
                );
                continue;
            }
        }
        for (key, name) in [("from", &c.from), ("to", &c.to)] {
            let kind = raw
                .query
                .get(name)
                .or_else(|| raw.params.get(name))
                .map(|p| p.kind);
            match kind {
                Some(raw::ParamType::Date | raw::ParamType::Datetime) => {}
                Some(_) => ctx.bad(
                    &at.k(key),
                    format!("`{name}` must be a date or datetime parameter"),
                ),
                None => ctx.bad(
                    &at.k(key),
                    format!("`{name}` is not a parameter of this route"),
                ),
            }
        }
        params.constraints.push(Constraint::DateRange {
            from: Arc::from(c.from.as_str()),
            to: Arc::from(c.to.as_str()),
            max_days: c.max_days,
        });
    }
    params
}

/// `owner = { param, claim, bypass_scopes }`: the parameter must be a path parameter or a
/// required query parameter, so a caller cannot drop it to escape the binding.
fn owner(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    o: &raw::Owner,
    raw: &raw::Route,
    path_names: &[Arc<str>],
    scopes: &mut ScopeRegistry,
) -> OwnerBinding {
    let param = if path_names.iter().any(|n| **n == *o.param) {
        OwnerParam::Path(Arc::from(o.param.as_str()))
    } else if let Some(query) = raw.query.get(&o.param) {
        if !query.required {
            ctx.bad(
                &at.k("param"),
                format!("owner query parameter `{}` must be `required`", o.param),
            );
        }
        OwnerParam::Query(Arc::from(o.param.as_str()))
    } else {
        ctx.bad(
            &at.k("param"),
            format!("`{}` is neither a path nor a query parameter", o.param),
        );
        OwnerParam::Path(Arc::from(o.param.as_str()))
    };
    if o.claim.is_empty() {
        ctx.bad(&at.k("claim"), "`claim` must not be empty");
    }
    OwnerBinding {
        param,
        claim: Arc::from(o.claim.as_str()),
        bypass: scopes.set_of(o.bypass_scopes.iter().map(String::as_str)),
        bypass_names: o
            .bypass_scopes
            .iter()
            .map(|s| Arc::from(s.as_str()))
            .collect(),
    }
}

/// `[[routes.response.owners]]` and `[routes.response] count`: what the answer is checked and
/// counted by. Field paths are the views' (`a.b`, `list[].field`); an owner field names a value,
/// so `*` is refused there.
fn answer(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    raw: Option<&raw::Response>,
    scopes: &mut ScopeRegistry,
) -> AnswerRules {
    let Some(raw) = raw else {
        return AnswerRules::default();
    };
    if raw.owners.len() > MAX_OWNER_ENTRIES {
        ctx.bad(
            &at.k("owners"),
            format!("at most {MAX_OWNER_ENTRIES} owner entries"),
        );
    }
    let mut fields = Vec::new();
    let mut owners = Vec::new();
    for (i, o) in raw.owners.iter().enumerate() {
        let at = at.k("owners").i(i);
        match FieldPath::parse(&o.field) {
            Ok(_) if o.field == "*" => ctx.bad(
                &at.k("field"),
                "an owner `field` names one value (e.g. `customer.id`), not `*`",
            ),
            Ok(path) => fields.push(path),
            Err(e) => ctx.bad(&at.k("field"), e),
        }
        if o.claim.is_empty() {
            ctx.bad(&at.k("claim"), "`claim` must not be empty");
        }
        owners.push(OwnerRule {
            claim: Arc::from(o.claim.as_str()),
            bypass: scopes.set_of(o.bypass_scopes.iter().map(String::as_str)),
            field: Arc::from(o.field.as_str()),
            bypass_names: o
                .bypass_scopes
                .iter()
                .map(|s| Arc::from(s.as_str()))
                .collect(),
        });
    }
    let count = raw.count.as_ref().and_then(|c| {
        FieldPath::parse(c)
            .map_err(|e| ctx.bad(&at.k("count"), e))
            .ok()
    });
    AnswerRules {
        counts: count.is_some(),
        watch: Watch::new(&fields, count.as_ref()),
        owners,
    }
}

/// `[[routes.response.views]]`: what each scope may see of the response.
fn views(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    raw: &raw::Route,
    scopes: &mut ScopeRegistry,
) -> Vec<CompiledView> {
    let mut views = Vec::new();
    for (i, v) in raw.response.iter().flat_map(|r| &r.views).enumerate() {
        let at = at.k("response").k("views").i(i);
        let mut paths = |key: &str, list: &[String]| -> Vec<FieldPath> {
            list.iter()
                .enumerate()
                .filter_map(|(j, p)| {
                    FieldPath::parse(p)
                        .map_err(|e| ctx.bad(&at.k(key).i(j), e))
                        .ok()
                })
                .collect()
        };
        let allow = paths("allow", &v.allow);
        let deny = paths("deny", &v.deny);
        let mut mask = Vec::new();
        for (path, masker) in &v.mask {
            match (FieldPath::parse(path), Masker::parse(masker)) {
                (Ok(p), Ok(m)) => mask.push((p, m)),
                (Err(e), _) | (_, Err(e)) => ctx.bad(&at.k("mask").k(path), e),
            }
        }
        if v.allow.is_empty() {
            ctx.bad(
                &at.k("allow"),
                "a view must `allow` something (`[\"*\"]` for everything)",
            );
        }
        let scope = scopes.set_of([v.scope.as_str()]);
        views.push(CompiledView::new(
            Arc::from(v.scope.as_str()),
            scope,
            &allow,
            deny,
            mask,
        ));
    }
    views
}

#[cfg(test)]
mod tests {
    use crate::policy::fixtures::check;

    #[test]
    fn bad_route_shapes_are_reported_at_their_keys() {
        check(&[
            (
                r#"[[routes]]
id = "admin.orders"
method = "get"
path = "/orders/{id}"
upstream_path = "/v1/orders/{order}"
require_scopes = []
[routes.params.id]
type = "string"
[routes.params.extra]
type = "string"
"#,
                &[
                    "2:6: route id `admin.orders` is empty, reserved or used twice",
                    "3:10: `get` is not an HTTP method in capitals (e.g. GET)",
                    "5:17: `{order}` is not a parameter of `path`",
                    "6:18: list at least one scope: routes are denied by default",
                    "9:1: `extra` is not a parameter of `path`",
                ],
            ),
            (
                r#"[[routes]]
id = "a"
method = "GET"
path = "/orders/{id}"
require_scopes = ["orders:read"]
[[routes]]
id = "a"
method = "GET"
path = "orders"
require_scopes = ["orders:read"]
"#,
                &[
                    "4:8: path parameter `id` has no schema under [routes.params.id]",
                    "6:1: path `orders` must start with `/`",
                    "7:6: route id `a` is empty, reserved or used twice",
                    "9:8: path `orders` must start with `/`",
                ],
            ),
        ]);
    }

    #[test]
    fn bad_route_parameters_are_reported_at_their_keys() {
        check(&[(
            r#"[[routes]]
id = "orders.list"
method = "GET"
path = "/orders"
require_scopes = ["orders:read"]
forward_params = { ghost = "page", id = "" }
[routes.query."bad name"]
type = "integer"
[routes.query.page]
type = "integer"
[routes.query.from]
type = "string"
[[routes.constraints]]
kind = "range"
from = "from"
to = "to"
[[routes.constraints]]
kind = "date_range"
from = "from"
to = "to"
"#,
            &[
                "6:28: `ghost` is not a parameter of `path`",
                "6:28: `page` is empty or clashes with a query parameter",
                "6:41: `` is empty or clashes with a query parameter",
                "6:41: `id` is not a parameter of `path`",
                "7:1: query parameter names may hold only letters, digits, `_`, `-` and `.`",
                "14:8: unknown constraint kind `range` (known: date_range)",
                "19:8: `from` must be a date or datetime parameter",
                "20:6: `to` is not a parameter of this route",
            ],
        )]);
    }

    #[test]
    fn bad_owner_bindings_and_buckets_are_reported_at_their_keys() {
        check(&[
            (
                r#"[[routes]]
id = "orders.list"
method = "GET"
path = "/orders"
require_scopes = ["orders:read"]
owner = { param = "customer", claim = "" }
rate_limit = { rate = "120/min", burst = 0 }
[routes.query.customer]
type = "string"
"#,
                &[
                    "6:19: owner query parameter `customer` must be `required`",
                    "6:39: `claim` must not be empty",
                    "7:42: must be at least 1",
                ],
            ),
            (
                r#"[[routes]]
id = "orders.list"
method = "GET"
path = "/orders"
require_scopes = ["orders:read"]
owner = { param = "ghost", claim = "customer_id" }
rate_limit = { rate = "fast" }
"#,
                &[
                    "6:19: `ghost` is neither a path nor a query parameter",
                    "7:23: rate `fast` must look like `120/min`",
                ],
            ),
        ]);
    }

    #[test]
    fn bad_answer_owners_counts_and_ip_lists_are_reported_at_their_keys() {
        check(&[
            (
                r#"[[routes]]
id = "orders.get"
method = "GET"
path = "/orders/{id}"
require_scopes = ["orders:read"]
allow_ips = ["127.0.0.1/8"]
[routes.params.id]
type = "string"
[routes.response]
count = "orders[."
[[routes.response.owners]]
field = "*"
claim = "customer_id"
[[routes.response.owners]]
field = "customer..id"
claim = ""
"#,
                &[
                    "6:14: `127.0.0.1/8` has host bits set past its prefix; the block is `127.0.0.0/8`",
                    "10:9: field path `orders[.`: `orders[` is not a field name (use `a.b`, `list[].field` or `*`)",
                    "12:9: an owner `field` names one value (e.g. `customer.id`), not `*`",
                    "15:9: field path `customer..id`: `` is not a field name (use `a.b`, `list[].field` or `*`)",
                    "16:9: `claim` must not be empty",
                ],
            ),
            (
                r#"[[routes]]
id = "orders.get"
method = "GET"
path = "/orders/{id}"
require_scopes = ["orders:read"]
[routes.params.id]
type = "string"
[[routes.response.owners]]
field = "customer.id"
claim = "customer_id"
bypass = ["x"]
"#,
                &[
                    "11:1: unknown field `bypass`, expected one of `field`, `claim`, `bypass_scopes`",
                ],
            ),
            (
                r#"[[routes]]
id = "orders.get"
method = "GET"
path = "/orders/{id}"
require_scopes = ["orders:read"]
allow_ips = ["127.0.0.0/8", "::1"]
[routes.params.id]
type = "string"
[routes.response]
count = "orders"
[[routes.response.owners]]
field = "orders[].customer.id"
claim = "customer_id"
bypass_scopes = ["orders:read:any_customer"]
"#,
                &[],
            ),
        ]);
    }

    #[test]
    fn bad_views_are_reported_at_their_keys() {
        check(&[(
            r#"[[routes]]
id = "orders.get"
method = "GET"
path = "/orders/{id}"
require_scopes = ["orders:read"]
[routes.params.id]
type = "string"
[[routes.response.views]]
scope = "orders:read"
deny = ["a..b"]
mask = { "customer.phone" = "scramble", "x[" = "phone" }
"#,
            &[
                "8:1: a view must `allow` something (`[\"*\"]` for everything)",
                "10:9: field path `a..b`: `` is not a field name (use `a.b`, `list[].field` or `*`)",
                "11:29: unknown masker `scramble` (use phone, email, id_number, bank_card, name, hide)",
                "11:48: field path `x[`: `x[` is not a field name (use `a.b`, `list[].field` or `*`)",
            ],
        )]);
    }
}
