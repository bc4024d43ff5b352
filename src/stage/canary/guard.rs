//! The canary guard: the canary's answers against the primary's over a sliding `window`, per
//! instance. It trips when, with at least `min_requests` canary requests in the window,
//!
//! - the canary's 5xx share exceeds `max_error_ratio` × the primary's share + 1 point, or
//! - the canary's p99 upstream time exceeds `max_p99_ratio` × the primary's p99 (compared only
//!   once both sides have `min_requests` and at least 100 timed answers: below 100 a "p99" is
//!   the single slowest answer, and one cold connection would roll a healthy canary back).
//!
//! Below `min_requests` it neither trips nor clears. What callers got is what counts: upstream
//! 5xx, the gateway's 502/504 for an upstream that failed, and 503 `circuit_open` — a canary
//! whose own breaker opened must not hide from its guard by no longer being called. A primary
//! with no traffic in the window counts as error-free (the safer reading: a failing canary is
//! rolled back even without a baseline).
//!
//! Tripped is final until a reload (a new generation builds a new guard) or the admin reset;
//! it sets `ordergate_canary_state{route}` to 2 and fires `canary_rollback`. The window is ten
//! slots of counters and a latency histogram on atomics: no lock on the request path.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::Side;
use crate::vocab::error::GatewayError;
use crate::vocab::event::{Event, EventKind, Events};

/// `[routes.canary_guard]`, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardSettings {
    /// The sliding window both sides are measured over.
    pub window: Duration,
    /// Canary requests in the window below which the guard decides nothing.
    pub min_requests: u32,
    /// The canary's 5xx share may be at most this × the primary's, plus one point.
    pub max_error_ratio: f64,
    /// The canary's p99 may be at most this × the primary's.
    pub max_p99_ratio: f64,
}

impl Default for GuardSettings {
    /// The contract's example values: a canary is never unguarded.
    fn default() -> Self {
        Self {
            window: Duration::from_secs(300),
            min_requests: 200,
            max_error_ratio: 2.0,
            max_p99_ratio: 1.5,
        }
    }
}

const SLOTS: usize = 10;
/// Timed answers a side needs before its p99 is compared: fewer, and the "p99" is the maximum.
const MIN_TIMED_FOR_P99: u32 = 100;
/// Latency buckets: 250 µs × 2^(i/4), so each is about 19 % wide, up to about a minute.
const LATENCY_BUCKETS: usize = 72;
const FIRST_BUCKET_MICROS: f64 = 250.0;

fn latency_bucket(latency: Duration) -> usize {
    let micros = latency.as_secs_f64() * 1e6;
    if micros <= FIRST_BUCKET_MICROS {
        return 0;
    }
    let i = ((micros / FIRST_BUCKET_MICROS).log2() * 4.0).floor();
    (i as usize).min(LATENCY_BUCKETS - 1)
}

/// The upper bound of a latency bucket, in microseconds.
fn bucket_upper_micros(i: usize) -> f64 {
    FIRST_BUCKET_MICROS * ((i + 1) as f64 / 4.0).exp2()
}

struct Slot {
    epoch: AtomicU64,
    total: AtomicU32,
    errors: AtomicU32,
    latency: [AtomicU32; LATENCY_BUCKETS],
}

impl Default for Slot {
    fn default() -> Self {
        Self {
            epoch: AtomicU64::new(0),
            total: AtomicU32::new(0),
            errors: AtomicU32::new(0),
            latency: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }
}

/// One side's answers over the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Answers in the window.
    pub total: u32,
    /// Of which 5xx.
    pub errors: u32,
    /// Answers with an upstream time.
    pub timed: u32,
    /// The 99th percentile upstream time (bucket upper bound), in microseconds.
    pub p99_micros: f64,
}

impl Figures {
    fn error_share(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            f64::from(self.errors) / f64::from(self.total)
        }
    }
}

struct Window {
    slots: [Slot; SLOTS],
}

impl Window {
    fn new() -> Self {
        Self {
            slots: std::array::from_fn(|_| Slot::default()),
        }
    }

