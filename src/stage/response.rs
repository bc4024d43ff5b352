//! Stage 11, response. Upstream 5xx bodies are replaced by 5xx `upstream_error` problems
//! (status kept) unless `expose_errors`; upstream headers are an allow-list (so hop-by-hop
//! headers, `Server`, `X-Powered-By`, cookies and custom headers are dropped); on a route with
//! views the JSON body is filtered for the caller (fail closed: a non-JSON, encoded or over-8-MiB
//! answer becomes 502 `bad_gateway`) and nothing describing the unfiltered body (validators,
//! digests, its length) is passed on. Every response, the
//! gateway's own refusals included, gets `X-Request-Id`, `X-Content-Type-Options: nosniff`,
//! `Cache-Control: no-store` and (over TLS) `Strict-Transport-Security`.
//!
//! Where the route checks owners on the answer or counts its records (`stage/owners.rs`), the
//! body is read whole first, like a view's, and looked at in the view's pass (or one observing
//! pass without a view); a refused answer is dropped before any byte is sent. A route that only
//! counts passes an answer it cannot read (not JSON, encoded, declared over 8 MiB) on unchanged,
//! with no count.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::stage::owners::AnswerCheck;
use crate::stage::proxy::UpstreamSettings;
use crate::stage::views::CompiledView;
use crate::stage::views::watch;
use crate::vocab::body::GatewayBody;
use crate::vocab::cause::{Denied, UpstreamFailure};
use crate::vocab::error::GatewayError;

/// The largest upstream body a view will read.
pub const MAX_VIEW_BODY: usize = 8 * 1024 * 1024;

/// Upstream response headers the caller may see; everything else the order service sends
/// (`Set-Cookie`, `Link`, `Content-Location`, digests, custom headers that may carry PII, hop-by-hop
/// headers, `Server`, ...) is dropped. The gateway adds its own headers afterwards.
const FORWARDED_UPSTREAM_HEADERS: [HeaderName; 6] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::CONTENT_LANGUAGE,
    header::DATE,
    header::RETRY_AFTER,
];

/// Headers describing the upstream body as sent: forwarded only where that body reaches the
/// caller unchanged. On a route with views they would describe the unfiltered body (a validator
/// or length lets a caller test guesses about what the view removed); its length is recomputed.
const UNFILTERED_BODY_HEADERS: [HeaderName; 4] = [
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::ETAG,
    header::LAST_MODIFIED,
];

