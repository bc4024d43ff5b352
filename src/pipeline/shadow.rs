//! `serve --shadow NEXT` (CONTRACT §9): every request is decided a second time, by the candidate
//! policy, and once more by the running one, through the same stage functions the pipeline runs —
//! the server's IP list, route, authentication ([`authn::identify`], which counts nothing), the
//! caller's IP lists (credential, roles, route), the signature, authorisation, validation and the
//! view that would apply. No upstream call, no bucket charged, no denial counted, no nonce
//! recorded, no event, no freeze, no audit record: the candidate serves nothing.
//!
//! Each policy computes the client address with its own `trusted_proxies`. The signature is
//! checked by the stage's stateless half ([`signature::verify_request`]: headers, coverage,
//! window, the signature itself) under each policy's keys and its route's `require_signature`;
//! the nonce is not recorded, so a replay (which the running policy refuses, and a second
//! recording would always call a replay) is state, not policy, and not compared. Nor is the
//! signed `Content-Digest` (the body is the live request's alone). Response owners
//! (`[[routes.response.owners]]`) are decided on the upstream's answer, which the shadow never
//! asks for: a change to them is not seen here (`ordergate diff` reports it).
//!
//! Disagreements are counted in `ordergate_shadow_diff_total{route,kind}`:
//! - `decision`: one policy admits the request (up to validation), the other refuses it;
//! - `status`: both refuse it, with a different status, reason or detail;
//! - `view`: both admit it, with response views whose rules differ (allow, deny, mask as
//!   written: the same rules under another scope name are the same answer).
//!
//! and logged at INFO with the request id, route, and both decisions (status, reason, detail,
//! view scope) — never a header, parameter value or credential.
//!
//! The decisions run in a task spawned once the live answer is on its way, so the answer is
//! byte for byte what it would be without `--shadow` and waits for nothing. At most
//! [`MAX_PENDING`] shadow decisions wait at once; beyond that a request is not shadowed and is
//! counted in `ordergate_shadow_requests_total{result="skipped"}` (decided ones:
//! `result="decided"`). Stages 4 and 8–12 (freezes, limits, load, upstream) depend on state, not
//! on the policy text, and are not compared; nor is the request body (the live request reads
//! it once).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::request::Parts;
use http::{HeaderMap, Method, Uri};

use crate::context::{ConnInfo, RequestContext};
use crate::gateway::{Candidate, Gateway, Live};
use crate::policy::Policy;
use crate::stage::authn::{self, jwt::JwtVerifier};
use crate::stage::authz;
use crate::stage::ip_allow;
use crate::stage::route;
use crate::stage::signature::carry::Carried;
use crate::stage::signature::{self, BodyCoverage, SignedRequest};
use crate::stage::validate;
use crate::stage::views::ViewRules;
use crate::vocab::address::client_ip;
use crate::vocab::error::{BadRequest, GatewayError};

/// Shadow decisions that may wait at once.
pub const MAX_PENDING: usize = 1024;

static PENDING: AtomicUsize = AtomicUsize::new(0);

/// What a shadow decision needs of a request (copied before the pipeline consumes it).
#[derive(Debug)]
pub struct Observed {
    request_id: String,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    conn: Arc<ConnInfo>,
    /// The request carries (or may carry) a body: a signature must cover `content-digest`.
    has_body: bool,
}

/// With `--shadow`, the candidate and a copy of what it needs of this request; `end_stream`:
/// the body is already at its end.
pub fn observe(
    gateway: &Gateway,
    parts: &Parts,
    ctx: &RequestContext,
    end_stream: bool,
) -> Option<(Arc<Candidate>, Observed)> {
    let candidate = gateway.shadow()?;
    Some((
        candidate,
        Observed {
            request_id: ctx.request_id.clone(),
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
            conn: ctx.conn.clone(),
            has_body: signature::has_body(&parts.headers, end_stream),
        },
    ))
}

/// What one policy decides of a request, up to validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Admitted: it would go upstream, through this view.
    Admit {
        /// The route.
        route: Arc<str>,
        /// The scope of the view that applies, if the route has views.
        view_scope: Option<Arc<str>>,
        /// That view's rules as written.
        view: Option<ViewRules>,
    },
    /// Refused.
    Refuse {
        /// The route, if one matched.
        route: Option<Arc<str>>,
        /// The answer's status.
        status: u16,
        /// Its problem `type` reason.
        reason: &'static str,
        /// Its audit `detail`.
        detail: Option<&'static str>,
    },
}

