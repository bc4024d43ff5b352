//! Stage 9b, the upstream circuit breaker. Refuses with 503 `circuit_open` and `Retry-After`
//! while open, without calling the upstream.
//!
//! Closed → Open on `consecutive_failures` failures in a row, or when the share of failures over
//! the sliding `window` reaches `failure_rate` with at least `min_requests` requests in it.
//! Open → HalfOpen after `open_for`; HalfOpen lets `half_open_probes` requests through; all of
//! them succeeding closes the circuit, any failing re-opens it. Failures are connect errors,
//! timeouts and `failure_statuses`.
//!
//! No maintained crate fit (the candidates change fast or are stale), so this is a small state
//! machine on atomics: no lock on the request path. Counters may race at a window-slot rollover by
//! a request or two, which does not matter for a failure *rate*.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// `[upstream.circuit_breaker]`, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSettings {
    /// Failures in a row that open the circuit.
    pub consecutive_failures: u32,
    /// Share of failures over `window` that opens it, once `min_requests` were seen.
    pub failure_rate: f64,
    /// The sliding window for `failure_rate`.
    pub window: Duration,
    /// Requests in `window` before `failure_rate` is considered.
    pub min_requests: u32,
    /// How long the circuit stays open before probing.
    pub open_for: Duration,
    /// Probes let through when half-open; all must succeed to close.
    pub half_open_probes: u32,
    /// Upstream statuses that count as failures.
    pub failure_statuses: Vec<u16>,
    /// The named upstream this breaker guards: the `upstream` label of its state gauge.
    pub upstream: Arc<str>,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_rate: 0.5,
            window: Duration::from_secs(10),
            min_requests: 20,
            open_for: Duration::from_secs(10),
            half_open_probes: 3,
            failure_statuses: vec![500, 502, 503, 504],
            upstream: Arc::from("default"),
        }
    }
}

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Requests pass; failures are counted.
    Closed = 0,
    /// Requests are refused without calling the upstream.
    Open = 1,
    /// A few probes pass to test whether the upstream recovered.
    HalfOpen = 2,
}

impl State {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => State::Open,
            2 => State::HalfOpen,
            _ => State::Closed,
        }
    }

    /// The name used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
}

const SLOTS: usize = 10;

#[derive(Debug, Default)]
struct Slot {
    epoch: AtomicU64,
    total: AtomicU32,
    failures: AtomicU32,
}

/// Permission to call the upstream, answered with [`Permit::record`]. A permit dropped without
/// an answer (its request was cancelled, e.g. by `request_timeout`) counts as a failure, so a
/// half-open circuit can never wait forever for a probe that will not report.
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    answered: bool,
}

impl Permit<'_> {
    /// Records the outcome of the call.
    pub fn record(mut self, success: bool) {
        self.answered = true;
        self.breaker.record_outcome(self.probe, success);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.breaker.record_outcome(self.probe, false);
        }
    }
}

