//! Prometheus metrics through the `metrics` facade: one process-wide recorder, rendered by the
//! admin listener's `/metrics`. Stages record their own series next to their code; the request
//! totals and latency histograms are recorded here when a request's record is finished.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

use std::sync::Arc;
use std::time::Duration;

pub mod denials;
pub mod expiry;
mod known;

pub use known::{
    CanaryState, EVENT_RESULTS, Known, KnownRoute, SHADOW_DIFF_KINDS, set_canary_state,
};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the recorder once per process (later calls return the same handle).
pub fn install() -> Option<&'static PrometheusHandle> {
    if let Some(handle) = HANDLE.get() {
        return Some(handle);
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .ok()?
        .build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_ok() {
        describe();
        let _ = HANDLE.set(handle);
    }
    HANDLE.get()
}

/// The Prometheus text of every series (the expiry gauges are kept apart: see [`expiry`]).
pub fn render() -> String {
    let mut text = HANDLE
        .get()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    expiry::append_to(&mut text);
    text
}

/// Housekeeping for histograms; run on a timer.
pub fn upkeep() {
    if let Some(handle) = HANDLE.get() {
        handle.run_upkeep();
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "ordergate_requests_total",
        "Requests by route, status and reason."
    );
    describe_histogram!(
        "ordergate_request_duration_seconds",
        "Time from request to the end of the response, by route."
    );
    describe_histogram!(
        "ordergate_upstream_duration_seconds",
        "Upstream response time, by route."
    );
    describe_gauge!("ordergate_in_flight", "Requests being served.");
    describe_counter!(
        "ordergate_auth_failures_total",
        "Failed authentications by reason."
    );
    describe_counter!(
        "ordergate_rate_limited_total",
        "Requests refused by a rate limit, by bucket kind."
    );
    describe_counter!(
        "ordergate_rate_limit_backend_errors_total",
        "Shared rate-limit backend failures."
    );
    describe_gauge!(
        "ordergate_circuit_state",
        "Upstream circuit: 0 closed, 1 open, 2 half-open."
    );
    describe_counter!(
        "ordergate_circuit_transitions_total",
        "Circuit state changes, by new state."
    );
    describe_counter!(
        "ordergate_upstream_retries_total",
        "Upstream retries, by outcome."
    );
    describe_gauge!("ordergate_frozen", "Principals and IPs currently frozen.");
    describe_counter!(
        "ordergate_freezes_total",
        "Freezes by the abuse guard, by kind."
    );
    describe_counter!("ordergate_audit_records_total", "Audit records written.");
    describe_counter!("ordergate_audit_errors_total", "Audit write errors.");
    describe_counter!("ordergate_audit_bytes_total", "Audit bytes written.");
    describe_gauge!(
        "ordergate_audit_queue_depth",
        "Audit records waiting for the writer."
    );
    describe_counter!(
        "ordergate_audit_refused_total",
        "Requests refused for want of an audit queue slot."
    );
    describe_counter!(
        "ordergate_audit_tail_repairs_total",
        "Damaged audit log tails cut back (or files set aside) at start."
    );
    describe_counter!(
        "ordergate_audit_aborted_total",
        "Responses aborted because their audit record could not be written."
    );
    describe_counter!(
        "ordergate_audit_files_pruned_total",
        "Rotated audit files deleted by keep_files."
    );
    describe_counter!(
        "ordergate_views_applied_total",
        "Response views applied, by route and view scope."
    );
    describe_counter!("ordergate_reloads_total", "Policy reloads, by result.");
    describe_counter!("ordergate_jwks_refresh_total", "JWKS refreshes, by result.");
    describe_counter!(
        "ordergate_denials_total",
        "Requests refused as the caller's doing (4xx), by route, reason and audit detail."
    );
    describe_counter!(
        "ordergate_events_total",
        "Security events, by kind and result (sent, failed, dropped, suppressed)."
    );
    describe_counter!(
        "ordergate_shadow_diff_total",
        "Requests the shadow policy decided differently, by route and kind."
    );
    describe_gauge!(
        "ordergate_canary_state",
        "Canary per route: 0 off, 1 on, 2 rolled back."
    );
    describe_counter!(
        "ordergate_stale_served_total",
        "Stale answers served while the upstream failed, by route."
    );
}

