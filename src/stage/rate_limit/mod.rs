//! Stage 8, rate limits: token buckets (GCRA) per principal per route and per principal overall,
//! plus a per-client-IP bucket charged only by requests that fail authentication. Principals are
//! keyed by kind and id (a token's `sub` never shares an API key's buckets), IPv6 clients by /64. Refuses with
//! 429 `rate_limited` and `Retry-After`; with `backend = "redis"` and Redis failing under
//! `on_backend_error = "reject"`, 503 `overloaded`.
//!
//! Adds to the context: the tightest bucket's figures, sent as `RateLimit-Limit`,
//! `RateLimit-Remaining` and `RateLimit-Reset` on every proxied response.

pub mod gcra;
pub mod local;
pub mod redis;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::vocab::cause::{LimitHit, Overload};
use crate::vocab::rate_limit_status::RateLimitStatus;
use arc_swap::ArcSwapOption;

use ipnet::IpNet;

use crate::stage::authn::FailedAuth;
use crate::vocab::address::address_group;
use crate::vocab::error::GatewayError;
use crate::vocab::principal_kind::PrincipalKind;
pub use gcra::BucketSpec;
pub use local::{BucketRef, Decision, LocalBuckets};
pub use redis::RedisBuckets;

/// The `RateLimit-*` figures of a bucket after a decision.
fn status_of(spec: &BucketSpec, e: &gcra::Evaluation) -> RateLimitStatus {
    RateLimitStatus {
        limit: spec.burst.get(),
        remaining: e.remaining,
        reset_secs: e.reset_secs,
        retry_after_secs: e.retry_after_secs,
    }
}

/// What to do when the shared backend fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBackendError {
    /// Use this instance's buckets.
    Local,
    /// Answer 503 `overloaded`.
    Reject,
}

/// Where buckets live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// Buckets in this process's memory.
    Local,
    /// Buckets in Redis, shared by every instance.
    Redis {
        /// The connection URL with the password filled in from the environment or a file.
        url: crate::vocab::secret::Secret,
        /// How long one Redis call may take before `on_backend_error` applies.
        timeout: Duration,
        /// Prepended to every bucket key.
        prefix: String,
    },
}

/// `[rate_limits]`, compiled.
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    /// Where buckets live.
    pub backend: Backend,
    /// What to do when the shared backend does not answer.
    pub on_backend_error: OnBackendError,
    /// A bucket per principal, across all routes, if any.
    pub per_principal: Option<BucketRef>,
    /// A bucket per client IP, charged only by requests that fail authentication.
    pub per_ip_unauthenticated: Option<BucketRef>,
}

/// The buckets of every principal and IP, kept across reloads.
#[derive(Debug, Default)]
pub struct RateLimiter {
    local: LocalBuckets,
    redis: ArcSwapOption<RedisBuckets>,
}

impl RateLimiter {
    /// The local buckets (for sweeping and metrics).
    pub fn local(&self) -> &LocalBuckets {
        &self.local
    }

    /// Installs (or removes) the shared backend once connected.
    pub fn set_redis(&self, redis: Option<Arc<RedisBuckets>>) {
        self.redis.store(redis);
    }

    /// The shared backend, if connected.
    pub fn redis(&self) -> Option<Arc<RedisBuckets>> {
        self.redis.load_full()
    }

    /// Checks and charges a principal's buckets (keyed by kind and id) for one request to a route.
    pub async fn check(
        &self,
        settings: &RateLimitSettings,
        route_bucket: Option<&BucketRef>,
        kind: PrincipalKind,
        principal: &Arc<str>,
    ) -> Result<Option<RateLimitStatus>, GatewayError> {
        let buckets: Vec<BucketRef> = route_bucket
            .into_iter()
            .chain(settings.per_principal.as_ref())
            .cloned()
            .collect();
        if buckets.is_empty() {
            return Ok(None);
        }
        let decision = self
            .decide(settings, Owner::Principal(kind, principal), &buckets)
            .await?;
        if decision.admitted {
            Ok(Some(decision.status))
        } else {
            let kind = if route_bucket.is_some() && decision.bucket == 0 {
                "route"
            } else {
                "principal"
            };
            metrics::counter!("ordergate_rate_limited_total", "bucket" => kind).increment(1);
            Err(GatewayError::RateLimited {
                status: decision.status,
                cause: if kind == "route" {
                    LimitHit::RouteLimit
                } else {
                    LimitHit::PrincipalLimit
                },
            })
        }
    }

