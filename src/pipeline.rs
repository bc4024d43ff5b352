//! The stage order of CONTRACT.md §2, written in exactly one place. Each stage is a module whose
//! doc says what it checks, what it refuses with, and what it adds to the [`RequestContext`].
//!
//! ```text
//!  1 connection      server.rs: TLS 1.2/1.3, ALPN, mTLS, connection limit,
//!                    header read timeout; here: header size (431)
//!  2 request id      request_id.rs
//! 12 audit           audit/: a queue slot is reserved first; the record is sent when the
//!                    response body ends or is dropped, so every exit below is recorded
//!  3 route           route.rs        404, 405 + Allow, 400 for unsafe paths
//!  4 frozen IP       abuse.rs        403 frozen
//!  5 authenticate    authn/          400 (two credentials, key in query), 401;
//!                    a failure also charges the per-IP bucket (rate_limit/) → 429
//!    frozen principal abuse.rs       403 frozen
//!  6 authorise       authz.rs        403 (scopes, owner, no view)
//!  7 validate        validate/       400 invalid_parameter, 413
//!  8 rate limit      rate_limit/     429, 503 (backend down under reject)
//!  9 load, circuit   load_shed.rs, circuit.rs   503 overloaded / circuit_open
//! 10 proxy           proxy.rs        502, 504
//! 11 response        response.rs, views.rs      502 (views fail closed), 5xx upstream_error
//! ```
//!
//! Denials (401, 403, 429) are counted by the abuse guard after the answer is decided.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Limited};

use crate::abuse;
use crate::audit::{Entry, Pending};
use crate::authn;
use crate::authz;
use crate::body::GatewayBody;
use crate::context::{ConnInfo, RequestContext, client_ip};
use crate::error::{BadRequest, GatewayError};
use crate::gateway::{Gateway, Live};
use crate::proxy::{self, HeaderFacts, UpstreamRequest};
use crate::request_id;
use crate::response;
use crate::validate;

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
    let (parts, body) = request.into_parts();
    let mut ctx = RequestContext {
        request_id: request_id::from_headers(&parts.headers),
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
    };
    let ticket = gateway.audit.reserve().await;
    let outcome = match &ticket {
        Some(_) if gateway.audit.accepting() => {
            let deadline = live.policy.server.request_timeout;
            let work = tokio::time::timeout(deadline, run(&gateway, &live, &mut ctx, parts, body));
            // The shutdown cutoff ends a request still waiting (CONTRACT §11: bounded exit).
            tokio::select! {
                outcome = work => match outcome {
                    Ok(outcome) => outcome,
                    Err(_) => Err(GatewayError::GatewayTimeout {
                        cause: "request_timeout",
                    }),
                },
                () = gateway.cutoff.reached() => Err(GatewayError::Overloaded { cause: "shutdown" }),
            }
        }
        _ => Err(GatewayError::AuditUnavailable),
    };
    let (mut response, reason, detail) = match outcome {
        Ok(response) => (response, "ok", None),
        Err(error) => {
            if error.is_denial() {
                count_denial(&gateway, &live, &ctx).await;
            }
            (
                error.to_response(&ctx.request_id),
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
    if let Some(ticket) = ticket {
        let entry = Entry {
            ts: SystemTime::now(),
            request_id: ctx.request_id,
            client_ip: ctx.client_ip,
            tls_version: ctx.conn.tls_version,
            client_subject: ctx.conn.client_subject_text.clone(),
            principal: ctx.principal,
            method: ctx.method,
            route: ctx.route_id,
            path: ctx.path,
            query: ctx.validated.map(|v| v.query).unwrap_or_default(),
            reason,
            detail,
            status: response.status().as_u16(),
            upstream_status: ctx.upstream_status,
            duration: started.elapsed(),
            upstream: ctx.upstream_time,
            bytes_out: 0,
        };
        response.body_mut().set_pending(Pending {
            ticket,
            entry,
            started,
        });
    }
    response.body_mut().set_cutoff(gateway.cutoff.clone());
    response
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
    let header_bytes: usize = parts
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > policy.server.max_header_bytes {
        return Err(GatewayError::BadRequest(BadRequest::HeadersTooLarge));
    }

    // 3. Route.
    let matched = policy.table.lookup(&parts.method, parts.uri.path())?;
    let route = &policy.routes[matched.route];
    ctx.route_id = Some(route.id.clone());
    let raw_query = validate::query::parse(parts.uri.query().unwrap_or(""));

    // 4. Frozen IP.
    if gateway.abuse.is_ip_frozen(ctx.client_ip) {
        return Err(GatewayError::Frozen { cause: "ip_frozen" });
    }

    // 5. Authentication (a failure charges the per-IP bucket), then frozen principal.
    let key_header = policy.auth.api_keys.as_ref().map(|k| k.header.as_str());
    let declared = |name: &str| route.params.query.iter().any(|s| *s.name == *name);
    if authn::credential_in_query(&raw_query, key_header, &declared) {
        return Err(GatewayError::BadRequest(BadRequest::KeyInQuery));
    }
    let principal = match authn::authenticate(
        policy,
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
    if gateway.abuse.is_principal_frozen(&principal.id) {
        return Err(GatewayError::Frozen {
            cause: "principal_frozen",
        });
    }

    // 6. Authorisation.
    let view = authz::authorize(route, &principal, &matched.params, &raw_query)?;

    // 7. Validation, then the body within its limit.
    let validated = validate::validate(&route.params, &matched.params, &raw_query)?;
    let body = read_body(&parts, body, policy.server.max_request_body).await?;
    let path_texts: Vec<(&str, String)> = validated
        .path
        .iter()
        .map(|(name, value)| {
            let mut text = String::new();
            value.write_canonical(&mut text);
            (&**name, text)
        })
        .collect();
    let mut upstream_path = String::with_capacity(64);
    route.upstream_path.render(&mut upstream_path, |name| {
        path_texts
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t.as_str())
    });
    let upstream_query = validated.upstream_query(&route.params);
    ctx.validated = Some(validated);

    // 8. Rate limits.
    ctx.rate_limit = gateway
        .limiter
        .check(
            &policy.rate_limits,
            route.rate_limit.as_ref(),
            &principal.id,
        )
        .await?;

    // 9. Load (the circuit is consulted per attempt inside `send`).
    let in_flight = gateway.in_flight.try_acquire(policy.server.max_in_flight)?;

    // 10. Proxy.
    let uri = proxy::upstream_uri(&policy.upstream, &upstream_path, &upstream_query)?;
    let peer = ctx.conn.peer.ip();
    let headers = proxy::upstream_headers(&HeaderFacts {
        client_headers: &parts.headers,
        peer,
        peer_trusted: policy
            .server
            .trusted_proxies
            .iter()
            .any(|n| n.contains(&peer)),
        https: ctx.conn.tls_version.is_some(),
        request_id: &ctx.request_id,
        principal: &principal,
        forward_identity: policy.upstream.forward_identity,
        body_len: body.len(),
    });
    let request = UpstreamRequest {
        method: parts.method.clone(),
        uri,
        headers,
        body,
    };
    let (upstream, upstream_time) = live.upstream.send(&policy.upstream, request).await?;
    ctx.upstream_status = Some(upstream.status().as_u16());
    ctx.upstream_time = Some(upstream_time);

    // 11. Response.
    let view = view.map(|i| &route.views[i]);
    let mut response = response::shape(
        upstream,
        view,
        &route.id,
        policy.upstream.expose_errors,
        policy.upstream.timeout,
    )
    .await?;
    response.body_mut().set_in_flight(Some(in_flight));
    Ok(response)
}

/// Reads the request body, refusing one over `max` (413) before or while reading it.
async fn read_body<B>(parts: &Parts, body: B, max: u64) -> Result<Bytes, GatewayError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(GatewayError::PayloadTooLarge);
    }
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(GatewayError::PayloadTooLarge),
        Err(_) => Err(GatewayError::BadRequest(BadRequest::BodyUnreadable)),
    }
}

