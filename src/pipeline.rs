//! The stage order of CONTRACT.md §2, written in exactly one place. Each stage is a module whose
//! doc says what it checks, what it refuses with, and what it adds to the [`RequestContext`].
//!
//! ```text
//!  1 connection      server/: TLS 1.2/1.3, ALPN, mTLS, connection limits, header read and
//!                    idle timeouts, send stalls; stage/route.rs: header size (431)
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
//!  7 validate        stage/validate/     400 invalid_parameter; body: 400, 413
//!  8 rate limit      stage/rate_limit/   429, 503 (backend down under reject)
//!  9 load, circuit   stage/load_shed.rs, stage/circuit.rs   503 overloaded / circuit_open
//!    upstream        stage/canary/       the route's named upstream or its guarded canary
//! 10 proxy           stage/proxy.rs      502, 504
//! 11 response        stage/response.rs, stage/views.rs      502 (views fail closed), 5xx;
//!                    stage/owners.rs     403 owner_mismatch_response, records counted
//!                    stage/stale.rs      a kept answer instead of 502/503/504 (stale_if_error)
//! ```
//!
//! With `serve --shadow NEXT`, `pipeline/shadow.rs` decides stages 3–7 again under the running
//! and the candidate policy once the answer is settled; the answer does not wait for it. A rule
//! added to stages 3–7 here is added to `shadow::admit` too.
//!
//! Denials (401, 403, 429) are counted by the abuse guard after the answer is decided; 400, 404
//! and 405 count against the client address only.

pub mod service;
pub mod shadow;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response};
use http_body::Body;

