//! What one policy generation fixes about the metric series: the input of
//! [`export_known`](super::export_known), which exports every series whose labels are known at
//! load at 0 (CONTRACT §8.1: an absent series can neither be graphed nor fire an alert).
//! The gateway fills this from the policy at start and on every reload; a feature whose series
//! depend on a policy key adds a field here and fills it there.

use std::sync::Arc;

use super::expiry::{CertificateExpiry, CredentialExpiry};

/// Everything a policy generation tells the metrics.
#[derive(Debug, Default, Clone)]
pub struct Known {
    /// Every route, in policy order.
    pub routes: Vec<KnownRoute>,
    /// API keys and mTLS clients with `not_after`.
    pub credentials: Vec<CredentialExpiry>,
    /// The certificates the policy names.
    pub certificates: Vec<CertificateExpiry>,
    /// Every named upstream (the `upstream` label of `ordergate_circuit_state`).
    pub upstreams: Vec<Arc<str>>,
}

/// One route as the metrics see it.
#[derive(Debug, Clone)]
pub struct KnownRoute {
    /// The route id (the `route` label).
    pub id: Arc<str>,
    /// The scope names of its views (the `view` label of `ordergate_views_applied_total`).
    pub views: Vec<Arc<str>>,
    /// Whether the route has a canary: its `ordergate_canary_state` starts at 1 (on), else 0
    /// (off). A reload sets it again, which is what ends a rollback (CONTRACT §10).
    pub canary: bool,
}

/// `ordergate_canary_state` values (CONTRACT §8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanaryState {
    /// No canary on this route.
    Off = 0,
    /// The canary takes its share.
    On = 1,
    /// The guard tripped: all traffic back on the route's upstream until reload or reset.
    RolledBack = 2,
}

/// Sets a route's `ordergate_canary_state`.
pub fn set_canary_state(route: &Arc<str>, state: CanaryState) {
    metrics::gauge!("ordergate_canary_state", "route" => route.clone()).set(state as u8 as f64);
}

/// The `result` values of `ordergate_events_total`: delivered, given up after retries, pushed
/// out of a full queue, or a per-request repeat held back (`vocab::event::REPEAT_WINDOW`).
pub const EVENT_RESULTS: [&str; 4] = ["sent", "failed", "dropped", "suppressed"];

/// The `kind` values of `ordergate_shadow_diff_total` (CONTRACT §9).
pub const SHADOW_DIFF_KINDS: [&str; 3] = ["decision", "status", "view"];