/// What the request totals and histograms need of a finished request.
#[derive(Debug, Clone, Copy)]
pub struct Finished<'a> {
    /// The matched route's id, if any.
    pub route: Option<&'a Arc<str>>,
    /// The status sent to the client.
    pub status: u16,
    /// The reason code of the outcome.
    pub reason: &'static str,
    /// Total time in the gateway.
    pub duration: Duration,
    /// Time spent waiting on the upstream, if it was called.
    pub upstream: Option<Duration>,
}

/// Records a finished request.
pub fn request_finished(entry: Finished<'_>) {
    let route = entry.route.cloned().unwrap_or_else(|| "none".into());
    let status = status_label(entry.status);
    // Handles are cached only once our recorder is installed: a handle taken before would be
    // the facade's no-op one, kept for good.
    if HANDLE.get().is_none() {
        return SeriesHandles::new(route, status, entry.reason).record(&entry);
    }
    let key = (route, status, entry.reason);
    // `try_with`: a request dropped while its thread is being torn down is still counted, not
    // a panic.
    let cached = HANDLES.try_with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(handles) = cache.get(&key) {
            return handles.record(&entry);
        }
        if cache.len() >= MAX_CACHED_SERIES {
            cache.clear();
        }
        let handles = SeriesHandles::new(key.0.clone(), status, entry.reason);
        handles.record(&entry);
        cache.insert(key.clone(), handles);
    });
    if cached.is_err() {
        SeriesHandles::new(key.0, status, entry.reason).record(&entry);
    }
}

/// Counts one security event of `kind` with its delivery `result` (one of [`EVENT_RESULTS`]).
pub fn event_counted(kind: crate::vocab::event::EventKind, result: &'static str) {
    metrics::counter!("ordergate_events_total", "kind" => kind.as_str(), "result" => result)
        .increment(1);
}

/// Runs `use_it` on handles `take` makes, kept for the process once our recorder is installed
/// (a lookup per call otherwise builds and hashes the series' key); before that, on handles
/// made for this call alone (kept, they would stay bound to no recorder).
fn with_kept<T>(kept: &'static OnceLock<T>, take: impl FnOnce() -> T, use_it: impl FnOnce(&T)) {
    match kept.get() {
        Some(handles) => use_it(handles),
        None if HANDLE.get().is_some() => use_it(kept.get_or_init(take)),
        None => use_it(&take()),
    }
}

/// Counts `records` lines of `bytes` bytes written to the audit log.
pub fn audit_written(records: u64, bytes: u64) {
    static WRITTEN: OnceLock<(metrics::Counter, metrics::Counter)> = OnceLock::new();
    let take = || {
        (
            metrics::counter!("ordergate_audit_records_total"),
            metrics::counter!("ordergate_audit_bytes_total"),
        )
    };
    with_kept(&WRITTEN, take, |(lines, size)| {
        lines.increment(records);
        size.increment(bytes);
    });
}

/// Sets the requests in flight (twice per request: when one starts and when it ends).
pub fn in_flight(now: usize) {
    static GAUGE: OnceLock<metrics::Gauge> = OnceLock::new();
    with_kept(
        &GAUGE,
        || metrics::gauge!("ordergate_in_flight"),
        |gauge| gauge.set(now as f64),
    );
}

/// The series one finished request updates. Looking them up builds their label sets and
/// hashes them into the registry; the handles are kept per thread instead, per (route, status,
/// reason), all bounded by the policy.
struct SeriesHandles {
    route: Arc<str>,
    total: metrics::Counter,
    duration: metrics::Histogram,
    /// Taken when the route first calls its upstream (an untouched histogram would be
    /// exported empty).
    upstream: std::cell::OnceCell<metrics::Histogram>,
}

