//! Progress of one response towards the client, so that a client that stops reading (an HTTP/2
//! receive window left at 0, a TCP window that never opens) cannot hold an audit slot and an
//! in-flight slot for as long as its connection lives.
//!
//! The response body reports here; the connection's watchdog (`server/`) asks [`SendWatch::check`]
//! and aborts the connection of a stalled response. Time spent waiting for the *upstream* is not a
//! send stall (the upstream has its own `timeout`), so it is excluded: a stall is time during
//! which the body has something to give or has given it, and the connection does not ask for more.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One response's progress; shared by the body and the connection's watchdog (atomics only).
#[derive(Debug)]
pub struct SendWatch {
    epoch: Instant,
    /// Milliseconds since `epoch` of the last progress.
    last: AtomicU64,
    /// The request is still in the pipeline, or the body waits on the upstream.
    upstream_wait: AtomicBool,
    finished: AtomicBool,
    stalled: AtomicBool,
}

impl Default for SendWatch {
    /// A request that has just arrived: it is in the pipeline, not yet sending.
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            last: AtomicU64::new(0),
            upstream_wait: AtomicBool::new(true),
            finished: AtomicBool::new(false),
            stalled: AtomicBool::new(false),
        }
    }
}

impl SendWatch {
    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// The response moved: its head was handed over, or the body gave a frame. From now on the
    /// client must take it within the stall timeout.
    pub fn progressed(&self) {
        self.last
            .store(self.millis(Instant::now()), Ordering::Release);
        self.upstream_wait.store(false, Ordering::Release);
    }

    /// The body waits for the upstream; not a send stall.
    pub fn waiting_on_upstream(&self) {
        self.upstream_wait.store(true, Ordering::Release);
    }

    /// The response ended (completely or not); nothing more to watch.
    pub fn finish(&self) {
        self.finished.store(true, Ordering::Release);
    }

    /// True once the response ended.
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// True when the watchdog found this response stalled.
    pub fn is_stalled(&self) -> bool {
        self.stalled.load(Ordering::Acquire)
    }

    /// Marks the response stalled (and returns true) when it has waited on the client for longer
    /// than `limit` at `now`.
    pub fn check(&self, now: Instant, limit: Duration) -> bool {
        if self.is_finished() || self.upstream_wait.load(Ordering::Acquire) {
            return false;
        }
        let waited = self
            .millis(now)
            .saturating_sub(self.last.load(Ordering::Acquire));
        let limit = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        if waited >= limit {
            self.stalled.store(true, Ordering::Release);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_millis(500);

    #[test]
    fn waiting_on_the_client_past_the_limit_is_a_stall() {
        let watch = SendWatch::default();
        watch.progressed();
        let now = Instant::now();
        assert!(!watch.check(now, LIMIT));
        assert!(watch.check(now + LIMIT + Duration::from_millis(5), LIMIT));
        assert!(watch.is_stalled());
    }

    #[test]
    fn time_in_the_pipeline_or_waiting_on_the_upstream_is_not_a_stall() {
        let later = Instant::now() + Duration::from_secs(60);
        let arrived = SendWatch::default();
        assert!(!arrived.check(later, LIMIT));
        let streaming = SendWatch::default();
        streaming.progressed();
        streaming.waiting_on_upstream();
        assert!(!streaming.check(later, LIMIT));
        assert!(!streaming.is_stalled());
    }

    #[test]
    fn a_finished_response_is_never_a_stall() {
        let watch = SendWatch::default();
        watch.progressed();
        watch.finish();
        assert!(!watch.check(Instant::now() + Duration::from_secs(60), LIMIT));
    }
}
