//! Every refusal the gateway makes, as one enum rendered to `application/problem+json`
//! (RFC 9457) by one exhaustive `match`: a new variant cannot compile without a status, a
//! problem type and a caller-facing detail. The caller sees a coarse `detail`; the precise cause
//! (`cause()`, e.g. `token_expired`) goes to the audit record, logs and metrics only. No variant
//! carries client-supplied text, so no error body can echo a token, a key or upstream internals.

use http::{HeaderValue, StatusCode};
use serde::Serialize;

use crate::vocab::cause::{
    AuthFailure, Denied, FrozenCause, InternalFailure, LimitHit, Overload, ParamFailure,
    UpstreamFailure,
};
use crate::vocab::rate_limit_status::RateLimitStatus;

/// Why a request was malformed (400 `bad_request`, or 431 for oversized headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRequest {
    /// A `.` or `..` path segment, raw or percent-encoded.
    PathDotSegment,
    /// An empty path segment (`//`).
    PathEmptySegment,
    /// An encoded `/` or `\`, or a raw `\`.
    PathEncodedSeparator,
    /// A `%` not followed by two hex digits in the path.
    PathBadEncoding,
    /// Percent-decoded path bytes that are not UTF-8.
    PathInvalidUtf8,
    /// A control character in the path.
    PathControlCharacter,
    /// More than one kind of credential in one request.
    TwoCredentials,
    /// An API key (the key header's name) in the query string.
    KeyInQuery,
    /// The request headers are larger than `max_header_bytes`.
    HeadersTooLarge,
    /// The request body could not be read.
    BodyUnreadable,
    /// A request body on a route that declares none.
    BodyNotAllowed,
    /// A body that is not of a media type the route declares, or not valid as one.
    BodyInvalid,
}

impl BadRequest {
    /// Every value, in declaration order (the denial metrics export each at 0).
    pub const ALL: &'static [Self] = &[
        Self::PathDotSegment,
        Self::PathEmptySegment,
        Self::PathEncodedSeparator,
        Self::PathBadEncoding,
        Self::PathInvalidUtf8,
        Self::PathControlCharacter,
        Self::TwoCredentials,
        Self::KeyInQuery,
        Self::HeadersTooLarge,
        Self::BodyUnreadable,
        Self::BodyNotAllowed,
        Self::BodyInvalid,
    ];
}

impl BadRequest {
    /// The machine code written to the audit record.
    pub fn cause(self) -> &'static str {
        match self {
            BadRequest::PathDotSegment => "path_dot_segment",
            BadRequest::PathEmptySegment => "path_empty_segment",
            BadRequest::PathEncodedSeparator => "path_encoded_separator",
            BadRequest::PathBadEncoding => "path_bad_encoding",
            BadRequest::PathInvalidUtf8 => "path_invalid_utf8",
            BadRequest::PathControlCharacter => "path_control_character",
            BadRequest::TwoCredentials => "two_credentials",
            BadRequest::KeyInQuery => "api_key_in_query",
            BadRequest::HeadersTooLarge => "headers_too_large",
            BadRequest::BodyUnreadable => "body_unreadable",
            BadRequest::BodyNotAllowed => "body_not_allowed",
            BadRequest::BodyInvalid => "body_invalid",
        }
    }

    /// What the caller is told.
    pub fn detail(self) -> &'static str {
        match self {
            BadRequest::PathDotSegment => "the path contains a dot segment",
            BadRequest::PathEmptySegment => "the path contains an empty segment",
            BadRequest::PathEncodedSeparator => {
                "the path contains an encoded or backslash separator"
            }
            BadRequest::PathBadEncoding => "the path contains a malformed percent-escape",
            BadRequest::PathInvalidUtf8 => "the path is not valid UTF-8",
            BadRequest::PathControlCharacter => "the path contains a control character",
            BadRequest::TwoCredentials => "present exactly one credential",
            BadRequest::KeyInQuery => {
                "API keys are accepted only in their header, never in the query string; \
                 treat the key as exposed and rotate it"
            }
            BadRequest::HeadersTooLarge => "the request headers are too large",
            BadRequest::BodyUnreadable => "the request body could not be read",
            BadRequest::BodyNotAllowed => "this route accepts no request body",
            BadRequest::BodyInvalid => "the request body is not of a type this route accepts",
        }
    }
}

