//! GCRA (the generic cell rate algorithm), the arithmetic of a token bucket kept as one number per
//! bucket: its theoretical arrival time (TAT). The same arithmetic runs in the local backend and,
//! transcribed, in the Redis script (`redis.rs`); the tests here pin both.
//!
//! With emission interval `T` (period / count) and capacity `burst`:
//! a request at `now` is admitted iff `max(tat, now) + T − now ≤ burst·T`, and then
//! `tat := max(tat, now) + T`. A refused request changes nothing: a caller over its limit
//! regains access at the configured rate however hard it keeps knocking.

use std::num::NonZeroU32;

use crate::vocab::units::Rate;

/// A bucket's shape: rate and capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BucketSpec {
    /// The sustained rate.
    pub rate: Rate,
    /// Requests that may arrive at once.
    pub burst: NonZeroU32,
}

impl BucketSpec {
    /// The emission interval in nanoseconds.
    pub fn interval_ns(&self) -> u64 {
        u64::try_from(self.rate.interval().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The bucket's tolerance (`burst·T`) in nanoseconds.
    pub fn capacity_ns(&self) -> u64 {
        self.interval_ns()
            .saturating_mul(u64::from(self.burst.get()))
    }

    /// A stable name, so that an unchanged bucket keeps its state across reloads.
    pub fn fingerprint(&self) -> String {
        format!(
            "{}/{}ms:{}",
            self.rate.count,
            self.rate.period.as_millis(),
            self.burst
        )
    }
}

/// The outcome of evaluating one bucket at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evaluation {
    /// Whether this bucket admits the request.
    pub admitted: bool,
    /// The TAT to store if the request is admitted by every bucket.
    pub new_tat: u64,
    /// Whole tokens left after this request (0 when refused).
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
    /// Seconds until a refused request would be admitted (0 when admitted).
    pub retry_after_secs: u64,
}

/// Evaluates one bucket whose stored TAT is `tat` (0 for a fresh bucket) at `now` (ns).
pub fn evaluate(spec: &BucketSpec, tat: u64, now: u64) -> Evaluation {
    let t = spec.interval_ns();
    let capacity = spec.capacity_ns();
    let base = tat.max(now);
    let new_tat = base.saturating_add(t);
    let ahead = new_tat - now;
    if ahead <= capacity {
        Evaluation {
            admitted: true,
            new_tat,
            remaining: u32::try_from((capacity - ahead) / t.max(1)).unwrap_or(u32::MAX),
            reset_secs: ceil_secs(ahead),
            retry_after_secs: 0,
        }
    } else {
        Evaluation {
            admitted: false,
            new_tat: tat,
            remaining: 0,
            reset_secs: ceil_secs(base - now),
            retry_after_secs: ceil_secs(ahead - capacity).max(1),
        }
    }
}

fn ceil_secs(ns: u64) -> u64 {
    ns.div_ceil(1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::units::parse_rate;

    const SEC: u64 = 1_000_000_000;

    fn spec(rate: &str, burst: u32) -> BucketSpec {
        BucketSpec {
            rate: parse_rate(rate).unwrap(),
            burst: NonZeroU32::new(burst).unwrap(),
        }
    }

    /// Runs `n` requests at `now`, storing the TAT like a backend would.
    fn burst_at(spec: &BucketSpec, tat: &mut u64, now: u64, n: u32) -> u32 {
        let mut admitted = 0;
        for _ in 0..n {
            let e = evaluate(spec, *tat, now);
            if e.admitted {
                *tat = e.new_tat;
                admitted += 1;
            }
        }
        admitted
    }

    #[test]
    fn a_full_bucket_admits_exactly_burst() {
        let s = spec("60/min", 5);
        let mut tat = 0;
        let now = 1_000 * SEC;
        let first = evaluate(&s, tat, now);
        assert_eq!(
            (first.admitted, first.remaining, first.reset_secs),
            (true, 4, 1)
        );
        assert_eq!(burst_at(&s, &mut tat, now, 100), 5);
        let refused = evaluate(&s, tat, now);
        assert!(!refused.admitted);
        assert_eq!(refused.retry_after_secs, 1);
        assert_eq!(refused.reset_secs, 5);
    }

    #[test]
    fn refills_at_the_rate_and_refusals_cost_nothing() {
        let s = spec("60/min", 5);
        let mut tat = 0;
        let start = 1_000 * SEC;
        assert_eq!(burst_at(&s, &mut tat, start, 5), 5);
        // Hammering while refused does not push recovery further away.
        for ms in 0..1000 {
            assert!(!evaluate(&s, tat, start + ms * 1_000_000 / 2).admitted);
        }
        assert_eq!(
            burst_at(&s, &mut tat, start + SEC, 10),
            1,
            "one token per second"
        );
        assert_eq!(burst_at(&s, &mut tat, start + 3 * SEC, 10), 2);
        assert_eq!(
            burst_at(&s, &mut tat, start + 100 * SEC, 10),
            5,
            "never more than burst"
        );
    }

    #[test]
    fn remaining_counts_down() {
        let s = spec("120/min", 20);
        let mut tat = 0;
        let now = 50 * SEC;
        let remaining: Vec<u32> = (0..20)
            .map(|_| {
                let e = evaluate(&s, tat, now);
                tat = e.new_tat;
                e.remaining
            })
            .collect();
        assert_eq!(remaining, (0..20).rev().collect::<Vec<_>>());
        assert_eq!(evaluate(&s, tat, now).reset_secs, 10, "20 tokens at 2/s");
    }
}
