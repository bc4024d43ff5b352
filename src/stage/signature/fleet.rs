//! The widest nonce lifetime of a fleet on one Redis store. Each instance keeps a nonce for its
//! own window (`max_age` and `clock_skew`), but a request recorded by one instance may be
//! replayed to another: were that one's window wider (reloaded earlier, or configured so), it
//! would accept the request again once the first instance's shorter-lived nonce expired.
//!
//! So every instance publishes its `max_age` and `clock_skew` once a second under
//! `<prefix>{nonce}:age` and `<prefix>{nonce}:skew`, where the widest of each holds the key for
//! the fleet's lifetime (a narrower one leaves it alone, so it lapses a lifetime after the
//! widest instance stopped, with the nonces it recorded), and records its nonces for the
//! widest `max_age` plus twice the widest skew and a margin: at least as long as any instance
//! can accept them. One round trip per second per instance, none per request. A reload
//! publishes before it serves; the others see it within [`propagation`], which the reload's
//! own carry covers ([`super::carry`]).
//!
//! What Redis held before a publish tells what it can vouch for, and the instance that finds
//! out marks it in `<prefix>{nonce}:unvouched` for the fleet, read back by every publish (so
//! within a second or two by every instance, and before one that connects records its first
//! nonce). A `max_age` narrower than the publisher's (a start, restart or reload wider than
//! the fleet's): a request signed up to a cutoff (now, plus twice the skew, the margin and
//! [`propagation`], while the others still record for the old lifetime) and older than that
//! `max_age` may have been seen and its nonce let go. No heartbeat (`<prefix>{nonce}:alive`, a
//! count every publish raises), or one lower than this instance last wrote (Redis restarted
//! without its data or, while an instance ran, from an older snapshot; was flushed; failed
//! over to a replica more than a round of publishes behind; or no instance ran for a whole
//! lifetime): nothing signed before that second can be vouched for. Such requests count as the store failing, as after a start on
//! the local store ([`super::carry`]); a nonce still held is a replay all the same. All keys
//! share the `{nonce}` hash tag, so the script runs on Redis Cluster.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::vocab::shared_store::SharedStore;

use super::nonce::StoreError;
use super::{NONCE_MARGIN, SignatureSettings, now_secs, secs};

/// The longest it takes a lifetime published at a reload to reach every instance: a read that
/// just missed it, that tick's other Redis calls (the frozen set, the canary state), the next
/// tick a second on, and the read again, each call up to `redis_timeout`; a second to spare.
/// Whole seconds, rounded up (`created` is read in seconds).
pub fn propagation(redis_timeout: Duration) -> Duration {
    let millis = 2_000u64.saturating_add(millis(redis_timeout).saturating_mul(4));
    Duration::from_secs(millis.div_ceil(1_000))
}

/// Publishes this instance's `max_age` and skew where they are the widest and its heartbeat,
/// marks what Redis cannot vouch for, drops marks nothing signed before can still pass, and
/// returns the fleet's lifetime (ms), the heartbeat's count after this publish and the marks
/// (`f`: forgotten until; `c`, `v`: cutoff and vouched-for age, seconds; 0, 0, -1 for none).
static PUBLISH: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(PUBLISH_SCRIPT));

const PUBLISH_SCRIPT: &str = r"
local function num(v, default)
  return tonumber(v or '') or default
end
local function int(x)
  return string.format('%.0f', x)
end
local own_age, own_skew = tonumber(ARGV[1]), tonumber(ARGV[2])
local margin, now, last = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local spread = tonumber(ARGV[6])
local age = num(redis.call('GET', KEYS[1]), 0)
local skew = num(redis.call('GET', KEYS[2]), 0)
local alive = redis.call('HMGET', KEYS[3], 'seq', 'age')
local alive_seq, alive_age = num(alive[1], 0), num(alive[2], 0)
local wide_age, wide_skew = math.max(age, own_age), math.max(skew, own_skew)
local lifetime = wide_age + 2 * wide_skew + margin
if own_age >= age then redis.call('SET', KEYS[1], int(own_age), 'PX', int(lifetime)) end
if own_skew >= skew then redis.call('SET', KEYS[2], int(own_skew), 'PX', int(lifetime)) end
local seq = redis.call('HINCRBY', KEYS[3], 'seq', 1)
redis.call('HSET', KEYS[3], 'age', int(wide_age))
redis.call('PEXPIRE', KEYS[3], int(lifetime))
-- A later instance, its clock up to twice the skew behind, may still accept what a mark covers.
local window = math.floor(wide_age / 1000) + math.floor(margin / 1000)
  + 2 * math.ceil(wide_skew / 1000)