/// One violation in a 400 `invalid_parameter` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParamError {
    /// The parameter's name as the policy declares it (or as sent, shortened, when unknown).
    pub param: String,
    /// What is wrong, in words a partner developer can act on; never echoes a long value.
    pub reason: String,
}

/// A refusal or failure produced by the gateway itself.
#[derive(Debug)]
pub enum GatewayError {
    /// No route has this path.
    NotFound,
    /// A route has this path, but not for this method.
    MethodNotAllowed {
        /// The methods the route does accept, for the `Allow` header.
        allow: HeaderValue,
    },
    /// The request is malformed.
    BadRequest(BadRequest),
    /// The query or path parameters failed validation; every violation is listed.
    InvalidParameter {
        /// Every violation found.
        errors: Vec<ParamError>,
        /// The most telling violation, for the audit detail.
        cause: ParamFailure,
    },
    /// No credential, or one that was not accepted. `cause` is the precise reason.
    Unauthenticated {
        /// Why the credential was refused.
        cause: AuthFailure,
    },
    /// Authenticated, but not allowed. `cause` is `scope_missing`, `owner_mismatch`, ...
    Forbidden {
        /// Which authorisation rule refused.
        cause: Denied,
    },
    /// The client IP or principal is frozen by the abuse guard.
    Frozen {
        /// Whether the client IP or the principal is frozen.
        cause: FrozenCause,
    },
    /// Over a rate limit.
    RateLimited {
        /// The bucket's state, for the `RateLimit-*` and `Retry-After` headers.
        status: RateLimitStatus,
        /// Which bucket refused.
        cause: LimitHit,
    },
    /// The request body is larger than `max_request_body`.
    PayloadTooLarge,
    /// Too many requests in flight, or the rate-limit backend failed under `reject`.
    Overloaded {
        /// Why the request could not be taken now.
        cause: Overload,
    },
    /// The upstream circuit is open.
    CircuitOpen {
        /// When the circuit may half-open, for `Retry-After`.
        retry_after_secs: u64,
    },
    /// The upstream could not be reached or answered something unusable.
    BadGateway {
        /// What went wrong with the upstream.
        cause: UpstreamFailure,
    },
    /// The upstream (or the whole request) took too long.
    GatewayTimeout {
        /// Which timeout fired.
        cause: UpstreamFailure,
    },
    /// The upstream answered 5xx and its body was replaced.
    UpstreamError {
        /// The upstream's status, kept for the audit record.
        status: StatusCode,
    },
    /// Audit records cannot be written and `on_error = "reject"`.
    AuditUnavailable,
    /// The gateway itself failed (a panic caught at the service boundary). `cause` is recorded,
    /// never shown: the caller sees only that it was not its fault.
    Internal {
        /// Why, for the audit record.
        cause: InternalFailure,
    },
}