use crate::context::{ConnInfo, RequestContext};
use crate::gateway::{Gateway, Live};
use crate::stage::audit::{Entry, Pending, Served, Ticket};
use crate::stage::authn;
use crate::stage::authz;
use crate::stage::canary;
use crate::stage::ip_allow;
use crate::stage::owners;
use crate::stage::proxy::{self, HeaderFacts, UpstreamRequest};
use crate::stage::rate_limit::RedisBuckets;
use crate::stage::request_id;
use crate::stage::response;
use crate::stage::route;
use crate::stage::signature::{self, Sender, SignedRequest, Stores};
use crate::stage::stale;
use crate::stage::validate;
use crate::vocab::address::client_ip;
use crate::vocab::body::GatewayBody;
use crate::vocab::cause::{InternalFailure, Overload, UpstreamFailure};
use crate::vocab::error::{BadRequest, GatewayError};
use crate::vocab::problem;

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
    let ctx = RequestContext {
        request_id,
        client_ip: client_ip(
            conn.peer.ip(),
            &parts.headers,
            &live.policy.server.trusted_proxies,
        ),
        conn,
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        route_id: None,
        principal: None,
        validated: None,
        rate_limit: None,
        upstream_status: None,
        upstream_time: None,
        records: None,
        upstream_name: None,
        served: None,
        signed: false,
    };
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
            let work = tokio::time::timeout(
                deadline,
                run(&gateway, &live, &mut unfinished.ctx, parts, body),
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
    let (mut response, reason, detail) = match outcome {
        Ok(response) => {
            watch_volume(&gateway, &live, ctx);
            (response, "ok", None)
        }
        Err(error) => {
            crate::vocab::metrics::denials::count(ctx.route_id.as_ref(), &error);
            let store = gateway.limiter.redis();
            let principal = ctx.principal.as_ref().map(|p| (p.kind, &*p.id));
            gateway
                .abuse
                .count(
                    &live.policy.abuse,
                    store.as_deref().map(RedisBuckets::store),
                    &error,
                    ctx.client_ip,
                    principal,
                )
                .await;
            (
                problem::render(&error, &ctx.request_id),
                error.reason(),
                error.cause(),
            )
        }
    };
    response::finish_headers(
        response.headers_mut(),
        &ctx.request_id,
        ctx.conn.tls_version.is_some(),
    );
    if let Some(status) = &ctx.rate_limit {
        status.write_headers(response.headers_mut());
    }
    if let Some(ticket) = unfinished.ticket.take() {
        let entry = unfinished.entry(reason, detail, response.status().as_u16());
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

impl Unfinished {
    /// The record of this request as it stands, moving the context's facts out.
    fn entry(&mut self, reason: &'static str, detail: Option<&'static str>, status: u16) -> Entry {
        let ctx = &mut self.ctx;
        Entry {
            ts: SystemTime::now(),
            request_id: std::mem::take(&mut ctx.request_id),
            client_ip: ctx.client_ip,
            tls_version: ctx.conn.tls_version,
            client_subject: ctx.conn.client_subject_text.clone(),
            principal: ctx.principal.take(),
            method: ctx.method.clone(),
            route: ctx.route_id.take(),
            path: std::mem::take(&mut ctx.path),
            query: ctx.validated.take().map(|v| v.query).unwrap_or_default(),
            reason,
            detail,
            status,
            upstream_status: ctx.upstream_status,
            duration: self.started.elapsed(),
            upstream: ctx.upstream_time,
            bytes_out: 0,
            records: ctx.records,
            upstream_name: ctx.upstream_name.take(),
            served: ctx.served,
            signed: ctx.signed,
        }
    }
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
        let entry = self.entry(error.reason(), error.cause(), error.status().as_u16());
        // Nobody waits for this record: there is no response body to hold back.
        let _ = ticket.send(entry);
    }
}

/// Stages 1 (header size) to 11.
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
    let policy = &live.policy;
    // 1. The header size (the rest of stage 1 is the server's).
    route::refuse_large_headers(&parts.headers, policy.server.max_header_bytes)?;

    // The server's IP list, before anything about the routes is revealed (§7.2).
    ip_allow::refuse_outside_server(policy.server.allow_ips.as_deref(), ctx.client_ip)?;

    // 3. Route.
    let matched = policy.table.lookup(&parts.method, parts.uri.path())?;
    let route = &policy.routes[matched.route];
    ctx.route_id = Some(route.id.clone());
    let raw_query = crate::vocab::query::parse(parts.uri.query().unwrap_or(""));

    // 4. Frozen IP.
    gateway.abuse.refuse_frozen_ip(ctx.client_ip)?;

    // 5. Authentication (a failure charges the per-IP bucket), then frozen principal.
    let key_header = policy.auth.api_keys.as_ref().map(|k| k.header.as_str());
    let declared = |name: &str| route.params.query.iter().any(|s| *s.name == *name);
    let raw_text = parts.uri.query().unwrap_or("");
    if authn::credential_in_query(raw_text, &raw_query, key_header, &declared) {
        return Err(GatewayError::BadRequest(BadRequest::KeyInQuery));
    }
    let principal = match authn::authenticate(
        &policy.auth,
        &policy.roles,
        &policy.scopes,
        live.jwt.as_ref(),
        &parts.headers,
        ctx.conn.client_subject.as_ref(),
    )
    .await
    {
        Ok(p) => p,
        Err(e @ GatewayError::Unauthenticated { .. }) => {
            let limited = gateway
                .limiter
                .charge_failed_auth(&policy.rate_limits, ctx.client_ip)
                .await;
            return Err(limited.unwrap_or(e));
        }
        Err(e) => return Err(e),
    };
    ctx.principal = Some(principal.clone());
    gateway
        .abuse
        .refuse_frozen_principal(principal.kind, &principal.id)?;
    if let Err(refused) =
        ip_allow::refuse_outside_caller(&principal, route.allow_ips.as_deref(), ctx.client_ip)
    {
        let store = gateway.limiter.redis();
        ip_allow::Violation {
            guard: &gateway.abuse,
            settings: &policy.abuse,
            store: store.as_deref().map(RedisBuckets::store),
            events: &gateway.events,
        }
        .report(&principal, &route.id, ctx.client_ip)
        .await;
        return Err(refused);
    }

    // 5b. The signature, over the request as received (a failure charges the per-IP bucket).
    let redis = gateway.limiter.redis();
    let signed = signature::check(
        &policy.signatures,
        route.require_signature,
        &SignedRequest {
            method: &parts.method,
            uri: &parts.uri,
            headers: &parts.headers,
            tls: ctx.conn.tls_version.is_some(),
            has_body: signature::has_body(&parts.headers, body.is_end_stream()),
        },
        Sender {
            principal: &principal,
            client_ip: ctx.client_ip,
            route: &route.id,
        },
        Stores {
            local: &gateway.nonces,
            redis: redis.as_deref().map(RedisBuckets::store),
            events: &gateway.events,
        },
    )
    .await;
    let signed = match signed {
        Ok(signed) => signed,
        Err(e) => return Err(charge_failed_auth(gateway, live, ctx, e).await),
    };
    ctx.signed = signed.is_some();

    // 6. Authorisation.
    let view = authz::authorize(&route.access, &principal, &matched.params, &raw_query)?;

    // 7. Validation, then the body within its limit.
    let validated = validate::validate(&route.params, &matched.params, &raw_query)?;
    let digest = signed.as_ref().and_then(|s| s.digest.as_ref());
    let body = validate::body::check_raw(
        &parts.headers,
        body,
        route.body.as_ref(),
        policy.server.max_request_body,
        |raw| signature::check_body(digest, raw),
    )
    .await;
    let body = match body {
        Ok(body) => body,
        Err(e @ GatewayError::Unauthenticated { .. }) => {
            ctx.signed = false;
            return Err(charge_failed_auth(gateway, live, ctx, e).await);
        }
        Err(e) => return Err(e),
    };
    let (upstream_path, upstream_query) =
        proxy::upstream_target(&route.upstream_path, &validated, &route.params);
    ctx.validated = Some(validated);

    // 8. Rate limits.
    ctx.rate_limit = gateway
        .limiter
        .check(
            &policy.rate_limits,
            route.rate_limit.as_ref(),
            principal.kind,
            &principal.id,
        )
        .await?;

    // 9. Load (the circuit is consulted per attempt inside `send`), then the upstream: the
    //    route's own, or its canary's for this principal while the guard holds.
    let in_flight = gateway.in_flight.try_acquire(policy.server.max_in_flight)?;
    let release = &live.releases[matched.route];
    let guard = release.guard.as_deref();
    let side = canary::side(route.canary.as_ref(), guard, &route.id, &principal.id);
    let target = canary::target(route.upstream, route.canary.as_ref(), side);
    let (upstream_name, settings) = policy.upstream_of(target);

    // 10. Proxy.
    let uri = proxy::upstream_uri(settings, &upstream_path, &upstream_query)?;
    let peer = ctx.conn.peer.ip();
    let headers = proxy::upstream_headers(&HeaderFacts {
        client_headers: &parts.headers,
        peer,
        peer_trusted: crate::vocab::address::is_trusted(peer, &policy.server.trusted_proxies),
        https: ctx.conn.tls_version.is_some(),
        request_id: &ctx.request_id,
        principal: &principal,
        forward_identity: settings.forward_identity,
        body: body
            .as_ref()
            .map(|b| (b.kind.content_type(), b.bytes.len())),
        // A 304 would answer without a body to check: no conditional request where the
        // answer is owner-checked (an existing id would tell itself apart from a missing one).
        conditional: route.views.is_empty() && route.answer.owners.is_empty(),
    });
    let request = UpstreamRequest {
        method: parts.method.clone(),
        uri,
        headers,
        body: body.map(|b| b.bytes).unwrap_or_default(),
    };
    let kept = release.stale.as_deref().and_then(|store| {
        stale::key(
            &principal,
            view,
            &parts.method,
            &upstream_path,
            &upstream_query,
        )
        .map(|key| (store, key))
    });
    let sent = live.upstream_runtime(target).send(settings, request).await;
    let mut storable = false;
    if let Ok((upstream, upstream_time)) = &sent {
        ctx.upstream_status = Some(upstream.status().as_u16());
        ctx.upstream_time = Some(*upstream_time);
        ctx.upstream_name = Some(upstream_name.clone());
        storable = kept.is_some() && stale::storable(upstream.headers());
    }

    // 11. Response (the guard counts what the caller got; a kept answer covers a failure).
    let answer = owners::AnswerCheck::new(&route.answer, &principal);
    let shaped = match sent {
        Ok((upstream, _)) => {
            response::shape(
                upstream,
                view.map(|i| &route.views[i]),
                &route.id,
                settings.expose_errors,
                settings.timeout,
                (&answer, &mut ctx.records),
            )
            .await
        }
        Err(e) => Err(e),
    };
    if let Some(guard) = guard {
        guard.record_outcome(side, &shaped, ctx.upstream_time);
    }
    let (mut response, from) = stale::settle(kept, shaped, storable, settings.timeout).await?;
    ctx.served = Some(match from {
        stale::From::Upstream => Served::Upstream,
        stale::From::Stale => Served::Stale,
    });
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

/// A failed authentication (a signature refusal) charges the client's per-IP bucket, which
/// answers 429 instead once it is empty.
async fn charge_failed_auth(
    gateway: &Gateway,
    live: &Live,
    ctx: &RequestContext,
    error: GatewayError,
) -> GatewayError {
    if !matches!(error, GatewayError::Unauthenticated { .. }) {
        return error;
    }
    gateway
        .limiter
        .charge_failed_auth(&live.policy.rate_limits, ctx.client_ip)
        .await
        .unwrap_or(error)
}
