//! One table: every refusal's status, problem type and the headers it must carry.

use http::HeaderValue;
use http_body_util::BodyExt;

use super::*;
use crate::vocab::cause::{
    AuthFailure, Denied, FrozenCause, LimitHit, Overload, ParamFailure, UpstreamFailure,
};

fn limited() -> RateLimitStatus {
    RateLimitStatus {
        limit: 20,
        remaining: 0,
        reset_secs: 10,
        retry_after_secs: 3,
    }
}

/// A refusal, its status, its problem type, and headers it must carry.
type Case = (
    GatewayError,
    u16,
    &'static str,
    &'static [(&'static str, &'static str)],
);

#[tokio::test]
async fn every_variant_maps_to_its_status_type_and_headers() {
    let cases: Vec<Case> = vec![
        (GatewayError::NotFound, 404, "not_found", &[]),
        (
            GatewayError::MethodNotAllowed {
                allow: HeaderValue::from_static("GET"),
            },
            405,
            "method_not_allowed",
            &[("allow", "GET")],
        ),
        (
            GatewayError::BadRequest(BadRequest::PathDotSegment),
            400,
            "bad_request",
            &[],
        ),
        (
            GatewayError::BadRequest(BadRequest::HeadersTooLarge),
            431,
            "bad_request",
            &[],
        ),
        (
            GatewayError::InvalidParameter {
                errors: vec![ParamError {
                    param: "p".into(),
                    reason: "r".into(),
                }],
                cause: ParamFailure::InvalidValue,
            },
            400,
            "invalid_parameter",
            &[],
        ),
        (
            GatewayError::Unauthenticated {
                cause: AuthFailure::TokenExpired,
            },
            401,
            "unauthenticated",
            &[("www-authenticate", "Bearer")],
        ),
        (
            GatewayError::Forbidden {
                cause: Denied::OwnerMismatch,
            },
            403,
            "forbidden",
            &[],
        ),
        (
            GatewayError::Frozen {
                cause: FrozenCause::IpFrozen,
            },
            403,
            "frozen",
            &[],
        ),
        (
            GatewayError::RateLimited {
                status: limited(),
                cause: LimitHit::RouteLimit,
            },
            429,
            "rate_limited",
            &[
                ("retry-after", "3"),
                ("ratelimit-limit", "20"),
                ("ratelimit-remaining", "0"),
                ("ratelimit-reset", "10"),
            ],
        ),
        (GatewayError::PayloadTooLarge, 413, "payload_too_large", &[]),
        (
            GatewayError::Overloaded {
                cause: Overload::MaxInFlight,
            },
            503,
            "overloaded",
            &[("retry-after", "1")],
        ),
        (
            GatewayError::CircuitOpen {
                retry_after_secs: 7,
            },
            503,
            "circuit_open",
            &[("retry-after", "7")],
        ),
        (
            GatewayError::BadGateway {
                cause: UpstreamFailure::UpstreamUnreachable,
            },
            502,
            "bad_gateway",
            &[],
        ),
        (
            GatewayError::GatewayTimeout {
                cause: UpstreamFailure::UpstreamTimeout,
            },
            504,
            "gateway_timeout",
            &[],
        ),
        (
            GatewayError::UpstreamError {
                status: StatusCode::SERVICE_UNAVAILABLE,
            },
            503,
            "upstream_error",
            &[],
        ),
        (
            GatewayError::AuditUnavailable,
            503,
            "audit_unavailable",
            &[("retry-after", "1")],
        ),
        (
            GatewayError::Internal {
                cause: crate::vocab::cause::InternalFailure::Panic,
            },
            500,
            "internal_error",
            &[],
        ),
    ];
    for (error, status, reason, headers) in cases {
        assert_eq!(error.reason(), reason);
        let response = crate::vocab::problem::render(&error, "req-9");
        assert_eq!(response.status().as_u16(), status, "{reason}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        for (name, value) in headers {
            assert_eq!(response.headers()[*name], *value, "{reason}: {name}");
        }
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            problem["type"],
            format!("https://ordergate.dev/problems/{reason}")
        );
        assert_eq!(problem["status"], status);
        assert_eq!(problem["instance"], "req-9");
        assert!(problem["title"].is_string() && problem["detail"].is_string());
        assert_eq!(
            problem.get("errors").is_some(),
            reason == "invalid_parameter"
        );
        let text = String::from_utf8_lossy(&body);
        for secret in ["token_expired", "owner_mismatch", "upstream_unreachable"] {
            assert!(
                !text.contains(secret),
                "{reason}: the cause reached the caller"
            );
        }
    }
}

#[test]
fn only_401_403_and_429_are_denials() {
    assert!(
        GatewayError::Unauthenticated {
            cause: AuthFailure::BadSignature
        }
        .is_denial()
    );
    assert!(
        GatewayError::Forbidden {
            cause: Denied::ScopeMissing
        }
        .is_denial()
    );
    assert!(
        GatewayError::RateLimited {
            status: limited(),
            cause: LimitHit::RouteLimit
        }
        .is_denial()
    );
    assert!(
        !GatewayError::Frozen {
            cause: FrozenCause::IpFrozen
        }
        .is_denial(),
        "a frozen answer must not extend the freeze"
    );
    assert!(!GatewayError::NotFound.is_denial());
}