/// The caller's copy of the upstream response headers: built from the allow-list, not copied.
/// `viewed`: the route has views, so nothing describing the unfiltered body is kept. Headers
/// that the upstream's `Connection` names are hop-by-hop and never kept.
pub fn forwarded_upstream_headers(upstream: &HeaderMap, viewed: bool) -> HeaderMap {
    let hop_by_hop = |name: &HeaderName| {
        upstream
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|n| n.trim().eq_ignore_ascii_case(name.as_str()))
    };
    let mut headers = HeaderMap::with_capacity(8);
    let validators = [header::ETAG, header::LAST_MODIFIED];
    let allowed =
        FORWARDED_UPSTREAM_HEADERS
            .iter()
            .chain(if viewed { &[][..] } else { &validators[..] });
    for name in allowed {
        if (viewed && UNFILTERED_BODY_HEADERS.contains(name)) || hop_by_hop(name) {
            continue;
        }
        for value in upstream.get_all(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers
}

/// Stage 11 for the pipeline: the upstream's answer (stage 10's outcome) shaped by [`shape`]
/// under `upstream`'s `expose_errors` and body timeout; a stage 10 failure passes unchanged.
pub async fn stage(
    sent: Result<(Response<Incoming>, Duration), GatewayError>,
    view: Option<&CompiledView>,
    route: (&str, &UpstreamSettings),
    answer: (&AnswerCheck<'_>, &mut Option<u64>),
) -> Result<Response<GatewayBody>, GatewayError> {
    let (route_id, upstream) = route;
    let (response, _) = sent?;
    shape(
        response,
        view,
        route_id,
        upstream.expose_errors,
        upstream.timeout,
        answer,
    )
    .await
}

/// Shapes the upstream response for the caller; `answer`: what the answer is checked and
/// counted by, and where its record count goes.
pub async fn shape(
    upstream: Response<Incoming>,
    view: Option<&CompiledView>,
    route_id: &str,
    expose_errors: bool,
    body_timeout: Duration,
    answer: (&AnswerCheck<'_>, &mut Option<u64>),
) -> Result<Response<GatewayBody>, GatewayError> {
    let (answer, records) = answer;
    let status = upstream.status();
    if status.is_server_error() && !expose_errors {
        return Err(GatewayError::UpstreamError { status });
    }
    let (mut parts, body) = upstream.into_parts();
    let forwarded = forwarded_upstream_headers(&parts.headers, view.is_some());
    let sent = std::mem::replace(&mut parts.headers, forwarded);
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
        .unwrap_or(false);
    let encoded = sent
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v != "identity");
    let declared_too_large = sent
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_VIEW_BODY as u64);
    let count_only = view.is_none() && !answer.checks_owners();
    if (view.is_none() && answer.is_idle())
        || (count_only && (!is_json || encoded || declared_too_large))
    {
        return Ok(Response::from_parts(
            parts,
            GatewayBody::upstream(body, body_timeout),
        ));
    }
    if matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED) {
        // No body, so no owner to check: an owner-checked answer must carry one.
        return if answer.checks_owners() {
            Err(GatewayError::Forbidden {
                cause: Denied::OwnerMismatchResponse,
            })
        } else {
            Ok(Response::from_parts(parts, GatewayBody::empty()))
        };
    }
    if !is_json {
        return Err(answer.unreadable(UpstreamFailure::ViewNonJson));
    }
    if encoded {
        return Err(answer.unreadable(UpstreamFailure::ViewEncodedBody));
    }
    if declared_too_large {
        return Err(GatewayError::BadGateway {
            cause: UpstreamFailure::ViewBodyTooLarge,
        });
    }
    let collected = tokio::time::timeout(body_timeout, Limited::new(body, MAX_VIEW_BODY).collect())
        .await
        .map_err(|_| GatewayError::GatewayTimeout {
            cause: UpstreamFailure::UpstreamBodyTimeout,
        })?
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                GatewayError::BadGateway {
                    cause: UpstreamFailure::ViewBodyTooLarge,
                }
            } else {
                GatewayError::BadGateway {
                    cause: UpstreamFailure::UpstreamBodyError,
                }
            }
        })?
        .to_bytes();
    let mut probe = answer.probe(status.is_success());
    let Some(view) = view else {
        // No view: one pass that only looks; the body goes out as it came. JSON that does not
        // parse fails the owner check; a route that only counts passes it on, uncounted.
        match watch::inspect(&collected, answer.watch(), &mut probe) {
            Ok(()) => {
                answer.verdict(&probe)?;
                *records = probe.records();
            }
            Err(_) if count_only => {}
            Err(_) => return Err(answer.unreadable(UpstreamFailure::ViewInvalidJson)),
        }
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(collected.len()));
        return Ok(Response::from_parts(parts, GatewayBody::full(collected)));
    };
    // An error answer is not the shape the view describes: its rules then apply by key anywhere.
    let shaped = view
        .apply_watching(&collected, !status.is_success(), answer.watch(), &mut probe)
        .map_err(|_| answer.unreadable(UpstreamFailure::ViewInvalidJson))?;
    answer.verdict(&probe)?;
    *records = probe.records();
    metrics::counter!(
        "ordergate_views_applied_total",
        "route" => route_id.to_owned(),
        "view" => view.scope_name.clone()
    )
    .increment(1);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(shaped.len()));
    Ok(Response::from_parts(
        parts,
        GatewayBody::full(Bytes::from(shaped)),
    ))
}

/// Adds the headers every response carries.
pub fn finish_headers(headers: &mut HeaderMap, request_id: &str, tls: bool) {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert(crate::stage::request_id::X_REQUEST_ID.clone(), v);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if tls {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_allowed_upstream_headers_reach_the_caller() {
        let h = upstream(&[
            ("connection", "close, x-internal, content-language"),
            ("x-internal", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("server", "OrderService/2.3"),
            ("x-powered-by", "PHP/5.6"),
            ("set-cookie", "session=1"),
            ("set-cookie", "b=2"),
            ("link", "</api/customers/C1>; rel=customer"),
            ("content-location", "/api/orders/O1?phone=13812345678"),
            ("x-customer-phone", "13812345678"),
            ("digest", "sha-256=abc"),
            ("content-digest", "sha-256=:abc=:"),
            ("repr-digest", "sha-256=:abc=:"),
            ("content-md5", "abc"),
            ("content-type", "application/json"),
            ("content-language", "zh"),
            ("date", "Wed, 02 Dec 2026 00:00:00 GMT"),
            ("retry-after", "3"),
            ("content-length", "12"),
            ("etag", "\"full-body\""),
            ("last-modified", "Wed, 02 Dec 2026 00:00:00 GMT"),
        ]);
        let plain = forwarded_upstream_headers(&h, false);
        let names: Vec<&str> = plain.keys().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "content-type",
                "content-length",
                "date",
                "retry-after",
                "etag",
                "last-modified"
            ],
            "content-language is named by Connection, so hop-by-hop"
        );
        let viewed = forwarded_upstream_headers(&h, true);
        let names: Vec<&str> = viewed.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-type", "date", "retry-after"]);
        let encoded = upstream(&[("content-encoding", "gzip"), ("content-type", "text/plain")]);
        assert_eq!(forwarded_upstream_headers(&encoded, false).len(), 2);
        assert!(
            forwarded_upstream_headers(&encoded, true)
                .get(header::CONTENT_ENCODING)
                .is_none()
        );
    }
}