local f = num(redis.call('HGET', KEYS[4], 'f'), 0)
local c = num(redis.call('HGET', KEYS[4], 'c'), 0)
local v = num(redis.call('HGET', KEYS[4], 'v'), -1)
if f > 0 and now > f + window then f = 0 end
if c > 0 and now > c + window then c, v = 0, -1 end
local found = age
if found == 0 then found = alive_age end
local changed = false
if alive_seq == 0 or alive_seq < last then
  f = math.max(f, now - 1)
  changed = true
elseif found < own_age then
  local cutoff = now + 2 * math.ceil(wide_skew / 1000) + math.floor(margin / 1000) + spread
  local vouched = math.floor(found / 1000)
  c = math.max(c, cutoff)
  if v < 0 then v = vouched else v = math.min(v, vouched) end
  changed = true
end
if changed then
  redis.call('DEL', KEYS[4])
  if f > 0 then redis.call('HSET', KEYS[4], 'f', int(f)) end
  if c > 0 then redis.call('HSET', KEYS[4], 'c', int(c), 'v', int(v)) end
  redis.call('PEXPIRE', KEYS[4], int(lifetime + 1000 * (2 * math.ceil(wide_skew / 1000) + spread + 2)))
end
return {lifetime, seq, f, c, v}
";

/// Requests the shared store cannot vouch for (epoch seconds).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Unvouched {
    /// Redis may have lost what it held: a request signed at or before this.
    forgotten_until: Option<i64>,
    /// The fleet accepted for a narrower window: a request signed at or before `.0` and older
    /// than `.1` seconds.
    shorter: Option<(i64, i64)>,
}

impl Unvouched {
    /// Both marks, each the stricter of the two; those nothing signed before can still pass a
    /// `window` of seconds at `now` dropped.
    fn fold(self, other: Unvouched, window: i64, now: i64) -> Unvouched {
        let live = |cutoff: &i64| now <= cutoff.saturating_add(window);
        let forgotten_until = match (self.forgotten_until, other.forgotten_until) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let shorter = match (self.shorter, other.shorter) {
            (Some((c1, v1)), Some((c2, v2))) => Some((c1.max(c2), v1.min(v2))),
            (a, b) => a.or(b),
        };
        Unvouched {
            forgotten_until: forgotten_until.filter(live),
            shorter: shorter.filter(|(cutoff, _)| live(cutoff)),
        }
    }
}

/// The fleet's nonce lifetime as this instance last read it (milliseconds; 0 before the first
/// read), and what the store could not vouch for as the fleet marked it.
#[derive(Debug, Default)]
pub struct FleetTtl {
    widest: AtomicU64,
    /// The highest heartbeat count this instance wrote: a publish that read an older state
    /// does not overwrite what a newer one read, and a Redis that went back is seen.
    latest: Mutex<u64>,
    unvouched: ArcSwap<Unvouched>,
}

impl FleetTtl {
    /// The lifetime to record a nonce for: `own`, or the fleet's when that is longer.
    pub fn widen(&self, own: Duration) -> Duration {
        own.max(Duration::from_millis(self.widest.load(Ordering::Relaxed)))
    }

    /// True when a request `created` then may have been seen by the fleet although the store
    /// no longer holds its nonce (`now` in epoch seconds).
    pub fn lost_for(&self, created: i64, now: i64) -> bool {
        let unvouched = self.unvouched.load();
        unvouched
            .forgotten_until
            .is_some_and(|until| created <= until)
            || unvouched.shorter.is_some_and(|(cutoff, vouched)| {
                created <= cutoff && now.saturating_sub(created) > vouched
            })
    }

