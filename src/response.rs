//! Stage 11, response. Upstream 5xx bodies are replaced by 5xx `upstream_error` problems
//! (status kept) unless `expose_errors`; hop-by-hop headers, `Server` and `X-Powered-By` are
//! dropped; on a route with views the JSON body is filtered for the caller (fail closed: a
//! non-JSON, encoded or over-8-MiB answer becomes 502 `bad_gateway`). Every response, the
//! gateway's own refusals included, gets `X-Request-Id`, `X-Content-Type-Options: nosniff`,
//! `Cache-Control: no-store` and (over TLS) `Strict-Transport-Security`.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::body::GatewayBody;
use crate::error::GatewayError;
use crate::views::CompiledView;

/// The largest upstream body a view will read.
pub const MAX_VIEW_BODY: usize = 8 * 1024 * 1024;

/// Headers that describe one hop, never forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers (and those `Connection` names), `Server` and `X-Powered-By`.
pub fn strip_upstream_headers(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&named) {
        headers.remove(name);
    }
    headers.remove(header::SERVER);
    headers.remove(HeaderName::from_static("x-powered-by"));
}

/// Shapes the upstream response for the caller.
pub async fn shape(
    upstream: Response<Incoming>,
    view: Option<&CompiledView>,
    route_id: &str,
    expose_errors: bool,
    body_timeout: Duration,
) -> Result<Response<GatewayBody>, GatewayError> {
    let status = upstream.status();
    if status.is_server_error() && !expose_errors {
        return Err(GatewayError::UpstreamError { status });
    }
    let (mut parts, body) = upstream.into_parts();
    strip_upstream_headers(&mut parts.headers);
    let Some(view) = view else {
        return Ok(Response::from_parts(
            parts,
            GatewayBody::upstream(body, body_timeout),
        ));
    };
    if matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED) {
        return Ok(Response::from_parts(parts, GatewayBody::empty()));
    }
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
    if !is_json {
        return Err(GatewayError::BadGateway {
            cause: "view_non_json",
        });
    }
    if parts
        .headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v != "identity")
    {
        return Err(GatewayError::BadGateway {
            cause: "view_encoded_body",
        });
    }
    if parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_VIEW_BODY as u64)
    {
        return Err(GatewayError::BadGateway {
            cause: "view_body_too_large",
        });
    }
    let collected = tokio::time::timeout(body_timeout, Limited::new(body, MAX_VIEW_BODY).collect())
        .await
        .map_err(|_| GatewayError::GatewayTimeout {
            cause: "upstream_body_timeout",
        })?
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                GatewayError::BadGateway {
                    cause: "view_body_too_large",
                }
            } else {
                GatewayError::BadGateway {
                    cause: "upstream_body_error",
                }
            }
        })?
        .to_bytes();
    // An error answer is not the shape the view describes: its rules then apply by key anywhere.
    let shaped = if status.is_success() {
        view.apply_bytes(&collected)
    } else {
        view.apply_error_bytes(&collected)
    }
    .map_err(|_| GatewayError::BadGateway {
        cause: "view_invalid_json",
    })?;
    metrics::counter!(
        "ordergate_views_applied_total",
        "route" => route_id.to_owned(),
        "view" => view.scope_name.clone()
    )
    .increment(1);
    parts.headers.remove(header::ETAG);
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
        headers.insert(crate::request_id::X_REQUEST_ID.clone(), v);
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

    #[test]
    fn strips_hop_by_hop_and_identifying_headers() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "close, x-internal"),
            ("x-internal", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("server", "OrderService/2.3"),
            ("x-powered-by", "PHP/5.6"),
            ("content-type", "application/json"),
        ] {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        strip_upstream_headers(&mut h);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-type"]);
    }
}