/// Cached (route, status, reason) triples per thread; past this (routes renamed by many
/// reloads) the cache starts again.
const MAX_CACHED_SERIES: usize = 4096;

type SeriesKey = (Arc<str>, &'static str, &'static str);

thread_local! {
    static HANDLES: std::cell::RefCell<std::collections::HashMap<SeriesKey, SeriesHandles>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

impl SeriesHandles {
    fn new(route: Arc<str>, status: &'static str, reason: &'static str) -> Self {
        Self {
            total: metrics::counter!(
                "ordergate_requests_total",
                "route" => route.clone(),
                "status" => status,
                "reason" => reason
            ),
            duration: metrics::histogram!(
                "ordergate_request_duration_seconds",
                "route" => route.clone()
            ),
            route,
            upstream: std::cell::OnceCell::new(),
        }
    }

    fn record(&self, entry: &Finished<'_>) {
        self.total.increment(1);
        self.duration.record(entry.duration.as_secs_f64());
        if let Some(upstream) = entry.upstream {
            self.upstream
                .get_or_init(|| {
                    metrics::histogram!(
                        "ordergate_upstream_duration_seconds",
                        "route" => self.route.clone()
                    )
                })
                .record(upstream.as_secs_f64());
        }
    }
}

/// Exports, at 0, every series whose labels are known without traffic, so dashboards and alert
/// rules see them from the start (an absent series cannot fire), and replaces the expiry gauges
/// with this generation's. Called at start and on every reload.
pub fn export_known(known: &Known) {
    use crate::vocab::cause::{AuthFailure, LimitHit};
    use crate::vocab::event::EventKind;
    for cause in AuthFailure::ALL {
        metrics::counter!("ordergate_auth_failures_total", "reason" => cause.as_str()).increment(0);
    }
    for bucket in LimitHit::ALL {
        let label = match bucket {
            LimitHit::RouteLimit => "route",
            LimitHit::PrincipalLimit => "principal",
            LimitHit::FailedAuthIpLimit => "failed_auth_ip",
        };
        metrics::counter!("ordergate_rate_limited_total", "bucket" => label).increment(0);
    }
    for to in ["open", "half_open", "closed"] {
        metrics::counter!("ordergate_circuit_transitions_total", "to" => to).increment(0);
    }
    for result in ["ok", "invalid"] {
        metrics::counter!("ordergate_reloads_total", "result" => result).increment(0);
    }
    for result in ["ok", "error"] {
        metrics::counter!("ordergate_jwks_refresh_total", "result" => result).increment(0);
    }
    for on in ["connect_error", "status"] {
        metrics::counter!("ordergate_upstream_retries_total", "on" => on).increment(0);
    }
    for kind in ["ip", "principal"] {
        metrics::counter!("ordergate_freezes_total", "kind" => kind).increment(0);
    }
    for name in [
        "ordergate_audit_records_total",
        "ordergate_audit_errors_total",
        "ordergate_audit_bytes_total",
        "ordergate_audit_refused_total",
        "ordergate_audit_records_lost_total",
        "ordergate_audit_aborted_total",
        "ordergate_audit_files_pruned_total",
        "ordergate_audit_tail_repairs_total",
        "ordergate_rate_limit_backend_errors_total",
        "ordergate_admin_auth_failures_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    for upstream in &known.upstreams {
        metrics::gauge!("ordergate_circuit_state", "upstream" => upstream.clone()).increment(0.0);
    }
    for name in [
        "ordergate_in_flight",
        "ordergate_frozen",
        "ordergate_audit_queue_depth",
    ] {
        metrics::gauge!(name).increment(0.0);
    }
    for route in &known.routes {
        for view in &route.views {
            metrics::counter!(
                "ordergate_views_applied_total",
                "route" => route.id.to_string(),
                "view" => view.to_string()
            )
            .increment(0);
        }
    }
    for kind in EventKind::ALL {
        for result in EVENT_RESULTS {
            metrics::counter!("ordergate_events_total", "kind" => kind.as_str(), "result" => result)
                .increment(0);
        }
    }
    for route in &known.routes {
        for kind in SHADOW_DIFF_KINDS {
            metrics::counter!("ordergate_shadow_diff_total", "route" => route.id.clone(), "kind" => kind)
                .increment(0);
        }
        metrics::counter!("ordergate_stale_served_total", "route" => route.id.clone()).increment(0);
        // Registered without a sample: the histograms render with every bucket at 0.
        let _ =
            metrics::histogram!("ordergate_request_duration_seconds", "route" => route.id.clone());
        let _ =
            metrics::histogram!("ordergate_upstream_duration_seconds", "route" => route.id.clone());
        let canary = if route.canary {
            CanaryState::On
        } else {
            CanaryState::Off
        };
        set_canary_state(&route.id, canary);
    }
    denials::export_known(known.routes.iter().map(|r| &r.id));
    export_requests(known.routes.iter().map(|r| &r.id));
    expiry::set(&known.credentials, &known.certificates);
}

/// The request totals an alert or a dashboard ratio needs before the first such answer: an
/// answered request and the gateway's own failures per route, and `audit_unavailable`, which is
/// decided before routing (`route="none"`).
fn export_requests<'a>(routes: impl Iterator<Item = &'a Arc<str>>) {
    const ROUTED: [(u16, &str); 5] = [
        (200, "ok"),
        (502, "bad_gateway"),
        (503, "circuit_open"),
        (503, "overloaded"),
        (504, "gateway_timeout"),
    ];
    const UNROUTED: [(u16, &str); 3] = [
        (404, "not_found"),
        (405, "method_not_allowed"),
        (503, "audit_unavailable"),
    ];
    for (status, reason) in UNROUTED {
        metrics::counter!(
            "ordergate_requests_total",
            "route" => denials::UNROUTED,
            "status" => status_label(status),
            "reason" => reason
        )
        .increment(0);
    }
    for route in routes {
        for (status, reason) in ROUTED {
            metrics::counter!(
                "ordergate_requests_total",
                "route" => route.clone(),
                "status" => status_label(status),
                "reason" => reason
            )
            .increment(0);
        }
    }
}

