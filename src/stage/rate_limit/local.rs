//! This instance's buckets. All of one principal's buckets live in one map entry, so a request's
//! buckets are evaluated and committed together under that entry's shard lock (a few hundred
//! nanoseconds): either every bucket admits and each is charged, or none is charged.
//!
//! Memory stays bounded: a bucket whose TAT has passed is full, which is exactly what a missing
//! bucket means, so `sweep` (run on a timer) drops it without changing any decision.

use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;
use ipnet::IpNet;

use super::gcra::{self, BucketSpec, Evaluation};
use crate::vocab::principal_kind::PrincipalKind;
use crate::vocab::rate_limit_status::RateLimitStatus;

/// One bucket of a request: its stable id (kind, route, shape) and shape.
#[derive(Debug, Clone)]
pub struct BucketRef {
    /// Stable across reloads, so a bucket's state survives them.
    pub id: Arc<str>,
    /// Rate and capacity.
    pub spec: BucketSpec,
}

/// The decision over all of a request's buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// True when every bucket admitted the request.
    pub admitted: bool,
    /// The tightest bucket's figures (the refusing one when refused).
    pub status: RateLimitStatus,
    /// Which of the request's buckets `status` describes.
    pub bucket: usize,
}

/// A principal's buckets: `(bucket id, TAT)`, keyed by the principal's kind and id.
type PrincipalBuckets = DashMap<(PrincipalKind, Arc<str>), Vec<(Arc<str>, u64)>>;

/// The local backend's state.
#[derive(Debug)]
pub struct LocalBuckets {
    epoch: Instant,
    principals: PrincipalBuckets,
    ips: DashMap<IpNet, u64>,
}

impl Default for LocalBuckets {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            principals: DashMap::new(),
            ips: DashMap::new(),
        }
    }
}

impl LocalBuckets {
    /// Nanoseconds on this backend's monotonic clock.
    pub fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Evaluates and, if every bucket admits, charges all of `principal`'s `buckets` at `now`.
    pub fn check(
        &self,
        kind: PrincipalKind,
        principal: &Arc<str>,
        buckets: &[BucketRef],
        now: u64,
    ) -> Decision {
        let mut entry = self
            .principals
            .entry((kind, principal.clone()))
            .or_default();
        let state = entry.value_mut();
        let evaluations: Vec<Evaluation> = buckets
            .iter()
            .map(|b| {
                let tat = state
                    .iter()
                    .find(|(id, _)| *id == b.id)
                    .map_or(0, |(_, tat)| *tat);
                gcra::evaluate(&b.spec, tat, now)
            })
            .collect();
        let decision = combine(buckets, &evaluations);
        if decision.admitted {
            for (bucket, evaluation) in buckets.iter().zip(&evaluations) {
                match state.iter_mut().find(|(id, _)| *id == bucket.id) {
                    Some((_, tat)) => *tat = evaluation.new_tat,
                    None => state.push((bucket.id.clone(), evaluation.new_tat)),
                }
            }
        }
        decision
    }

    /// Evaluates and charges an address group's bucket for a failed authentication.
    pub fn check_ip(&self, group: IpNet, spec: &BucketSpec, now: u64) -> Decision {
        let mut entry = self.ips.entry(group).or_insert(0);
        let evaluation = gcra::evaluate(spec, *entry, now);
        if evaluation.admitted {
            *entry = evaluation.new_tat;
        }
        Decision {
            admitted: evaluation.admitted,
            status: super::status_of(spec, &evaluation),
            bucket: 0,
        }
    }

    /// Drops buckets that are full again; returns how many entries remain.
    pub fn sweep(&self, now: u64) -> usize {
        self.principals.retain(|_, buckets| {
            buckets.retain(|(_, tat)| *tat > now);
            !buckets.is_empty()
        });
        self.principals.shrink_to_fit();
        self.ips.retain(|_, tat| *tat > now);
        self.ips.shrink_to_fit();
        self.len()
    }

    /// Principals and IPs currently holding state.
    pub fn len(&self) -> usize {
        self.principals.len() + self.ips.len()
    }