/// Counts a 401/403/429 against the client IP and, when known, the principal.
async fn count_denial(gateway: &Gateway, live: &Live, ctx: &RequestContext) {
    let redis = gateway.limiter.redis();
    let settings = &live.policy.abuse;
    gateway
        .abuse
        .deny(settings, &abuse::ip_key(ctx.client_ip), redis.as_deref())
        .await;
    if let Some(p) = &ctx.principal {
        gateway
            .abuse
            .deny(settings, &abuse::principal_key(&p.id), redis.as_deref())
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};

    fn parts(content_length: Option<&str>) -> Parts {
        let mut builder = Request::post("/x");
        if let Some(n) = content_length {
            builder = builder.header("content-length", n);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[tokio::test]
    async fn bodies_are_read_within_their_limit() {
        let ok = read_body(&parts(None), Full::new(Bytes::from_static(b"hello")), 10)
            .await
            .unwrap();
        assert_eq!(ok, "hello");
        let declared = read_body(&parts(Some("11")), Full::new(Bytes::new()), 10).await;
        assert!(matches!(declared, Err(GatewayError::PayloadTooLarge)));
        let streamed = read_body(&parts(None), Full::new(Bytes::from(vec![0u8; 11])), 10).await;
        assert!(matches!(streamed, Err(GatewayError::PayloadTooLarge)));
        let chunks: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = vec![
            Ok(http_body::Frame::data(Bytes::from_static(b"ab"))),
            Err(std::io::Error::other("reset")),
        ];
        let broken = read_body(&parts(None), StreamBody::new(futures_stream(chunks)), 10).await;
        assert!(matches!(
            broken,
            Err(GatewayError::BadRequest(BadRequest::BodyUnreadable))
        ));
    }

    fn futures_stream<T: Unpin>(items: Vec<T>) -> impl futures_core::Stream<Item = T> + Unpin {
        struct Items<T>(std::collections::VecDeque<T>);
        impl<T: Unpin> futures_core::Stream for Items<T> {
            type Item = T;
            fn poll_next(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Option<T>> {
                std::task::Poll::Ready(self.0.pop_front())
            }
        }
        Items(items.into())
    }
}