    /// Publishes the window of `settings` in `store` ([`PUBLISH_SCRIPT`]); keeps the fleet's
    /// lifetime for [`Self::widen`] and its marks for [`Self::lost_for`].
    pub async fn publish(
        &self,
        store: &SharedStore,
        settings: &SignatureSettings,
    ) -> Result<(), StoreError> {
        let now = now_secs();
        let last = *self.latest.lock();
        let prefix = store.prefix();
        let mut invocation = PUBLISH.prepare_invoke();
        invocation
            .key(format!("{prefix}{{nonce}}:age"))
            .key(format!("{prefix}{{nonce}}:skew"))
            .key(format!("{prefix}{{nonce}}:alive"))
            .key(format!("{prefix}{{nonce}}:unvouched"))
            .arg(millis(settings.max_age))
            .arg(millis(settings.clock_skew))
            .arg(millis(NONCE_MARGIN))
            .arg(now)
            .arg(last)
            .arg(secs(settings.fleet_propagation));
        let mut connection = store.connection();
        let (lifetime, count, forgotten, cutoff, vouched): (u64, u64, i64, i64, i64) =
            tokio::time::timeout(store.timeout(), invocation.invoke_async(&mut connection))
                .await
                .map_err(|_| StoreError::Timeout(store.timeout()))??;
        let marked = Unvouched {
            forgotten_until: (forgotten > 0).then_some(forgotten),
            shorter: (cutoff > 0 && vouched >= 0).then_some((cutoff, vouched)),
        };
        let window = secs(settings.max_age).saturating_add(secs(NONCE_MARGIN));
        self.unvouched
            .rcu(|current| current.fold(marked, window, now));
        let mut latest = self.latest.lock();
        // Newer than what any publish of this instance read, or Redis went back (then marked):
        // from now on this is the count.
        if count >= *latest || count <= last {
            *latest = count;
            self.widest.store(lifetime, Ordering::Relaxed);
        }
        Ok(())
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn marks(forgotten_until: Option<i64>, shorter: Option<(i64, i64)>) -> Unvouched {
        Unvouched {
            forgotten_until,
            shorter,
        }
    }

    fn fleet_with(marked: Unvouched) -> FleetTtl {
        let fleet = FleetTtl::default();
        fleet.unvouched.store(Arc::new(marked));
        fleet
    }

    #[test]
    fn without_marks_the_store_vouches_for_what_it_holds() {
        let fleet = FleetTtl::default();
        assert!(!fleet.lost_for(NOW - 60, NOW));
    }

    #[test]
    fn a_store_found_empty_vouches_for_nothing_signed_before_that_second() {
        let fleet = fleet_with(marks(Some(NOW - 1), None));
        assert!(fleet.lost_for(NOW - 1, NOW));
        assert!(fleet.lost_for(NOW - 60, NOW + 30));
        assert!(
            !fleet.lost_for(NOW, NOW),
            "signed in the second it was found"
        );
    }

    #[test]
    fn a_store_with_a_narrower_lifetime_vouches_for_that_window_only() {
        // The fleet recorded for a 60 s window until the cutoff.
        let fleet = fleet_with(marks(None, Some((NOW + 15, 60))));
        assert!(!fleet.lost_for(NOW - 60, NOW));
        assert!(fleet.lost_for(NOW - 61, NOW));
        assert!(fleet.lost_for(NOW + 15, NOW + 76));
        assert!(!fleet.lost_for(NOW + 15, NOW + 75));
        assert!(
            !fleet.lost_for(NOW + 16, NOW + 600),
            "signed after the cutoff"
        );
    }

    #[test]
    fn marks_fold_to_the_stricter_and_drop_once_they_cannot_matter() {
        let window = 62;
        let here = marks(Some(NOW - 1), Some((NOW + 15, 60)));
        let fleet = marks(Some(NOW + 9), Some((NOW + 25, 10)));
        assert_eq!(
            here.fold(fleet, window, NOW + 10),
            marks(Some(NOW + 9), Some((NOW + 25, 10)))
        );
        assert_eq!(
            here.fold(Unvouched::default(), window, NOW + 10),
            here,
            "a fleet without marks keeps this instance's"
        );
        // 62 s past the first: nothing signed before it passes the 60 s window (+ margin).
        assert_eq!(
            here.fold(Unvouched::default(), window, NOW + 62),
            marks(None, Some((NOW + 15, 60)))
        );
        assert_eq!(
            here.fold(Unvouched::default(), window, NOW + 78),
            Unvouched::default()
        );
    }

    #[test]
    fn a_slower_redis_takes_longer_to_spread_a_lifetime() {
        assert_eq!(
            propagation(Duration::from_millis(100)),
            Duration::from_secs(3)
        );
        assert_eq!(
            propagation(Duration::from_millis(500)),
            Duration::from_secs(4)
        );
        assert_eq!(propagation(Duration::from_secs(2)), Duration::from_secs(10));
    }

    #[test]
    fn a_nonce_lives_for_the_wider_of_its_own_lifetime_and_the_fleets() {
        let fleet = FleetTtl::default();
        let own = Duration::from_secs(72);
        assert_eq!(fleet.widen(own), own, "nothing read yet");
        fleet.widest.store(612_000, Ordering::Relaxed);
        assert_eq!(fleet.widen(own), Duration::from_secs(612));
        assert_eq!(
            fleet.widen(Duration::from_secs(900)),
            Duration::from_secs(900)
        );
    }
}