    /// True when no bucket holds state.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Folds per-bucket evaluations into one decision: refused if any refuses (reporting the
/// refusing bucket that frees up last), else the figures of the bucket with the fewest tokens left.
pub fn combine(buckets: &[BucketRef], evaluations: &[Evaluation]) -> Decision {
    let pairs = buckets.iter().zip(evaluations).enumerate();
    let refusing = pairs
        .clone()
        .filter(|(_, (_, e))| !e.admitted)
        .max_by_key(|(_, (_, e))| e.retry_after_secs);
    if let Some((index, (bucket, evaluation))) = refusing {
        return Decision {
            admitted: false,
            status: super::status_of(&bucket.spec, evaluation),
            bucket: index,
        };
    }
    let tightest = pairs.min_by_key(|(_, (_, e))| (e.remaining, std::cmp::Reverse(e.reset_secs)));
    match tightest {
        Some((index, (b, e))) => Decision {
            admitted: true,
            status: super::status_of(&b.spec, e),
            bucket: index,
        },
        None => Decision {
            admitted: true,
            status: RateLimitStatus::default(),
            bucket: 0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::units::parse_rate;
    use std::num::NonZeroU32;

    const SEC: u64 = 1_000_000_000;

    fn bucket(id: &str, rate: &str, burst: u32) -> BucketRef {
        BucketRef {
            id: Arc::from(id),
            spec: BucketSpec {
                rate: parse_rate(rate).unwrap(),
                burst: NonZeroU32::new(burst).unwrap(),
            },
        }
    }

    #[test]
    fn all_or_nothing_across_buckets() {
        let local = LocalBuckets::default();
        let alice: Arc<str> = Arc::from("alice");
        let route_a = bucket("route:a", "60/min", 5);
        let route_b = bucket("route:b", "60/min", 5);
        let overall = bucket("principal", "60/min", 3);
        let now = 10 * SEC;
        let admitted = (0..10)
            .filter(|_| {
                local
                    .check(
                        PrincipalKind::Jwt,
                        &alice,
                        &[route_a.clone(), overall.clone()],
                        now,
                    )
                    .admitted
            })
            .count();
        assert_eq!(admitted, 3, "the overall bucket is the tighter one");
        // Refused requests did not drain route:a beyond what admitted requests used: once the
        // overall bucket refills, route:a still has its two remaining tokens.
        let later = now + 3 * SEC;
        let d = local.check(
            PrincipalKind::Jwt,
            &alice,
            &[route_a.clone(), overall.clone()],
            later,
        );
        assert!(d.admitted);
        // route:a is full again (4 left after this one), overall has 2 left: the tightest is reported.
        assert_eq!(d.status.remaining, 2);
        assert_eq!(d.status.limit, 3);
        // Another route shares the overall bucket only.
        assert!(
            local
                .check(PrincipalKind::Jwt, &alice, &[route_b, overall], later)
                .admitted
        );
    }

    #[test]
    fn principals_are_isolated_and_sweep_forgets_full_buckets() {
        let local = LocalBuckets::default();
        let b = bucket("route:a", "60/min", 1);
        let now = 5 * SEC;
        let admits = |id: &str| {
            local
                .check(
                    PrincipalKind::Jwt,
                    &Arc::from(id),
                    std::slice::from_ref(&b),
                    now,
                )
                .admitted
        };
        assert!(admits("alice"));
        assert!(!admits("alice"));
        assert!(admits("bob"));
        assert_eq!(local.sweep(now), 2);
        assert_eq!(local.sweep(now + 2 * SEC), 0);
        assert!(
            local
                .check(
                    PrincipalKind::Jwt,
                    &Arc::from("alice"),
                    std::slice::from_ref(&b),
                    now + 2 * SEC
                )
                .admitted
        );
    }

    #[test]
    fn a_principal_kind_never_shares_another_kinds_buckets() {
        let local = LocalBuckets::default();
        let b = bucket("principal", "60/min", 1);
        let id: Arc<str> = Arc::from("erp-sync");
        let now = 5 * SEC;
        let once = |kind| {
            local
                .check(kind, &id, std::slice::from_ref(&b), now)
                .admitted
        };
        assert!(once(PrincipalKind::Jwt));
        assert!(!once(PrincipalKind::Jwt), "the token's bucket is spent");
        assert!(
            once(PrincipalKind::ApiKey),
            "the API key of the same id is not"
        );
        assert!(once(PrincipalKind::Mtls));
    }

    #[test]
    fn per_ip_bucket() {
        let local = LocalBuckets::default();
        let b = bucket("ip", "30/min", 2).spec;
        let ip = crate::vocab::address::address_group("127.0.0.1".parse().unwrap());
        assert!(local.check_ip(ip, &b, SEC).admitted);
        assert!(local.check_ip(ip, &b, SEC).admitted);
        let refused = local.check_ip(ip, &b, SEC);
        assert!(!refused.admitted);
        assert_eq!(refused.status.retry_after_secs, 2);
    }
}