impl Verdict {
    fn route(&self) -> Option<&Arc<str>> {
        match self {
            Verdict::Admit { route, .. } => Some(route),
            Verdict::Refuse { route, .. } => route.as_ref(),
        }
    }

    /// For the log: no values from the request.
    fn describe(&self) -> String {
        match self {
            Verdict::Admit { view_scope, .. } => match view_scope {
                Some(scope) => format!("admit (view {scope})"),
                None => "admit".to_owned(),
            },
            Verdict::Refuse {
                status,
                reason,
                detail,
                ..
            } => format!("{status} {reason} {}", detail.unwrap_or("-")),
        }
    }
}

/// How two verdicts differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disagreement {
    /// Admitted by one, refused by the other.
    Decision,
    /// Refused by both, differently.
    Status,
    /// Admitted by both, with different views.
    View,
}

impl Disagreement {
    /// The `kind` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Disagreement::Decision => "decision",
            Disagreement::Status => "status",
            Disagreement::View => "view",
        }
    }
}

/// How `candidate` differs from `live`, if it does.
pub fn disagreement(live: &Verdict, candidate: &Verdict) -> Option<Disagreement> {
    match (live, candidate) {
        (Verdict::Admit { view: a, .. }, Verdict::Admit { view: b, .. }) => {
            (a != b).then_some(Disagreement::View)
        }
        (
            Verdict::Refuse {
                status: s1,
                reason: r1,
                detail: d1,
                ..
            },
            Verdict::Refuse {
                status: s2,
                reason: r2,
                detail: d2,
                ..
            },
        ) => ((s1, r1, d1) != (s2, r2, d2)).then_some(Disagreement::Status),
        _ => Some(Disagreement::Decision),
    }
}

/// Decides `seen` under `policy`, stage by stage as [`super::run`] does, without side effects.
/// A policy rule added to stages 3–7 of `run` gets its line in
/// [`admit`] too (and what it reads of the request, e.g. `ctx.client_ip`, a field of
/// [`Observed`]), or the shadow cannot see a change to it.
/// `carried` is the running generation's inheritance from earlier ones (state, not policy), so a
/// request signed before a reload is read alike under both.
pub async fn decide(
    policy: &Policy,
    jwt: Option<&JwtVerifier>,
    carried: Option<&Carried>,
    seen: &Observed,
) -> Verdict {
    let mut matched_route = None;
    match admit(policy, jwt, carried, seen, &mut matched_route).await {
        Ok(verdict) => verdict,
        Err(error) => Verdict::Refuse {
            route: matched_route,
            status: error.status().as_u16(),
            reason: error.reason(),
            detail: error.cause(),
        },
    }
}

async fn admit(
    policy: &Policy,
    jwt: Option<&JwtVerifier>,
    carried: Option<&Carried>,
    seen: &Observed,
    matched_route: &mut Option<Arc<str>>,
) -> Result<Verdict, GatewayError> {
    // 1. The header size.
    route::refuse_large_headers(&seen.headers, policy.server.max_header_bytes)?;
    // The server's IP list, on the address as this policy's trusted proxies make it.
    let ip = client_ip(
        seen.conn.peer.ip(),
        &seen.headers,
        &policy.server.trusted_proxies,
    );
    ip_allow::refuse_outside_server(policy.server.allow_ips.as_deref(), ip)?;
    // 3. Route.
    let matched = policy.table.lookup(&seen.method, seen.uri.path())?;
    let route = &policy.routes[matched.route];
    *matched_route = Some(route.id.clone());
    let raw_text = seen.uri.query().unwrap_or("");
    let raw_query = crate::vocab::query::parse(raw_text);
    // 5. Authentication.
    let key_header = policy.auth.api_keys.as_ref().map(|k| k.header.as_str());
    let declared = |name: &str| route.params.query.iter().any(|s| *s.name == *name);
    if authn::credential_in_query(raw_text, &raw_query, key_header, &declared) {
        return Err(GatewayError::BadRequest(BadRequest::KeyInQuery));
    }
    let principal = authn::identify(
        &policy.auth,
        &policy.roles,
        &policy.scopes,
        jwt,
        &seen.headers,
        seen.conn.client_subject.as_ref(),
    )
    .await?;
    // The caller's IP lists (no event, no freeze).
    ip_allow::refuse_outside_caller(&principal, route.allow_ips.as_deref(), ip)?;
    // 5b. The signature, stateless: no nonce recorded.
    let key = policy
        .signatures
        .keys
        .get(&(principal.kind, principal.id.clone()));
    if key.is_some() || route.require_signature {
        let request = SignedRequest {
            method: &seen.method,
            uri: &seen.uri,
            headers: &seen.headers,
            tls: seen.conn.tls_version.is_some(),
            body: BodyCoverage::of(
                seen.has_body,
                route.body.as_ref().map_or(0, |b| b.kinds.len()),
            ),
        };
        signature::verify_request(
            &policy.signatures,
            carried,
            key,
            &principal.id,
            &request,
            now_secs(),
        )
        .map_err(signature::fail)?;
    }
    // 6. Authorisation.
    let view = authz::authorize(&route.access, &principal, &matched.params, &raw_query)?;
    // 7. Validation (the body is the live request's alone).
    let validated = validate::validate(&route.params, &matched.params, &raw_query)?;
    validate::confirm_owner(&route.access, &principal, &validated)?;
    let view = view.map(|i| &route.views[i]);
    Ok(Verdict::Admit {
        route: route.id.clone(),
        view_scope: view.map(|v| v.scope_name.clone()),
        view: view.map(|v| v.rules().clone()),
    })
}