impl GatewayError {
    /// The problem `type` suffix and the audit `reason` (CONTRACT.md §3).
    pub fn reason(&self) -> &'static str {
        match self {
            GatewayError::NotFound => "not_found",
            GatewayError::MethodNotAllowed { .. } => "method_not_allowed",
            GatewayError::BadRequest(_) => "bad_request",
            GatewayError::InvalidParameter { .. } => "invalid_parameter",
            GatewayError::Unauthenticated { .. } => "unauthenticated",
            GatewayError::Forbidden { .. } => "forbidden",
            GatewayError::Frozen { .. } => "frozen",
            GatewayError::RateLimited { .. } => "rate_limited",
            GatewayError::PayloadTooLarge => "payload_too_large",
            GatewayError::Overloaded { .. } => "overloaded",
            GatewayError::CircuitOpen { .. } => "circuit_open",
            GatewayError::BadGateway { .. } => "bad_gateway",
            GatewayError::GatewayTimeout { .. } => "gateway_timeout",
            GatewayError::UpstreamError { .. } => "upstream_error",
            GatewayError::AuditUnavailable => "audit_unavailable",
            GatewayError::Internal { .. } => "internal_error",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::NotFound => StatusCode::NOT_FOUND,
            GatewayError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::BadRequest(BadRequest::HeadersTooLarge) => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            GatewayError::BadRequest(_) => StatusCode::BAD_REQUEST,
            GatewayError::InvalidParameter { .. } => StatusCode::BAD_REQUEST,
            GatewayError::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            GatewayError::Forbidden { .. } => StatusCode::FORBIDDEN,
            GatewayError::Frozen { .. } => StatusCode::FORBIDDEN,
            GatewayError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::CircuitOpen { .. } => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            GatewayError::GatewayTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::UpstreamError { status } => *status,
            GatewayError::AuditUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The precise machine cause for the audit record's `detail` (null when the reason says it all).
    pub fn cause(&self) -> Option<&'static str> {
        match self {
            GatewayError::NotFound => None,
            GatewayError::MethodNotAllowed { .. } => None,
            GatewayError::BadRequest(b) => Some(b.cause()),
            GatewayError::InvalidParameter { cause, .. } => Some(cause.as_str()),
            GatewayError::Unauthenticated { cause } => Some(cause.as_str()),
            GatewayError::Forbidden { cause } => Some(cause.as_str()),
            GatewayError::Frozen { cause } => Some(cause.as_str()),
            GatewayError::RateLimited { cause, .. } => Some(cause.as_str()),
            GatewayError::PayloadTooLarge => None,
            GatewayError::Overloaded { cause } => Some(cause.as_str()),
            GatewayError::CircuitOpen { .. } => None,
            GatewayError::BadGateway { cause } => Some(cause.as_str()),
            GatewayError::GatewayTimeout { cause } => Some(cause.as_str()),
            GatewayError::UpstreamError { .. } => None,
            GatewayError::AuditUnavailable => None,
            GatewayError::Internal { cause } => Some(cause.as_str()),
        }
    }

    /// True for the answers the abuse guard counts (401, 403, 429).
    pub fn is_denial(&self) -> bool {
        matches!(
            self,
            GatewayError::Unauthenticated { .. }
                | GatewayError::Forbidden { .. }
                | GatewayError::RateLimited { .. }
        )
    }

    /// The problem's `title` and the caller-facing `detail`: coarse on purpose.
    pub fn title_and_detail(&self) -> (&'static str, &'static str) {
        match self {
            GatewayError::NotFound => ("Not Found", "no route matches this path"),
            GatewayError::MethodNotAllowed { .. } => (
                "Method Not Allowed",
                "this path does not accept this method",
            ),
            GatewayError::BadRequest(b) => ("Bad Request", b.detail()),
            GatewayError::InvalidParameter { .. } => (
                "Invalid Parameter",
                "one or more parameters are invalid; see `errors`",
            ),
            GatewayError::Unauthenticated { cause } => (
                "Unauthenticated",
                if *cause == AuthFailure::MissingCredential {
                    "no credential was presented"
                } else {
                    "the credential was not accepted"
                },
            ),
            GatewayError::Forbidden { .. } => (
                "Forbidden",
                "the caller is not allowed to access this resource",
            ),
            GatewayError::Frozen { .. } => (
                "Frozen",
                "too many refused requests; access is suspended for a while",
            ),
            GatewayError::RateLimited { .. } => ("Too Many Requests", "rate limit exceeded"),
            GatewayError::PayloadTooLarge => ("Payload Too Large", "the request body is too large"),
            GatewayError::Overloaded { .. } => {
                ("Overloaded", "the gateway is overloaded; retry later")
            }
            GatewayError::CircuitOpen { .. } => (
                "Circuit Open",
                "the order service is failing; requests are paused",
            ),
            GatewayError::BadGateway { .. } => (
                "Bad Gateway",
                "the order service could not be reached or answered badly",
            ),
            GatewayError::GatewayTimeout { .. } => (
                "Gateway Timeout",
                "the order service did not answer in time",
            ),
            GatewayError::UpstreamError { .. } => (
                "Upstream Error",
                "the order service failed to answer this request",
            ),
            GatewayError::AuditUnavailable => (
                "Audit Unavailable",
                "requests cannot be recorded right now, so none is served",
            ),
            GatewayError::Internal { .. } => (
                "Internal Error",
                "the gateway failed to handle this request; it has been recorded",
            ),
        }
    }
}

mod start;
pub use start::StartError;

#[cfg(test)]
mod tests;
