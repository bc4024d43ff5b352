//! Stage 9c, the upstream choice: the route's own named upstream, or — for the principals its
//! sticky canary takes — the canary's, while the canary's guard holds (CONTRACT §10). Refuses
//! nothing; it adds the chosen upstream (and so the record's `upstream_name`).
//!
//! A principal goes to the canary when it is listed in `principals`, or when
//! `hash(route id, principal id) mod 10000 < percent × 100`. The hash is SHA-256 over the route
//! id, a NUL byte and the principal id, its first eight bytes read big-endian: no per-process
//! key (std's `RandomState` would send a caller to another side after every restart), so every
//! instance, restart and reload puts the same principal on the same side. The guard
//! (`guard.rs`) compares the canary with the primary and, when it trips, sends the route's
//! traffic back to its own upstream; `shared.rs` shares the tripped state through Redis.

pub mod guard;
pub mod shared;

use std::collections::HashSet;
use std::sync::Arc;

use sha2::{Digest, Sha256};

pub use guard::{CanaryGuard, GuardSettings};

/// A named upstream, as an index into the policy's upstream list (0 is `[upstream]`,
/// `"default"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UpstreamRef(pub usize);

impl UpstreamRef {
    /// `[upstream]`, named `"default"`.
    pub const DEFAULT: Self = Self(0);
}

/// `canary = { upstream, percent, principals }` with its `[routes.canary_guard]`, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct CanarySettings {
    /// Where the canary's principals go.
    pub upstream: UpstreamRef,
    /// `percent × 100`, rounded: principals whose bucket is below it go to the canary.
    pub threshold: u32,
    /// Principal ids that always go to the canary (while the guard holds).
    pub principals: HashSet<Arc<str>>,
    /// What rolls the canary back.
    pub guard: GuardSettings,
}

/// The side of a canary route a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The route's own upstream.
    Primary,
    /// The canary's upstream.
    Canary,
}

/// The buckets a percentage is counted in.
pub const BUCKETS: u64 = 10_000;

/// The principal's bucket on this route, in `0..10000`: the same everywhere, always.
pub fn bucket(route_id: &str, principal_id: &str) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(route_id.as_bytes());
    hasher.update([0u8]);
    hasher.update(principal_id.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % BUCKETS) as u32
}

/// `percent` (0–100) as a bucket threshold.
pub fn threshold(percent: f64) -> u32 {
    (percent * 100.0).round().clamp(0.0, BUCKETS as f64) as u32
}

/// Whether this principal belongs to the canary, ignoring the guard.
pub fn assigned(settings: &CanarySettings, route_id: &str, principal_id: &str) -> bool {
    settings.principals.contains(principal_id)
        || (settings.threshold > 0 && bucket(route_id, principal_id) < settings.threshold)
}

/// The side this request goes to: the canary only for its principals and only while the guard
/// has not tripped. Routes without a canary always take their own upstream.
pub fn side(
    settings: Option<&CanarySettings>,
    guard: Option<&CanaryGuard>,
    route_id: &str,
    principal_id: &str,
) -> Side {
    match (settings, guard) {
        (Some(s), Some(g)) if !g.tripped() && assigned(s, route_id, principal_id) => Side::Canary,
        _ => Side::Primary,
    }
}

/// The upstream a side means.
pub fn target(route: UpstreamRef, settings: Option<&CanarySettings>, side: Side) -> UpstreamRef {
    match (side, settings) {
        (Side::Canary, Some(s)) => s.upstream,
        _ => route,
    }
}

/// Where one request goes: the side (what its guard counts) and the upstream it means.
#[derive(Debug, Clone, Copy)]
pub struct Choice {
    /// Primary or canary.
    pub side: Side,
    /// The upstream that side means.
    pub target: UpstreamRef,
}

/// Stage 9's upstream choice for the pipeline: [`side`], then its [`target`].
pub fn choose(
    route: (UpstreamRef, Option<&CanarySettings>),
    guard: Option<&CanaryGuard>,
    route_id: &str,
    principal_id: &str,
) -> Choice {
    let (upstream, settings) = route;
    let side = side(settings, guard, route_id, principal_id);
    Choice {
        side,
        target: target(upstream, settings, side),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(percent: f64, principals: &[&str]) -> CanarySettings {
        CanarySettings {
            upstream: UpstreamRef(1),
            threshold: threshold(percent),
            principals: principals.iter().map(|p| Arc::from(*p)).collect(),
            guard: GuardSettings::default(),
        }
    }

    /// Pinned values: a change of hash (or of its input layout) would move callers between
    /// sides across a rolling upgrade, so it must fail here first.
    #[test]
    fn the_bucket_is_a_fixed_function_of_route_and_principal() {
        let a = bucket("customer-orders", "alice");
        assert_eq!(a, bucket("customer-orders", "alice"));
        assert!(a < 10_000);
        let digest = Sha256::digest(b"customer-orders\0alice");
        let expected = u64::from_be_bytes(digest[..8].try_into().unwrap()) % 10_000;
        assert_eq!(u64::from(a), expected);
        assert_ne!(
            bucket("customer-orders", "alice"),
            bucket("customer-ordersa", "lice"),
            "the separator keeps (route, principal) pairs apart"
        );
    }

    #[test]
    fn the_split_is_within_five_points_of_percent() {
        for percent in [0.0, 1.0, 5.0, 20.0, 50.0, 100.0] {
            let s = settings(percent, &[]);
            let n = 4000;
            let canary = (0..n)
                .filter(|i| assigned(&s, "customer-orders", &format!("principal-{i}")))
                .count();
            let share = canary as f64 * 100.0 / n as f64;
            assert!(
                (share - percent).abs() <= 5.0,
                "{percent}%: {share:.2}% went to the canary"
            );
        }
    }

    #[test]
    fn assignment_is_sticky_and_listed_principals_always_go() {
        let s = settings(5.0, &["erp-sync"]);
        let sides: Vec<bool> = (0..200)
            .map(|i| assigned(&s, "orders", &format!("p{i}")))
            .collect();
        for _ in 0..3 {
            let again: Vec<bool> = (0..200)
                .map(|i| assigned(&s, "orders", &format!("p{i}")))
                .collect();
            assert_eq!(sides, again);
        }
        assert!(assigned(&s, "orders", "erp-sync"));
        assert!(!assigned(&settings(0.0, &[]), "orders", "erp-sync"));
        assert!(assigned(&settings(100.0, &[]), "orders", "anyone"));
    }

    #[test]
    fn a_tripped_guard_sends_everyone_back() {
        let s = settings(100.0, &["erp-sync"]);
        let guard = CanaryGuard::new(Arc::from("orders"), s.guard.clone(), Default::default());
        assert_eq!(
            side(Some(&s), Some(&guard), "orders", "erp-sync"),
            Side::Canary
        );
        assert_eq!(
            target(UpstreamRef::DEFAULT, Some(&s), Side::Canary),
            UpstreamRef(1)
        );
        guard.trip();
        assert_eq!(
            side(Some(&s), Some(&guard), "orders", "erp-sync"),
            Side::Primary
        );
        assert_eq!(
            target(UpstreamRef::DEFAULT, Some(&s), Side::Primary),
            UpstreamRef::DEFAULT
        );
        assert_eq!(side(None, None, "orders", "erp-sync"), Side::Primary);
    }
}
