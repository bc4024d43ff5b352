//! The admin listener (plain HTTP, for loopback or a private interface): `/healthz`, `/readyz`,
//! `/metrics`, the abuse guard's `/admin/frozen` and the canary reset
//! (`POST /admin/canary/<route>/reset`). Unfreezing and resets are audited; health, readiness
//! and metrics requests are not.
//!
//! With `[server] admin_token_env`/`admin_token_file` (required when `admin_listen` is not a
//! loopback address), every path but `/healthz`, `/readyz` and `/metrics` — so `/admin/*`, and
//! any route added later — needs `Authorization: Bearer <token>` (compared in constant time over
//! SHA-256 digests) and answers 401 otherwise. Those three stay open: load balancers and
//! scrapers probe them, and they carry no identities or secrets.
//!
//! Every other path also refuses (403) what a browser sends on a web page's behalf (`Origin`,
//! `Sec-Fetch-Site` other than `none`) and, without a token, a request naming a host that is
//! not an address or `localhost` (DNS rebinding).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::gateway::Gateway;
use crate::stage::abuse::AbuseGuard;
use crate::stage::audit::{Entry, record::format_ts};
use crate::stage::rate_limit::RedisBuckets;
use crate::vocab::redact::recorded_path;

/// The admin routes.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/admin/frozen", get(list_frozen))
        .route("/admin/frozen/{key}", delete(unfreeze))
        .route("/admin/canary/{route}/reset", post(reset_canary))
        .layer(middleware::from_fn_with_state(
            gateway.clone(),
            require_admin_token,
        ))
        .with_state(gateway)
}

/// The paths served without the admin token; every other path, present or future, needs it.
const OPEN_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Lets a request for anything but [`OPEN_PATHS`] through only with the configured bearer
/// token (when one is set; without one, config checking has made sure the listener is on
/// loopback).
async fn require_admin_token(
    State(gateway): State<Arc<Gateway>>,
    request: Request,
    next: Next,
) -> Response {
    let live = gateway.live();
    let open = OPEN_PATHS.contains(&request.uri().path());
    let token = live.policy.server.admin_token.as_ref();
    // Loopback is not a boundary against a browser on the same host: a page can send a
    // bodiless POST or DELETE without asking first, and read answers after rebinding a name of
    // its own to 127.0.0.1. Operators' tools send neither `Origin` nor a cross-site fetch mark;
    // without a token, the host asked for must also be an address or `localhost`.
    if !open
        && (from_a_web_page(request.headers()) || (token.is_none() && !named_locally(&request)))
    {
        metrics::counter!("ordergate_admin_auth_failures_total").increment(1);
        tracing::warn!(
            path = %recorded_path(request.uri().path()),
            "admin request from a web page or for a foreign host name refused"
        );
        return (StatusCode::FORBIDDEN, "forbidden\n").into_response();
    }
    if let Some(token) = token
        && !open
    {
        let mut values = request.headers().get_all(header::AUTHORIZATION).iter();
        let presented = match (values.next(), values.next()) {
            (Some(value), None) => bearer_token(value.as_bytes()),
            _ => None,
        };
        if !presented.is_some_and(|p| same_token(p, token.expose().as_bytes())) {
            metrics::counter!("ordergate_admin_auth_failures_total").increment(1);
            tracing::warn!(
                path = %recorded_path(request.uri().path()),
                "admin request without a valid token"
            );
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "unauthorized\n",
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// True when a browser sent it on a page's behalf: an `Origin`, or a fetch mark other than
/// `none` (a URL the user typed).
fn from_a_web_page(headers: &header::HeaderMap) -> bool {
    headers.contains_key(header::ORIGIN)
        || headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() != b"none")
}

/// True when the host the request names (`:authority` or `Host`) is an IP address or
/// `localhost`, never a DNS name a page could have rebound; a request naming none passes.
fn named_locally(request: &Request) -> bool {
    let host = match request.uri().authority() {
        Some(authority) => authority.host().to_owned(),
        None => match request.headers().get(header::HOST).map(|v| v.to_str()) {
            None => return true,
            Some(Err(_)) => return false,
            Some(Ok(value)) => match value.parse::<axum::http::uri::Authority>() {
                Ok(authority) => authority.host().to_owned(),
                Err(_) => return false,
            },
        },
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok()
}

/// The token of an `Authorization: Bearer <token>` value.
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let space = value.iter().position(|b| *b == b' ')?;
    let (scheme, token) = value.split_at(space);
    let token = token.trim_ascii();
    (scheme.eq_ignore_ascii_case(b"bearer") && !token.is_empty()).then_some(token)
}

/// Equal tokens, compared in constant time over their digests (so neither the content nor the
/// length of the expected token leaks through timing).
fn same_token(presented: &[u8], expected: &[u8]) -> bool {
    let a: [u8; 32] = Sha256::digest(presented).into();
    let b: [u8; 32] = Sha256::digest(expected).into();
    bool::from(a.ct_eq(&b))
}

/// Serves the admin routes until `stop` turns true.
pub async fn serve(gateway: Arc<Gateway>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let app = router(gateway).into_make_service_with_connect_info::<SocketAddr>();
    let shutdown = async move {
        let _ = stop.changed().await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "admin listener failed");
    }
}

async fn readyz(State(gateway): State<Arc<Gateway>>) -> Response {
    if gateway.ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::vocab::metrics::render(),
    )
        .into_response()
}