    fn record(&self, epoch: u64, error: bool, latency: Option<Duration>) {
        let slot = &self.slots[(epoch % SLOTS as u64) as usize];
        if slot.epoch.swap(epoch, Ordering::AcqRel) != epoch {
            slot.total.store(0, Ordering::Release);
            slot.errors.store(0, Ordering::Release);
            for b in &slot.latency {
                b.store(0, Ordering::Release);
            }
        }
        slot.total.fetch_add(1, Ordering::AcqRel);
        if error {
            slot.errors.fetch_add(1, Ordering::AcqRel);
        }
        if let Some(latency) = latency {
            slot.latency[latency_bucket(latency)].fetch_add(1, Ordering::AcqRel);
        }
    }

    fn figures(&self, epoch: u64) -> Figures {
        let mut total = 0u32;
        let mut errors = 0u32;
        let mut hist = [0u32; LATENCY_BUCKETS];
        for slot in &self.slots {
            if epoch.saturating_sub(slot.epoch.load(Ordering::Acquire)) >= SLOTS as u64 {
                continue;
            }
            total = total.saturating_add(slot.total.load(Ordering::Acquire));
            errors = errors.saturating_add(slot.errors.load(Ordering::Acquire));
            for (h, b) in hist.iter_mut().zip(&slot.latency) {
                *h = h.saturating_add(b.load(Ordering::Acquire));
            }
        }
        let timed: u32 = hist.iter().fold(0u32, |a, b| a.saturating_add(*b));
        let rank = (f64::from(timed) * 0.99).ceil() as u32;
        let mut seen = 0u32;
        let mut p99_micros = 0.0;
        for (i, n) in hist.iter().enumerate() {
            seen = seen.saturating_add(*n);
            if timed > 0 && seen >= rank.max(1) {
                p99_micros = bucket_upper_micros(i);
                break;
            }
        }
        Figures {
            total,
            errors,
            timed,
            p99_micros,
        }
    }

    /// Answers in the window (cheap: no histogram).
    fn total(&self, epoch: u64) -> u32 {
        self.slots
            .iter()
            .filter(|s| epoch.saturating_sub(s.epoch.load(Ordering::Acquire)) < SLOTS as u64)
            .fold(0u32, |t, s| {
                t.saturating_add(s.total.load(Ordering::Acquire))
            })
    }

    fn clear(&self) {
        for slot in &self.slots {
            slot.epoch.store(0, Ordering::Release);
            slot.total.store(0, Ordering::Release);
            slot.errors.store(0, Ordering::Release);
            for b in &slot.latency {
                b.store(0, Ordering::Release);
            }
        }
    }
}

/// One canary route's guard, for one policy generation.
pub struct CanaryGuard {
    route: Arc<str>,
    settings: GuardSettings,
    events: Events,
    started: Instant,
    primary: Window,
    canary: Window,
    tripped: AtomicBool,
    /// Tripped here and not yet written to the shared store.
    unpublished: AtomicBool,
}

impl std::fmt::Debug for CanaryGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CanaryGuard")
            .field("route", &self.route)
            .field("tripped", &self.tripped())
            .finish_non_exhaustive()
    }
}

impl CanaryGuard {
    /// A guard that holds (canary on), with the state metric at 1.
    pub fn new(route: Arc<str>, settings: GuardSettings, events: Events) -> Self {
        let guard = Self {
            route,
            settings,
            events,
            started: Instant::now(),
            primary: Window::new(),
            canary: Window::new(),
            tripped: AtomicBool::new(false),
            unpublished: AtomicBool::new(false),
        };
        guard.set_state_metric();
        guard
    }

    /// The route it guards.
    pub fn route(&self) -> &Arc<str> {
        &self.route
    }

    /// True once tripped: the route's traffic goes to its own upstream.
    pub fn tripped(&self) -> bool {
        self.tripped.load(Ordering::Acquire)
    }