fn status_label(status: u16) -> &'static str {
    // Static strings for the statuses a gateway answers; anything else is grouped by class.
    match status {
        200 => "200",
        201 => "201",
        204 => "204",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        413 => "413",
        429 => "429",
        431 => "431",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_handles_count_every_request_and_skip_histograms_never_used() {
        install();
        let served: Arc<str> = "cache-test-served".into();
        let denied: Arc<str> = "cache-test-denied".into();
        let ms = Duration::from_millis(1);
        for _ in 0..3 {
            request_finished(Finished {
                route: Some(&served),
                status: 200,
                reason: "ok",
                duration: ms,
                upstream: Some(ms),
            });
        }
        request_finished(Finished {
            route: Some(&denied),
            status: 403,
            reason: "forbidden",
            duration: ms,
            upstream: None,
        });
        // From another thread: its own cache, the same series.
        let again = served.clone();
        std::thread::spawn(move || {
            request_finished(Finished {
                route: Some(&again),
                status: 200,
                reason: "ok",
                duration: ms,
                upstream: Some(ms),
            });
        })
        .join()
        .unwrap();
        let text = render();
        let has = |line: &str| text.lines().any(|l| l == line);
        assert!(
            has(
                r#"ordergate_requests_total{route="cache-test-served",status="200",reason="ok"} 4"#
            ),
            "{text}"
        );
        assert!(has(
            r#"ordergate_upstream_duration_seconds_count{route="cache-test-served"} 4"#
        ));
        assert!(has(
            r#"ordergate_request_duration_seconds_count{route="cache-test-denied"} 1"#
        ));
        assert!(
            !text.contains(
                r#"ordergate_upstream_duration_seconds_count{route="cache-test-denied"}"#
            )
        );
    }
}