async fn list_frozen(State(gateway): State<Arc<Gateway>>) -> Response {
    let list: Vec<serde_json::Value> = gateway
        .abuse
        .list()
        .into_iter()
        .map(|(key, until)| serde_json::json!({"key": key, "until": format_ts(until)}))
        .collect();
    axum::Json(list).into_response()
}

/// Lifts one freeze. The audit record is queued first and the freeze lifted only then, so no
/// unfreeze ever takes effect unrecorded: when the audit log cannot take the record (`on_error =
/// "reject"` and writes failing, or the queue full) the answer is 503 and the freeze stays. The
/// key is taken in its canonical form (`ip:<addr>` names the address's group).
async fn unfreeze(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(named): Path<String>,
) -> Response {
    let started = Instant::now();
    let redis = gateway.limiter.redis();
    let key = AbuseGuard::canonical_key(&named);
    let found = match &key {
        Some(key) => {
            gateway
                .abuse
                .holds(key, redis.as_deref().map(RedisBuckets::store))
                .await
        }
        None => false,
    };
    let status = if found {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    };
    let action = AdminAction {
        method: http::Method::DELETE,
        route: "admin.unfreeze",
        path: format!("/admin/frozen/{named}"),
    };
    if !recorded(&gateway, peer, started, action, status).await {
        return (StatusCode::SERVICE_UNAVAILABLE, "audit unavailable\n").into_response();
    }
    if let Some(key) = key.filter(|_| found) {
        gateway
            .abuse
            .unfreeze(&key, redis.as_deref().map(RedisBuckets::store))
            .await;
        tracing::info!(key = %crate::vocab::redact::redact(&key), "unfrozen by an operator");
        gateway.events.emit(crate::stage::abuse::key_event(
            crate::vocab::event::EventKind::Unfreeze,
            &key,
        ));
    }
    status.into_response()
}

/// An operator's action on the admin API, as its audit record names it.
struct AdminAction {
    method: http::Method,
    route: &'static str,
    path: String,
}

/// Writes the record of an admin `action` answered with `status` (204 done, 404 nothing to
/// act on); false when it could not be written, so the action must not take effect.
async fn recorded(
    gateway: &Gateway,
    peer: SocketAddr,
    started: Instant,
    action: AdminAction,
    status: StatusCode,
) -> bool {
    let entry = Entry {
        ts: SystemTime::now(),
        request_id: crate::stage::request_id::generate(),
        client_ip: peer.ip(),
        tls_version: None,
        client_subject: None,
        principal: None,
        method: action.method,
        route: Some(Arc::from(action.route)),
        path: action.path,
        query: Vec::new(),
        reason: if status.is_success() {
            "ok"
        } else {
            "not_found"
        },
        detail: None,
        status: status.as_u16(),
        upstream_status: None,
        duration: started.elapsed(),
        upstream: None,
        bytes_out: 0,
        records: None,
        upstream_name: None,
        served: None,
        signed: false,
    };
    gateway.audit.accepting() && gateway.audit.record(entry).await
}

/// Resets a route's canary guard (CONTRACT §10): its principals go to the canary again, here
/// and, with Redis, on every instance. Audited like an unfreeze (a record with `route`
/// `"admin.canary_reset"`), written before the reset takes effect; 404 for a route without a
/// canary, 503 when the record cannot be written (the rollback then stays).
async fn reset_canary(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(route): Path<String>,
) -> Response {
    let started = Instant::now();
    let live = gateway.live();
    let found = live.guards().iter().any(|g| **g.route() == *route);
    let status = if found {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    };
    let action = AdminAction {
        method: http::Method::POST,
        route: "admin.canary_reset",
        path: format!("/admin/canary/{route}/reset"),
    };
    if !recorded(&gateway, peer, started, action, status).await {
        return (StatusCode::SERVICE_UNAVAILABLE, "audit unavailable\n").into_response();
    }
    if found && gateway.reset_canary(&route).await {
        tracing::info!(route = %route, "canary guard reset by an operator");
    }
    status.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_is_accepted() {
        let token = b"0123456789abcdef0123456789abcdef";
        let check = |value: &[u8]| bearer_token(value).is_some_and(|t| same_token(t, token));
        assert!(check(b"Bearer 0123456789abcdef0123456789abcdef"));
        assert!(check(b"bearer  0123456789abcdef0123456789abcdef "));
        assert!(!check(b"Bearer 0123456789abcdef0123456789abcde"));
        assert!(!check(b"Bearer 0123456789abcdef0123456789abcdef0"));
        assert!(!check(b"Basic 0123456789abcdef0123456789abcdef"));
        assert!(!check(b"0123456789abcdef0123456789abcdef"));
        assert!(!check(b"Bearer "));
        assert!(!check(b""));
    }
}