/// The breaker for one upstream.
#[derive(Debug)]
pub struct CircuitBreaker {
    settings: BreakerSettings,
    epoch: Instant,
    state: AtomicU8,
    opened_at_ms: AtomicU64,
    consecutive: AtomicU32,
    probes_issued: AtomicU32,
    probes_succeeded: AtomicU32,
    slots: [Slot; SLOTS],
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            epoch: Instant::now(),
            state: AtomicU8::new(State::Closed as u8),
            opened_at_ms: AtomicU64::new(0),
            consecutive: AtomicU32::new(0),
            probes_issued: AtomicU32::new(0),
            probes_succeeded: AtomicU32::new(0),
            slots: Default::default(),
        }
    }

    /// The settings it runs with (a reload with other settings makes a new breaker).
    pub fn settings(&self) -> &BreakerSettings {
        &self.settings
    }

    /// The current state.
    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Asks to call the upstream; `Err` holds the seconds to wait.
    pub fn acquire(&self) -> Result<Permit<'_>, u64> {
        loop {
            match self.state() {
                State::Closed => {
                    return Ok(Permit {
                        breaker: self,
                        probe: false,
                        answered: false,
                    });
                }
                State::Open => {
                    let open_ms =
                        u64::try_from(self.settings.open_for.as_millis()).unwrap_or(u64::MAX);
                    let elapsed = self
                        .now_ms()
                        .saturating_sub(self.opened_at_ms.load(Ordering::Acquire));
                    if elapsed < open_ms {
                        return Err((open_ms - elapsed).div_ceil(1000).max(1));
                    }
                    self.probes_issued.store(0, Ordering::Release);
                    self.probes_succeeded.store(0, Ordering::Release);
                    if self.transition(State::Open, State::HalfOpen) {
                        continue;
                    }
                }
                State::HalfOpen => {
                    let issued = self.probes_issued.fetch_add(1, Ordering::AcqRel);
                    return if issued < self.settings.half_open_probes {
                        Ok(Permit {
                            breaker: self,
                            probe: true,
                            answered: false,
                        })
                    } else {
                        Err(1)
                    };
                }
            }
        }
    }

    /// Whether an upstream status counts as a failure.
    pub fn is_failure_status(&self, status: u16) -> bool {
        self.settings.failure_statuses.contains(&status)
    }

    fn record_outcome(&self, probe: bool, success: bool) {
        if probe {
            if self.state() != State::HalfOpen {
                return;
            }
            if !success {
                self.trip(State::HalfOpen);
            } else {
                let ok = self.probes_succeeded.fetch_add(1, Ordering::AcqRel) + 1;
                if ok >= self.settings.half_open_probes
                    && self.transition(State::HalfOpen, State::Closed)
                {
                    self.consecutive.store(0, Ordering::Release);
                    for slot in &self.slots {
                        slot.total.store(0, Ordering::Release);
                        slot.failures.store(0, Ordering::Release);
                    }
                }
            }
            return;
        }
        if self.state() != State::Closed {
            return;
        }
        let (total, failures) = self.count(success);
        let consecutive = if success {
            self.consecutive.store(0, Ordering::Release);
            0
        } else {
            self.consecutive.fetch_add(1, Ordering::AcqRel) + 1
        };
        let by_streak = !success && consecutive >= self.settings.consecutive_failures;
        let by_rate = !success
            && total >= self.settings.min_requests
            && f64::from(failures) >= self.settings.failure_rate * f64::from(total);
        if by_streak || by_rate {
            self.trip(State::Closed);
        }
    }

    /// Adds one outcome to the sliding window; returns the window's totals.
    fn count(&self, success: bool) -> (u32, u32) {
        let slot_ms = (u64::try_from(self.settings.window.as_millis()).unwrap_or(u64::MAX)
            / SLOTS as u64)
            .max(1);
        let epoch = self.now_ms() / slot_ms;
        let slot = &self.slots[(epoch % SLOTS as u64) as usize];
        if slot.epoch.swap(epoch, Ordering::AcqRel) != epoch {
            slot.total.store(0, Ordering::Release);
            slot.failures.store(0, Ordering::Release);
        }
        slot.total.fetch_add(1, Ordering::AcqRel);
        if !success {
            slot.failures.fetch_add(1, Ordering::AcqRel);
        }
        self.slots
            .iter()
            .filter(|s| epoch.saturating_sub(s.epoch.load(Ordering::Acquire)) < SLOTS as u64)
            .fold((0, 0), |(t, f), s| {
                (
                    t + s.total.load(Ordering::Acquire),
                    f + s.failures.load(Ordering::Acquire),
                )
            })
    }

    fn trip(&self, from: State) {
        self.opened_at_ms.store(self.now_ms(), Ordering::Release);
        if self.transition(from, State::Open) {
            self.consecutive.store(0, Ordering::Release);
        }
    }

    fn transition(&self, from: State, to: State) -> bool {
        let changed = self
            .state
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if changed {
            metrics::gauge!("ordergate_circuit_state", "upstream" => self.settings.upstream.clone())
                .set(f64::from(to as u8));
            metrics::counter!("ordergate_circuit_transitions_total", "to" => to.as_str())
                .increment(1);
            match to {
                State::Open => tracing::warn!(from = from.as_str(), "upstream circuit opened"),
                _ => tracing::info!(
                    from = from.as_str(),
                    to = to.as_str(),
                    "upstream circuit changed state"
                ),
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerSettings {
            consecutive_failures: 3,
            failure_rate: 0.5,
            window: Duration::from_secs(10),
            min_requests: 10,
            open_for: Duration::from_secs(5),
            half_open_probes: 2,
            failure_statuses: vec![500, 503],
            upstream: Arc::from("default"),
        })
    }

    fn call(b: &CircuitBreaker, success: bool) -> Result<(), u64> {
        b.acquire()?.record(success);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_a_streak_then_half_opens_and_closes() {
        let b = breaker();
        call(&b, false).unwrap();
        call(&b, true).unwrap();
        call(&b, false).unwrap();
        call(&b, false).unwrap();
        assert_eq!(b.state(), State::Closed, "the streak was broken");
        call(&b, false).unwrap();
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.acquire().err(), Some(5));
        tokio::time::advance(Duration::from_millis(4_100)).await;
        assert_eq!(b.acquire().err(), Some(1));
        tokio::time::advance(Duration::from_secs(1)).await;
        let p1 = b.acquire().unwrap();
        let p2 = b.acquire().unwrap();
        assert_eq!(b.state(), State::HalfOpen);
        assert!(b.acquire().is_err(), "only half_open_probes get through");
        p1.record(true);
        assert_eq!(b.state(), State::HalfOpen);
        p2.record(true);
        assert_eq!(b.state(), State::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens() {
        let b = breaker();
        for _ in 0..3 {
            call(&b, false).unwrap();
        }
        tokio::time::advance(Duration::from_secs(6)).await;
        b.acquire().unwrap().record(false);
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.acquire().err(), Some(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_never_reports_counts_as_a_failure() {
        let b = breaker();
        for _ in 0..3 {
            call(&b, false).unwrap();
        }
        tokio::time::advance(Duration::from_secs(6)).await;
        drop(b.acquire().unwrap());
        assert_eq!(
            b.state(),
            State::Open,
            "a cancelled probe re-opens instead of blocking half-open"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_failure_rate_over_the_window() {
        let b = breaker();
        // Alternate: never 3 failures in a row, but half of all calls fail.
        for i in 0..9 {
            call(&b, i % 2 == 0).unwrap();
        }
        assert_eq!(b.state(), State::Closed, "below min_requests");
        call(&b, false).unwrap();
        assert_eq!(b.state(), State::Open, "5 of 10 failed");
    }

    #[tokio::test(start_paused = true)]
    async fn old_failures_leave_the_window() {
        let b = breaker();
        for i in 0..8 {
            call(&b, i % 2 == 0).unwrap();
        }
        tokio::time::advance(Duration::from_secs(11)).await;
        for _ in 0..8 {
            call(&b, true).unwrap();
        }
        call(&b, false).unwrap();
        call(&b, false).unwrap();
        assert_eq!(b.state(), State::Closed, "2 of 10 in the window");
    }
}