    fn epoch(&self) -> u64 {
        let slot_ms = (u64::try_from(self.settings.window.as_millis()).unwrap_or(u64::MAX)
            / SLOTS as u64)
            .max(1);
        // Slot epochs start at 1 so that a cleared slot (epoch 0) is never current.
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX) / slot_ms
            + SLOTS as u64
    }

    /// Records one answer of `side`; a canary answer may trip the guard.
    pub fn record(&self, side: Side, error: bool, latency: Option<Duration>) {
        if self.tripped() {
            return;
        }
        let epoch = self.epoch();
        match side {
            Side::Primary => self.primary.record(epoch, error, latency),
            Side::Canary => {
                self.canary.record(epoch, error, latency);
                if self.verdict(epoch).is_some() {
                    self.trip();
                }
            }
        }
    }

    /// Records what the caller of `side` got: a 5xx (the upstream's, or the gateway's for an
    /// upstream that failed or an open circuit) is an error; the time is the upstream's.
    pub fn record_outcome<T>(
        &self,
        side: Side,
        outcome: &Result<http::Response<T>, GatewayError>,
        latency: Option<Duration>,
    ) {
        let status = match outcome {
            Ok(r) => r.status(),
            Err(e) => e.status(),
        };
        self.record(side, status.is_server_error(), latency);
    }

    /// Both sides' figures now (for tests and logs).
    pub fn figures(&self) -> (Figures, Figures) {
        let epoch = self.epoch();
        (self.primary.figures(epoch), self.canary.figures(epoch))
    }

    /// Why the guard would trip now, if it would.
    fn verdict(&self, epoch: u64) -> Option<&'static str> {
        if self.canary.total(epoch) < self.settings.min_requests {
            return None;
        }
        let canary = self.canary.figures(epoch);
        let primary = self.primary.figures(epoch);
        if canary.error_share() > self.settings.max_error_ratio * primary.error_share() + 0.01 {
            return Some("error_ratio");
        }
        let enough = self.settings.min_requests.max(MIN_TIMED_FOR_P99);
        if canary.timed >= enough
            && primary.timed >= enough
            && canary.p99_micros > self.settings.max_p99_ratio * primary.p99_micros
        {
            return Some("p99_ratio");
        }
        None
    }

    /// Trips the guard here: traffic back to the route's upstream, the metric to 2, the
    /// `canary_rollback` event, and the shared store told at the next sync. True if it was not
    /// tripped before.
    pub fn trip(&self) -> bool {
        if self.tripped.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.unpublished.store(true, Ordering::Release);
        self.set_state_metric();
        let (primary, canary) = self.figures();
        tracing::warn!(
            route = %self.route,
            canary_requests = canary.total,
            canary_errors = canary.errors,
            canary_p99_ms = canary.p99_micros / 1000.0,
            primary_requests = primary.total,
            primary_errors = primary.errors,
            primary_p99_ms = primary.p99_micros / 1000.0,
            "canary guard tripped: the route's traffic goes back to its upstream"
        );
        let mut event = Event::new(EventKind::CanaryRollback);
        event.route = Some(self.route.clone());
        self.events.emit(event);
        true
    }

    /// Takes on a trip another instance made (no event: that instance fired it).
    pub fn adopt_shared_trip(&self) {
        if !self.tripped.swap(true, Ordering::AcqRel) {
            self.set_state_metric();
            tracing::warn!(route = %self.route, "canary rolled back by another instance");
        }
    }

    /// Clears a trip (admin reset, or the shared store cleared by another instance): the
    /// canary takes its principals again and the analysis starts afresh.
    pub fn reset(&self) {
        self.canary.clear();
        self.primary.clear();
        self.unpublished.store(false, Ordering::Release);
        if self.tripped.swap(false, Ordering::AcqRel) {
            tracing::info!(route = %self.route, "canary guard reset");
        }
        self.set_state_metric();
    }

    /// True when this instance tripped and the shared store does not know yet; clears the flag.
    pub fn take_unpublished(&self) -> bool {
        self.unpublished.swap(false, Ordering::AcqRel)
    }

    /// Puts the flag back after a failed publish.
    pub fn keep_unpublished(&self) {
        self.unpublished.store(true, Ordering::Release);
    }

    /// True while a trip of this instance waits to be published.
    pub fn is_unpublished(&self) -> bool {
        self.unpublished.load(Ordering::Acquire)
    }

    fn set_state_metric(&self) {
        let state = if self.tripped() { 2.0 } else { 1.0 };
        metrics::gauge!("ordergate_canary_state", "route" => self.route.to_string()).set(state);
    }
}

#[cfg(test)]
mod tests;
