//! `ordergate_denials_total{route,reason,detail}` (CONTRACT §8.1): every request the gateway
//! refused as the caller's doing (a 4xx it decided itself), by route, reason and audit detail.
//! 5xx answers are the gateway's or the upstream's failures, not denials; they are in
//! `ordergate_requests_total` by reason. Every label is from a closed list: the route from the
//! policy (`none` when nothing matched), the reason and detail from the error's typed cause
//! (`none` when the reason says it all), so no request can mint a series.

use std::sync::Arc;

use crate::vocab::cause::{AuthFailure, Denied, FrozenCause, LimitHit, ParamFailure};
use crate::vocab::error::{BadRequest, GatewayError};

const NAME: &str = "ordergate_denials_total";

/// The route label of a request that matched no route.
pub const UNROUTED: &str = "none";

/// The detail label of a denial whose reason needs none.
const NO_DETAIL: &str = "none";

/// Counts `error` against `route` when it is a denial (a 4xx); other outcomes are not denials.
pub fn count(route: Option<&Arc<str>>, error: &GatewayError) {
    if !error.status().is_client_error() {
        return;
    }
    let route = route.cloned().unwrap_or_else(|| UNROUTED.into());
    metrics::counter!(
        NAME,
        "route" => route,
        "reason" => error.reason(),
        "detail" => error.cause().unwrap_or(NO_DETAIL)
    )
    .increment(1);
}

/// Every (reason, detail) a request that matched no route can be denied with.
fn unrouted() -> Vec<(&'static str, &'static str)> {
    let mut pairs = vec![("not_found", NO_DETAIL), ("method_not_allowed", NO_DETAIL)];
    pairs.extend(BadRequest::ALL.iter().map(|b| ("bad_request", b.cause())));
    pairs
}

/// Every (reason, detail) a routed request can be denied with.
fn routed() -> Vec<(&'static str, &'static str)> {
    let mut pairs = vec![("payload_too_large", NO_DETAIL)];
    pairs.extend(BadRequest::ALL.iter().map(|b| ("bad_request", b.cause())));
    pairs.extend(
        ParamFailure::ALL
            .iter()
            .map(|c| ("invalid_parameter", c.as_str())),
    );
    pairs.extend(
        AuthFailure::ALL
            .iter()
            .map(|c| ("unauthenticated", c.as_str())),
    );
    pairs.extend(Denied::ALL.iter().map(|c| ("forbidden", c.as_str())));
    pairs.extend(FrozenCause::ALL.iter().map(|c| ("frozen", c.as_str())));
    pairs.extend(LimitHit::ALL.iter().map(|c| ("rate_limited", c.as_str())));
    pairs
}

/// Exports every denial series of `routes` (and of unrouted requests) at 0.
pub(super) fn export_known<'a>(routes: impl Iterator<Item = &'a Arc<str>>) {
    for (reason, detail) in unrouted() {
        metrics::counter!(NAME, "route" => UNROUTED, "reason" => reason, "detail" => detail)
            .increment(0);
    }
    let pairs = routed();
    for route in routes {
        for (reason, detail) in &pairs {
            metrics::counter!(
                NAME,
                "route" => route.clone(),
                "reason" => *reason,
                "detail" => *detail
            )
            .increment(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::cause::UpstreamFailure;

    #[test]
    fn the_pre_exported_pairs_cover_every_denial_the_causes_name() {
        let routed = routed();
        for cause in AuthFailure::ALL {
            let e = GatewayError::Unauthenticated { cause: *cause };
            assert!(
                routed.contains(&(e.reason(), e.cause().unwrap())),
                "{cause}"
            );
        }
        for cause in Denied::ALL {
            let e = GatewayError::Forbidden { cause: *cause };
            assert!(
                routed.contains(&(e.reason(), e.cause().unwrap())),
                "{cause}"
            );
        }
        let e = GatewayError::NotFound;
        assert!(unrouted().contains(&(e.reason(), NO_DETAIL)));
        for (reason, detail) in routed.iter().chain(unrouted().iter()) {
            for text in [reason, detail] {
                assert!(
                    text.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                    "{text}"
                );
            }
        }
    }

    /// A new `BadRequest` variant stops this from compiling until it is placed in `ALL` too.
    #[test]
    fn bad_request_all_lists_every_variant() {
        fn position(b: BadRequest) -> usize {
            match b {
                BadRequest::PathDotSegment => 0,
                BadRequest::PathEmptySegment => 1,
                BadRequest::PathEncodedSeparator => 2,
                BadRequest::PathBadEncoding => 3,
                BadRequest::PathInvalidUtf8 => 4,
                BadRequest::PathControlCharacter => 5,
                BadRequest::TwoCredentials => 6,
                BadRequest::KeyInQuery => 7,
                BadRequest::HeadersTooLarge => 8,
                BadRequest::BodyUnreadable => 9,
                BadRequest::BodyNotAllowed => 10,
                BadRequest::BodyInvalid => 11,
            }
        }
        assert_eq!(BadRequest::ALL.len(), 12);
        for (i, b) in BadRequest::ALL.iter().enumerate() {
            assert_eq!(position(*b), i, "{b:?}");
        }
    }

    #[test]
    fn only_client_errors_are_denials() {
        let denial = GatewayError::Forbidden {
            cause: Denied::OwnerMismatch,
        };
        assert!(denial.status().is_client_error());
        let failure = GatewayError::BadGateway {
            cause: UpstreamFailure::UpstreamUnreachable,
        };
        assert!(!failure.status().is_client_error());
        assert!(!GatewayError::AuditUnavailable.status().is_client_error());
    }
}
