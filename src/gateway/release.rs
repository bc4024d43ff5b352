//! The per-generation runtime of CONTRACT §10: a pool and breaker per named upstream, and per
//! route its canary guard and stale-if-error store. Pools, breakers and stores carry over a
//! reload when what they were built from is unchanged; guards never do (a reload resets them).

use std::sync::Arc;

use crate::policy::{Policy, Route};
use crate::stage::canary::CanaryGuard;
use crate::stage::proxy::UpstreamRuntime;
use crate::stage::stale::StaleStore;
use crate::vocab::error::StartError;
use crate::vocab::event::Events;

/// One route's release state in this generation.
#[derive(Debug, Default)]
pub struct RouteRelease {
    /// The canary's guard (routes with a `canary`).
    pub guard: Option<Arc<CanaryGuard>>,
    /// The kept answers (routes with `stale_if_error`).
    pub stale: Option<Arc<StaleStore>>,
}

/// Every upstream's runtime, indexed like `policy.upstreams`: the previous generation's, by
/// name, when it serves the same settings (so pools stay warm and an open breaker stays open).
pub(super) fn upstreams(
    policy: &Policy,
    previous: Option<(&Policy, &[Arc<UpstreamRuntime>])>,
) -> Result<Vec<Arc<UpstreamRuntime>>, StartError> {
    policy
        .upstreams
        .iter()
        .map(|(name, settings)| {
            let kept = previous.and_then(|(p, runtimes)| {
                p.upstreams
                    .iter()
                    .zip(runtimes)
                    .find(|((n, _), rt)| n == name && rt.serves(settings))
                    .map(|(_, rt)| rt.clone())
            });
            match kept {
                Some(rt) => Ok(rt),
                None => UpstreamRuntime::new(settings)
                    .map(Arc::new)
                    .map_err(|source| StartError::Upstream {
                        name: name.clone(),
                        source,
                    }),
            }
        })
        .collect()
}

/// Per route, indexed like `policy.routes`: a fresh guard, and the previous store when the
/// route's `stale_if_error` and views are unchanged (else a new, empty one: a view change drops
/// every kept answer).
pub(super) fn routes(
    policy: &Policy,
    previous: Option<(&Policy, &[RouteRelease])>,
    events: &Events,
) -> Vec<RouteRelease> {
    policy
        .routes
        .iter()
        .map(|route| {
            if route.canary.is_none() {
                metrics::gauge!("ordergate_canary_state", "route" => route.id.to_string()).set(0.0);
            }
            RouteRelease {
                guard: route.canary.as_ref().map(|c| {
                    Arc::new(CanaryGuard::new(
                        route.id.clone(),
                        c.guard.clone(),
                        events.clone(),
                    ))
                }),
                stale: route.stale.as_ref().map(|settings| {
                    previous
                        .and_then(|(p, releases)| kept_store(route, p, releases))
                        .unwrap_or_else(|| {
                            Arc::new(StaleStore::new(route.id.clone(), settings.clone()))
                        })
                }),
            }
        })
        .collect()
}

fn kept_store(
    route: &Route,
    previous: &Policy,
    releases: &[RouteRelease],
) -> Option<Arc<StaleStore>> {
    let (old, release) = previous
        .routes
        .iter()
        .zip(releases)
        .find(|(old, _)| old.id == route.id)?;
    let store = release.stale.as_ref()?;
    (old.response_digest == route.response_digest && route.stale.as_ref() == Some(store.settings()))
        .then(|| store.clone())
}
