//! Every error the gateway makes, rendered as `application/problem+json` (RFC 9457) with the
//! headers its status needs (`Allow`, `WWW-Authenticate`, `Retry-After`, `RateLimit-*`).

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response};
use serde::Serialize;

use crate::vocab::body::GatewayBody;
use crate::vocab::error::{GatewayError, ParamError};

/// Renders the problem+json response. `request_id` becomes `instance`.
pub fn render(error: &GatewayError, request_id: &str) -> Response<GatewayBody> {
    let (title, detail) = error.title_and_detail();
    let status = error.status();
    let problem = Problem {
        kind: ProblemType(error.reason()),
        title,
        status: status.as_u16(),
        detail,
        instance: request_id,
        errors: match error {
            GatewayError::InvalidParameter { errors, .. } => Some(errors),
            _ => None,
        },
    };
    // Serialising plain strings and numbers cannot fail; fall back to an empty object anyway.
    let body = serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(GatewayBody::full(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    match error {
        GatewayError::MethodNotAllowed { allow } => {
            headers.insert(ALLOW, allow.clone());
        }
        GatewayError::Unauthenticated { .. } => {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        GatewayError::RateLimited { status, .. } => {
            headers.insert(
                RETRY_AFTER,
                HeaderValue::from(status.retry_after_secs.max(1)),
            );
            status.write_headers(headers);
        }
        GatewayError::CircuitOpen { retry_after_secs } => {
            headers.insert(RETRY_AFTER, HeaderValue::from((*retry_after_secs).max(1)));
        }
        GatewayError::Overloaded { .. } | GatewayError::AuditUnavailable => {
            headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        GatewayError::NotFound
        | GatewayError::BadRequest(_)
        | GatewayError::InvalidParameter { .. }
        | GatewayError::Forbidden { .. }
        | GatewayError::Frozen { .. }
        | GatewayError::PayloadTooLarge
        | GatewayError::BadGateway { .. }
        | GatewayError::GatewayTimeout { .. }
        | GatewayError::UpstreamError { .. }
        | GatewayError::Internal { .. } => {}
    }
    response
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: ProblemType,
    title: &'static str,
    status: u16,
    detail: &'static str,
    instance: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a Vec<ParamError>>,
}

struct ProblemType(&'static str);

impl Serialize for ProblemType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("https://ordergate.dev/problems/{}", self.0))
    }
}