/// Seconds since the epoch, as the signature stage reads the clock.
fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Decides `seen` under both policies in a task of its own and records any disagreement.
pub fn spawn(live: Arc<Live>, candidate: Arc<Candidate>, seen: Observed) {
    if PENDING.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING {
        PENDING.fetch_sub(1, Ordering::AcqRel);
        metrics::counter!("ordergate_shadow_requests_total", "result" => "skipped").increment(1);
        return;
    }
    tokio::spawn(async move {
        let _pending = Pending;
        let carried = live.policy.signatures.carried.as_ref();
        let running = decide(&live.policy, live.jwt.as_ref(), carried, &seen).await;
        let proposed = decide(&candidate.policy, candidate.jwt.as_ref(), carried, &seen).await;
        if let Some(kind) = disagreement(&running, &proposed) {
            let route = running
                .route()
                .or(proposed.route())
                .map_or("unmatched", |r| &**r)
                .to_owned();
            metrics::counter!("ordergate_shadow_diff_total", "route" => route.clone(), "kind" => kind.as_str())
                .increment(1);
            tracing::info!(
                request_id = %seen.request_id,
                route = %route,
                kind = kind.as_str(),
                live = %running.describe(),
                candidate = %proposed.describe(),
                "the shadow policy decides this request differently"
            );
        }
        metrics::counter!("ordergate_shadow_requests_total", "result" => "decided").increment(1);
    });
}

/// Releases a pending slot when the shadow task ends (or is dropped).
struct Pending;

impl Drop for Pending {
    fn drop(&mut self) {
        PENDING.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refuse(status: u16, detail: &'static str) -> Verdict {
        Verdict::Refuse {
            route: None,
            status,
            reason: "forbidden",
            detail: Some(detail),
        }
    }

    fn admit(view: Option<ViewRules>, scope: &str) -> Verdict {
        Verdict::Admit {
            route: Arc::from("r"),
            view_scope: Some(Arc::from(scope)),
            view,
        }
    }

    #[test]
    fn disagreements_are_told_apart() {
        let rules = |deny: &[&str]| ViewRules {
            allow: vec![crate::stage::views::FieldPath::parse("*").unwrap()],
            deny: deny
                .iter()
                .map(|d| crate::stage::views::FieldPath::parse(d).unwrap())
                .collect(),
            mask: vec![],
        };
        let a = admit(Some(rules(&[])), "a");
        assert_eq!(disagreement(&a, &a), None);
        assert_eq!(
            disagreement(&a, &admit(Some(rules(&[])), "other scope")),
            None,
            "the same rules are the same answer"
        );
        assert_eq!(
            disagreement(&a, &admit(Some(rules(&["x"])), "a")),
            Some(Disagreement::View)
        );
        assert_eq!(
            disagreement(&a, &refuse(403, "scope_missing")),
            Some(Disagreement::Decision)
        );
        assert_eq!(
            disagreement(&refuse(403, "scope_missing"), &a),
            Some(Disagreement::Decision)
        );
        assert_eq!(
            disagreement(
                &refuse(403, "scope_missing"),
                &refuse(403, "owner_mismatch")
            ),
            Some(Disagreement::Status)
        );
        assert_eq!(
            disagreement(&refuse(403, "scope_missing"), &refuse(403, "scope_missing")),
            None
        );
    }
}
