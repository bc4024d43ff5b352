//! The stage order of CONTRACT.md §2, written in exactly one place. Each stage is a module whose
//! doc says what it checks, what it refuses with, and what it adds to the [`RequestContext`].
//!
//! ```text
//!  1 connection      server/: TLS 1.2/1.3, ALPN, mTLS, connection limits, header read and
//!                    idle timeouts, send stalls, requests running per connection (503, marked
//!                    by the front door, refused here); stage/route.rs: header size (431)
//!  2 request id      stage/request_id.rs
//! 12 audit           stage/audit/: a queue slot is reserved first; the record is sent when the
//!                    response body ends or is dropped, so every exit below is recorded; under
//!                    `on_error = "reject"` the last byte waits for it (vocab/body.rs)
//!    server IP list  stage/ip_allow.rs   403 (ip_not_allowed), before anything is routed
//!  3 route           stage/route.rs      404, 405 + Allow, 400 for unsafe paths
//!  4 frozen IP       stage/abuse.rs      403 frozen
//!  5 authenticate    stage/authn/        400 (two credentials, key in query), 401;
//!                    a failure also charges the per-IP bucket (stage/rate_limit/) → 429
//!    frozen principal stage/abuse.rs     403 frozen
//!    caller IP lists stage/ip_allow.rs   403 (ip_not_allowed; may freeze at once)
//!  5b signature      stage/signature/    401 (RFC 9421 signature, nonce), 503 (nonce store);
//!                    the body's Content-Digest is compared in stage 7, before validation
//!  6 authorise       stage/authz.rs      403 (scopes, owner, no view)
//!  7 validate        stage/validate/     400 invalid_parameter; body: 400, 413; 403
//!                    owner_mismatch when the owner id sent is not the one stage 6 checked
//!  8 rate limit      stage/rate_limit/   429, 503 (backend down under reject)
//!  9 load, circuit   stage/load_shed.rs, stage/circuit.rs   503 overloaded / circuit_open
//!    upstream        stage/canary/       the route's named upstream or its guarded canary
//! 10 proxy           stage/proxy.rs      502, 504
//! 11 response        stage/response.rs, stage/views.rs      502 (views fail closed), 5xx;
//!                    stage/owners.rs     403 owner_mismatch_response, records counted
//!                    stage/stale.rs      a kept answer instead of 502/503/504 (stale_if_error)
//! ```
//!
//! `run` below is one call per stage; `pipeline/wiring.rs` hands each its own settings out of the
//! running generation and the gateway state it may touch (buckets, nonces, freezes, events).
//!
//! With `serve --shadow NEXT`, `pipeline/shadow.rs` decides stages 3–7 again under the running
//! and the candidate policy once the answer is settled; the answer does not wait for it. A rule
//! added to stages 3–7 here is added to `shadow::admit` too.
//!
//! Denials (401, 403, 429) are counted by the abuse guard after the answer is decided; 400, 404
//! and 405 count against the client address only.

pub mod service;
pub mod shadow;
mod wiring;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response};
use http_body::Body;