    /// Charges the per-IP bucket (an IPv6 client's whole /64) for a request that failed
    /// authentication; `Some` refusal when the IP is over its allowance (the 401 then becomes a
    /// 429).
    pub async fn charge_failed_auth(
        &self,
        settings: &RateLimitSettings,
        ip: IpAddr,
    ) -> Option<GatewayError> {
        let bucket = settings.per_ip_unauthenticated.as_ref()?;
        let decision = match self
            .decide(
                settings,
                Owner::Ip(address_group(ip)),
                std::slice::from_ref(bucket),
            )
            .await
        {
            Ok(d) => d,
            Err(e) => return Some(e),
        };
        if decision.admitted {
            return None;
        }
        metrics::counter!("ordergate_rate_limited_total", "bucket" => "failed_auth_ip")
            .increment(1);
        Some(GatewayError::RateLimited {
            status: decision.status,
            cause: LimitHit::FailedAuthIpLimit,
        })
    }

    async fn decide(
        &self,
        settings: &RateLimitSettings,
        owner: Owner<'_>,
        buckets: &[BucketRef],
    ) -> Result<Decision, GatewayError> {
        if let Backend::Redis { .. } = settings.backend {
            let failure = match self.redis.load_full() {
                Some(redis) => match redis.check(&owner.shared_key(), buckets).await {
                    Ok(decision) => return Ok(decision),
                    Err(e) => e.to_string(),
                },
                None => "not connected".to_owned(),
            };
            metrics::counter!("ordergate_rate_limit_backend_errors_total").increment(1);
            tracing::warn!(error = %failure, "rate-limit backend failed; applying on_backend_error");
            if settings.on_backend_error == OnBackendError::Reject {
                return Err(GatewayError::Overloaded {
                    cause: Overload::RateLimitBackendUnavailable,
                });
            }
        }
        let now = self.local.now();
        Ok(match owner {
            Owner::Ip(group) => self.local.check_ip(group, &buckets[0].spec, now),
            Owner::Principal(kind, id) => self.local.check(kind, id, buckets, now),
        })
    }
}

/// One request's failed-authentication allowance (`per_ip_unauthenticated`), handed to the
/// stages that authenticate (5, 5b, and 7's digest check).
#[derive(Clone, Copy)]
pub struct FailedAuthBucket<'a> {
    /// The buckets.
    pub limiter: &'a RateLimiter,
    /// `[rate_limits]`.
    pub settings: &'a RateLimitSettings,
    /// The client address charged.
    pub ip: IpAddr,
}

impl FailedAuth for FailedAuthBucket<'_> {
    fn charge(&self) -> impl Future<Output = Option<GatewayError>> + Send {
        self.limiter.charge_failed_auth(self.settings, self.ip)
    }
}

/// Whose buckets are evaluated.
#[derive(Debug, Clone, Copy)]
enum Owner<'a> {
    Principal(PrincipalKind, &'a Arc<str>),
    Ip(IpNet),
}

impl Owner<'_> {
    /// The owner's name in the shared backend: principals (by kind and id) and address groups
    /// live in separate namespaces, and the kind is a fixed word without `:`.
    fn shared_key(&self) -> String {
        match self {
            Owner::Principal(kind, id) => format!("p:{}:{id}", kind.as_str()),
            Owner::Ip(group) => format!("ip:{group}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_keys_carry_the_kind_and_the_address_group() {
        let id: Arc<str> = Arc::from("erp-sync");
        let jwt = Owner::Principal(PrincipalKind::Jwt, &id).shared_key();
        let key = Owner::Principal(PrincipalKind::ApiKey, &id).shared_key();
        assert_eq!(jwt, "p:jwt:erp-sync");
        assert_eq!(key, "p:api_key:erp-sync");
        let group = address_group("2001:db8:1:2::9".parse().unwrap());
        assert_eq!(Owner::Ip(group).shared_key(), "ip:2001:db8:1:2::/64");
    }
}
