//! `[[routes]]`: method, path templates, parameters (`params.rs` compiles each schema),
//! constraints, the scopes and owner binding stage 6 demands, a per-route bucket and the response
//! views.

use std::collections::HashSet;
use std::sync::Arc;

use http::Method;

use crate::config::problems::KeyPath;
use crate::config::raw;
use crate::policy::Route;
use crate::policy::compile::Ctx;
use crate::policy::rate_limits::bucket;
use crate::stage::authz::{Access, OwnerBinding, OwnerParam};
use crate::stage::route::PathTemplate;
use crate::stage::validate::{Constraint, RouteParams};
use crate::stage::views::{CompiledView, FieldPath};
use crate::vocab::mask::Masker;
use crate::vocab::scopes::ScopeRegistry;

pub(super) fn compile(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    raw: &[Option<raw::Route>],
    scopes: &mut ScopeRegistry,
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
        if let Some(r) = self::route(ctx, &at, route, scopes) {
            out.push(r);
        }
    }
    out
}

fn route(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    raw: &raw::Route,
    scopes: &mut ScopeRegistry,
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
    // Parameters.
    let mut params = RouteParams::default();
    for name in &path_names {
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
        if c.kind != "date_range" {
            ctx.bad(
                &at.k("kind"),
                format!("unknown constraint kind `{}` (known: date_range)", c.kind),
            );
            continue;
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
    // Authorisation.
    let require_scopes = scopes.set_of(raw.require_scopes.iter().map(String::as_str));
    if raw.require_scopes.is_empty() {
        ctx.bad(
            &at.k("require_scopes"),
            "list at least one scope: routes are denied by default",
        );
    }
    let owner = raw.owner.as_ref().map(|o| {
        let param = if path_names.iter().any(|n| **n == *o.param) {
            OwnerParam::Path(Arc::from(o.param.as_str()))
        } else if raw.query.contains_key(&o.param) {
            if !raw.query[&o.param].required {
                ctx.bad(
                    &at.k("owner").k("param"),
                    format!("owner query parameter `{}` must be `required`", o.param),
                );
            }
            OwnerParam::Query(Arc::from(o.param.as_str()))
        } else {
            ctx.bad(
                &at.k("owner").k("param"),
                format!("`{}` is neither a path nor a query parameter", o.param),
            );
            OwnerParam::Path(Arc::from(o.param.as_str()))
        };
        if o.claim.is_empty() {
            ctx.bad(&at.k("owner").k("claim"), "`claim` must not be empty");
        }
        OwnerBinding {
            param,
            claim: Arc::from(o.claim.as_str()),
            bypass: scopes.set_of(o.bypass_scopes.iter().map(String::as_str)),
        }
    });
    let rate_limit = raw
        .rate_limit
        .as_ref()
        .and_then(|b| bucket(ctx, &at.k("rate_limit"), format!("route:{}", raw.id), b));
    // Views.
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
        rate_limit,
        params,
        views,
        summary: raw.summary.clone(),
    })
}