use crate::context::{ConnInfo, RequestContext};
use crate::gateway::{Gateway, Live};
use crate::stage::audit::{Pending, Ticket};
use crate::stage::authz;
use crate::stage::ip_allow;
use crate::stage::proxy;
use crate::stage::rate_limit::RedisBuckets;
use crate::stage::request_id;
use crate::stage::response;
use crate::stage::route;
use crate::stage::validate;
use crate::vocab::address::client_ip;
use crate::vocab::body::GatewayBody;
use crate::vocab::cause::{InternalFailure, Overload, UpstreamFailure};
use crate::vocab::error::GatewayError;
use crate::vocab::problem;
use wiring::Wire;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves one request through every stage and returns the response (refusals included).
pub async fn handle<B>(
    gateway: Arc<Gateway>,
    conn: Arc<ConnInfo>,
    request: Request<B>,
) -> Response<GatewayBody>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let started = Instant::now();
    let live = gateway.live();
    let (mut parts, body) = request.into_parts();
    let request_id = match parts.extensions.remove::<service::SettledRequestId>() {
        Some(settled) => settled.0,
        None => request_id::from_headers(&parts.headers),
    };
    let trusted = &live.policy.server.trusted_proxies;
    let client_ip = client_ip(conn.peer.ip(), &parts.headers, trusted);
    let ctx = RequestContext::new(request_id, client_ip, conn, &parts);
    let shadowed = shadow::observe(&gateway, &parts, &ctx, body.is_end_stream());
    let ticket = gateway.audit.reserve().await;
    // From here every exit is recorded: a panic below unwinds through `unfinished`, whose drop
    // sends the record (`internal_error`); the service boundary turns the panic into a 500.
    let mut unfinished = Unfinished {
        ticket,
        ctx,
        started,
    };
    let outcome = match &unfinished.ticket {
        Some(_) if gateway.audit.accepting() => {
            let deadline = live.policy.server.request_timeout;
            // Boxed: the stages' state machine is kilobytes, and a future is moved by value
            // (into the timeout, the select, the service's box); a box moves as a pointer.
            let work = tokio::time::timeout(
                deadline,
                Box::pin(run(&gateway, &live, &mut unfinished.ctx, parts, body)),
            );
            // The shutdown cutoff ends a request still waiting (CONTRACT §11: bounded exit).
            tokio::select! {
                outcome = work => match outcome {
                    Ok(outcome) => outcome,
                    Err(_) => Err(GatewayError::GatewayTimeout {
                        cause: UpstreamFailure::RequestTimeout,
                    }),
                },
                () = gateway.cutoff.reached() => Err(GatewayError::Overloaded { cause: Overload::Shutdown }),
            }
        }
        _ => Err(GatewayError::AuditUnavailable),
    };
    let ctx = &mut unfinished.ctx;
    let (mut response, ended) = match outcome {
        Ok(response) => {
            watch_volume(&gateway, &live, ctx);
            (response, ("ok", None))
        }
        Err(error) => {
            let store = gateway.limiter.redis();
            let principal = ctx.principal.as_ref().map(|p| (p.kind, &*p.id));
            gateway
                .abuse
                .refused(
                    &live.policy.abuse,
                    store.as_deref().map(RedisBuckets::store),
                    &error,
                    ctx.route_id.as_ref(),
                    (ctx.client_ip, principal),
                )
                .await;
            let rendered = problem::render(&error, &ctx.request_id);
            (rendered, (error.reason(), error.cause()))
        }
    };
    let tls = ctx.conn.tls_version.is_some();
    response::finish_headers(response.headers_mut(), &ctx.request_id, tls);
    if let Some(status) = &ctx.rate_limit {
        status.write_headers(response.headers_mut());
    }
    if let Some(ticket) = unfinished.ticket.take() {
        let status = response.status().as_u16();
        let entry = unfinished.ctx.entry(ended, status, started);
        response.body_mut().set_pending(Box::new(Pending {
            ticket,
            entry,
            started,
        }));
    }
    response.body_mut().set_cutoff(gateway.cutoff.clone());
    // `serve --shadow`: the candidate decides too, after the answer is settled, off its path.
    if let Some((candidate, seen)) = shadowed {
        shadow::spawn(live, candidate, seen);
    }
    response
}

/// A request whose record is not yet handed to its response body. Dropped with the ticket still
/// inside — a panic unwinding through [`handle`], or its future dropped before an answer was
/// decided — it sends the record itself, so no request leaves the gateway unrecorded.
struct Unfinished {
    ticket: Option<Ticket>,
    ctx: RequestContext,
    started: Instant,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        let Some(ticket) = self.ticket.take() else {
            return;
        };
        let detail = if std::thread::panicking() {
            tracing::error!(request_id = %self.ctx.request_id, "a request panicked inside the gateway");
            InternalFailure::Panic
        } else {
            // An embedded service whose client left mid-pipeline: routine, not worth an error.
            tracing::debug!(request_id = %self.ctx.request_id, "a request was abandoned before its answer");
            InternalFailure::Abandoned
        };
        let error = GatewayError::Internal { cause: detail };
        let ended = (error.reason(), error.cause());
        let entry = self.ctx.entry(ended, error.status().as_u16(), self.started);
        // Nobody waits for this record: there is no response body to hold back.
        let _ = ticket.send(entry);
    }
}

