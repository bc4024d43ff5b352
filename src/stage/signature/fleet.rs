//! The widest nonce lifetime of a fleet on one Redis store. Each instance keeps a nonce for its
//! own window (`max_age` and `clock_skew`), but a request recorded by one instance may be
//! replayed to another: were that one's window wider (reloaded earlier, or configured so), it
//! would accept the request again once the first instance's shorter-lived nonce expired.
//!
//! So every instance publishes its lifetime under `<prefix>nonce_ttl` once a second, where
//! the widest one holds the key for that lifetime (a narrower one leaves it alone; the key
//! lapses a lifetime after the widest instance stopped refreshing it, when the nonces it
//! recorded have lapsed too), reads back the widest, and records its nonces for at least that
//! long. `<prefix>nonce_skew` holds the widest `clock_skew` alike. One round trip per second
//! per instance, none per request. A reload publishes its new lifetime before it serves with
//! it; the others see it within [`propagation`], which the reload's own carry covers
//! ([`super::carry`]).
//!
//! What the key held before a publish tells what the store can vouch for, and the instance
//! that finds out marks it in `<prefix>nonce_unvouched` for the whole fleet, read back by
//! every publish (so within a second or two by every instance, and before an instance that
//! connects records its first nonce). Narrower than the publisher's lifetime (a start, a
//! restart or a reload with a wider window than the fleet's): a request signed up to a cutoff
//! (now, plus twice the skew, the margin and [`propagation`], while the others still record
//! for the old lifetime) and older than the old lifetime's window (its lifetime less twice the
//! fleet's widest skew and the margin) may have been seen and its nonce let go. Missing (Redis
//! restarted or was flushed, or nobody published for a whole lifetime): nothing signed before
//! that second can be vouched for. Such requests count as the store failing, as after a start
//! on the local store ([`super::carry`]); a nonce still held is a replay all the same.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;

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

/// Publishes this instance's lifetime and skew where they are the widest, marks what the store
/// cannot vouch for when the lifetime it held was narrower or missing, and returns the widest
/// lifetime and the fleet's marks (`f`: forgotten until; `c`, `v`: cutoff and vouched-for age;
/// 0, 0, -1 for none).
static PUBLISH: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(PUBLISH_SCRIPT));

const PUBLISH_SCRIPT: &str = r"
local own = tonumber(ARGV[1])
local own_skew = tonumber(ARGV[2])
local held = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local skew = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local widest = held
if own >= held then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[1])
  widest = own
end
if own_skew >= skew then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', string.format('%.0f', widest))
end
if held < own then
  if held == 0 then
    local f = tonumber(redis.call('HGET', KEYS[3], 'f') or '0') or 0
    local until_s = math.max(f, tonumber(ARGV[3]) - 1)
    redis.call('HSET', KEYS[3], 'f', string.format('%.0f', until_s))
  else
    if skew == 0 then skew = own_skew end
    local vouched = math.floor((held - 2 * skew - tonumber(ARGV[5])) / 1000)
    if vouched < 0 then vouched = 0 end
    local c = tonumber(redis.call('HGET', KEYS[3], 'c') or '0') or 0
    local v = tonumber(redis.call('HGET', KEYS[3], 'v') or '') or vouched
    redis.call('HSET', KEYS[3],
      'c', string.format('%.0f', math.max(c, tonumber(ARGV[4]))),
      'v', string.format('%.0f', math.min(v, vouched)))
  end
  redis.call('PEXPIRE', KEYS[3], ARGV[6])
end
local marks = redis.call('HMGET', KEYS[3], 'f', 'c', 'v')
return {widest, tonumber(marks[1] or '0') or 0, tonumber(marks[2] or '0') or 0,
  tonumber(marks[3] or '-1') or -1}
";

/// Requests the shared store cannot vouch for (epoch seconds).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Unvouched {
    /// The store held no lifetime: a request signed at or before this.
    forgotten_until: Option<i64>,
    /// The store held a narrower lifetime: a request signed at or before `.0` and older than
    /// `.1` seconds.
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

/// The widest lifetime the fleet last published, as this instance read it (milliseconds; 0
/// before the first read), and what the store could not vouch for as the fleet marked it.
#[derive(Debug, Default)]
pub struct FleetTtl {
    widest: AtomicU64,
    unvouched: ArcSwap<Unvouched>,
}

impl FleetTtl {
    /// The lifetime to record a nonce for: `own`, or the fleet's widest when that is longer.
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

    /// Publishes the lifetime and skew of `settings` in `store`; keeps the widest published
    /// lifetime for [`Self::widen`] and the fleet's marks for [`Self::lost_for`].
    pub async fn publish(
        &self,
        store: &SharedStore,
        settings: &SignatureSettings,
    ) -> Result<(), StoreError> {
        let now = now_secs();
        let own = settings.nonce_ttl();
        let skew = secs(settings.clock_skew).saturating_mul(2);
        let cutoff = now
            .saturating_add(skew)
            .saturating_add(secs(NONCE_MARGIN))
            .saturating_add(secs(settings.fleet_propagation));
        // Marks matter while a request signed before the cutoff can pass the widest window.
        let keep = Duration::from_secs(u64::try_from(cutoff.saturating_sub(now)).unwrap_or(0))
            .saturating_add(own);
        let prefix = store.prefix();
        let mut invocation = PUBLISH.prepare_invoke();
        invocation
            .key(format!("{prefix}nonce_ttl"))
            .key(format!("{prefix}nonce_skew"))
            .key(format!("{prefix}nonce_unvouched"))
            .arg(millis(own))
            .arg(millis(settings.clock_skew))
            .arg(now)
            .arg(cutoff)
            .arg(millis(NONCE_MARGIN))
            .arg(millis(keep));
        let mut connection = store.connection();
        let (widest, forgotten, cutoff, vouched): (u64, i64, i64, i64) =
            tokio::time::timeout(store.timeout(), invocation.invoke_async(&mut connection))
                .await
                .map_err(|_| StoreError::Timeout(store.timeout()))??;
        let marked = Unvouched {
            forgotten_until: (forgotten > 0).then_some(forgotten),
            shorter: (cutoff > 0 && vouched >= 0).then_some((cutoff, vouched)),
        };
        self.take(marked, settings, now);
        self.widest.store(widest, Ordering::Relaxed);
        Ok(())
    }

    /// Folds the fleet's `marked` into this instance's (several publishes may run at once).
    fn take(&self, marked: Unvouched, settings: &SignatureSettings, now: i64) {
        let window = secs(settings.max_age).saturating_add(secs(NONCE_MARGIN));
        self.unvouched
            .rcu(|current| current.fold(marked, window, now));
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
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