/// Stages 1 (header size) to 11, one call each, in the order of CONTRACT §2; what each stage
/// is handed comes from [`Wire`].
async fn run<B>(
    gateway: &Gateway,
    live: &Live,
    ctx: &mut RequestContext,
    parts: Parts,
    body: B,
) -> Result<Response<GatewayBody>, GatewayError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (policy, ip) = (&live.policy, ctx.client_ip);
    // 1. The connection's own work bound (the front door's mark), the header size (the rest of stage 1 is the server's), then the server's IP list,
    //    before anything about the routes is revealed (§7.2).
    if parts
        .extensions
        .get::<service::ConnectionSaturated>()
        .is_some()
    {
        return Err(GatewayError::Overloaded {
            cause: Overload::MaxConcurrentStreams,
        });
    }
    route::refuse_large_headers(&parts.headers, policy.server.max_header_bytes)?;
    ip_allow::refuse_outside_server(policy.server.allow_ips.as_deref(), ip)?;
    // 3. Route.
    let matched = policy.table.lookup(&parts.method, parts.uri.path())?;
    let route = &policy.routes[matched.route];
    ctx.route_id = Some(route.id.clone());
    // 4. Frozen IP. 5. Authentication (a 401 charges the per-IP bucket), frozen principal,
    //    IP lists. 5b. The signature over the request as received.
    gateway.abuse.refuse_frozen_ip(ip)?;
    let query = crate::vocab::query::parse(parts.uri.query().unwrap_or(""));
    let wire = Wire::new((gateway, live), &parts, matched.route, ctx);
    let principal = wire.authenticate(&query).await?;
    ctx.principal = Some(principal.clone());
    wire.admit_caller(&principal).await?;
    let verified = wire
        .check_signature(&principal, body.is_end_stream())
        .await?;
    ctx.signed = verified.is_some();
    // 6. Authorisation. 7. Validation, then the body (its signed digest compared first).
    let view = authz::authorize(&route.access, &principal, &matched.params, &query)?;
    let validated = validate::validate(&route.params, &matched.params, &query)?;
    validate::confirm_owner(&route.access, &principal, &validated)?;
    let body = wire
        .read_body(body, verified.as_ref(), &mut ctx.signed)
        .await?;
    let target = proxy::upstream_target(&route.upstream_path, &validated, &route.params);
    ctx.validated = Some(validated);
    // 8. Rate limits. 9. Load (the circuit is consulted per attempt in stage 10), then the
    //    upstream: the route's own, or its canary's for this principal while the guard holds.
    ctx.rate_limit = wire.rate_limit(&principal).await?;
    let in_flight = gateway.in_flight.try_acquire(policy.server.max_in_flight)?;
    let sending = wire.choose(&principal, view, &target);
    // 10. Proxy. 11. Response (a kept answer covers a failure).
    let request = wire.upstream_request(&sending, &target, body, &ctx.request_id)?;
    let mut response = wire.exchange(ctx, sending, request).await?;
    response.body_mut().set_in_flight(Some(Box::new(in_flight)));
    Ok(response)
}

/// Hands an answered request to the volume guard (CONTRACT §8.3). Locally that is a few map
/// updates, done here; with the shared backend the one Redis round trip runs in its own task, so
/// the answer never waits for it.
fn watch_volume(gateway: &Arc<Gateway>, live: &Arc<Live>, ctx: &RequestContext) {
    let Some(settings) = &live.policy.volume else {
        return;
    };
    let (Some(principal), Some(route)) = (&ctx.principal, &ctx.route_id) else {
        return;
    };
    let Some(answered) = crate::stage::volume::Answered::of(
        settings,
        principal,
        ctx.client_ip,
        route,
        ctx.validated.as_ref(),
        ctx.records,
    ) else {
        return;
    };
    let Some(redis) = gateway.limiter.redis() else {
        gateway
            .volume
            .observe_local(settings, &gateway.abuse, &live.policy.abuse, &answered);
        return;
    };
    let gateway = gateway.clone();
    let live = live.clone();
    tokio::spawn(async move {
        if let Some(settings) = &live.policy.volume {
            gateway
                .volume
                .observe(
                    settings,
                    &gateway.abuse,
                    &live.policy.abuse,
                    Some(redis.store()),
                    &answered,
                )
                .await;
        }
    });
}
