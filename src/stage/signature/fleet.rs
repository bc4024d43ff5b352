//! The widest nonce lifetime of a fleet on one Redis store. Each instance keeps a nonce for its
//! own window (`max_age` and `clock_skew`), but a request recorded by one instance may be
//! replayed to another: were that one's window wider (reloaded earlier, or configured so), it
//! would accept the request again once the first instance's shorter-lived nonce expired.
//!
//! So every instance publishes its lifetime under `<prefix>nonce_ttl` once a second, where
//! the widest one holds the key for that lifetime (a narrower one leaves it alone; the key
//! lapses a lifetime after the widest instance stopped refreshing it, when the nonces it
//! recorded have lapsed too), reads back the widest, and records its nonces for at least that
//! long. One round trip per second per instance, none per request. A reload publishes its new
//! lifetime before it serves with it; the others see it within [`propagation`], which the
//! reload's own carry covers ([`super::carry`]).
//!
//! What the key held before a publish tells what the store can vouch for. Narrower than this
//! instance's lifetime (a start, or a return, with a wider window than the fleet's, or a
//! restart that raised `max_age`): a request signed before now (plus the skew, the margin
//! and [`propagation`], while the others still record for the old lifetime) and older than
//! that lifetime's window may have been seen and its nonce let go. Missing (Redis restarted
//! or was flushed, or nobody published for a whole lifetime): nothing signed before this
//! second can be vouched for. Such requests count as the store failing, as after a start on
//! the local store ([`super::carry`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
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

/// Publishes this instance's lifetime if it is at least the widest; returns the widest and
/// what the key held before (0: nothing).
static PUBLISH: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(PUBLISH_SCRIPT));

const PUBLISH_SCRIPT: &str = r"
local own = tonumber(ARGV[1])
local held = redis.call('GET', KEYS[1])
local widest = 0
if held then widest = tonumber(held) or 0 end
if own >= widest then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[1])
  return {own, widest}
end
return {widest, widest}
";

/// Requests the shared store cannot vouch for (epoch seconds).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Unvouched {
    /// The store held nothing: a request signed at or before this.
    forgotten_until: Option<i64>,
    /// The store held a narrower lifetime: a request signed at or before `.0` and older than
    /// `.1` seconds.
    shorter: Option<(i64, i64)>,
}

/// The widest lifetime the fleet last published, as this instance read it (milliseconds; 0
/// before the first read), and what the store could not vouch for when it was read.
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

    /// Publishes the lifetime of `settings` in `store`; keeps the widest published one for
    /// [`Self::widen`] and what the store held before for [`Self::lost_for`].
    pub async fn publish(
        &self,
        store: &SharedStore,
        settings: &SignatureSettings,
    ) -> Result<(), StoreError> {
        let own = settings.nonce_ttl();
        let mut invocation = PUBLISH.prepare_invoke();
        invocation
            .key(format!("{}nonce_ttl", store.prefix()))
            .arg(millis(own));
        let mut connection = store.connection();
        let (widest, held): (u64, u64) =
            tokio::time::timeout(store.timeout(), invocation.invoke_async(&mut connection))
                .await
                .map_err(|_| StoreError::Timeout(store.timeout()))??;
        self.note(Duration::from_millis(held), settings, now_secs());
        self.widest.store(widest, Ordering::Relaxed);
        Ok(())
    }

    /// Takes in that the store held the lifetime `held` (zero: nothing) at `now`, when this
    /// instance records for `settings`' lifetime.
    fn note(&self, held: Duration, settings: &SignatureSettings, now: i64) {
        if held >= settings.nonce_ttl() {
            return;
        }
        let mut next = **self.unvouched.load();
        // Dropped once nothing signed before them can pass the window.
        let window = secs(settings.max_age).saturating_add(secs(NONCE_MARGIN));
        let live = |cutoff: &i64| now <= cutoff.saturating_add(window);
        next.forgotten_until = next.forgotten_until.filter(live);
        next.shorter = next.shorter.filter(|(cutoff, _)| live(cutoff));
        if held.is_zero() {
            let until = now.saturating_sub(1);
            next.forgotten_until = Some(next.forgotten_until.map_or(until, |u| u.max(until)));
        } else {
            let skew = secs(settings.clock_skew).saturating_mul(2);
            let cutoff = now
                .saturating_add(skew)
                .saturating_add(secs(NONCE_MARGIN))
                .saturating_add(secs(settings.fleet_propagation));
            let vouched = secs(held)
                .saturating_sub(skew)
                .saturating_sub(secs(NONCE_MARGIN));
            next.shorter = Some(match next.shorter {
                Some((c, v)) => (c.max(cutoff), v.min(vouched)),
                None => (cutoff, vouched),
            });
        }
        self.unvouched.store(Arc::new(next));
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    /// `max_age`, a 5 s skew and a 3 s propagation: the lifetime is `max_age` + 12 s.
    fn settings(max_age: u64) -> SignatureSettings {
        SignatureSettings {
            max_age: Duration::from_secs(max_age),
            clock_skew: Duration::from_secs(5),
            fleet_propagation: Duration::from_secs(3),
            ..SignatureSettings::default()
        }
    }

    #[test]
    fn a_store_holding_this_lifetime_or_more_vouches_for_what_it_holds() {
        let fleet = FleetTtl::default();
        let own = settings(60);
        fleet.note(own.nonce_ttl(), &own, NOW);
        fleet.note(Duration::from_secs(612), &own, NOW);
        assert!(!fleet.lost_for(NOW - 60, NOW));
        assert_eq!(**fleet.unvouched.load(), Unvouched::default());
    }

    #[test]
    fn a_store_found_empty_vouches_for_nothing_signed_before_that_second() {
        let fleet = FleetTtl::default();
        let own = settings(60);
        fleet.note(Duration::ZERO, &own, NOW);
        assert!(fleet.lost_for(NOW - 1, NOW));
        assert!(fleet.lost_for(NOW - 60, NOW + 30));
        assert!(
            !fleet.lost_for(NOW, NOW),
            "signed in the second it was found"
        );
        // Found empty again: the later second counts.
        fleet.note(Duration::ZERO, &own, NOW + 30);
        assert!(fleet.lost_for(NOW + 29, NOW + 30));
    }

    #[test]
    fn a_store_with_a_narrower_lifetime_vouches_for_that_window_only() {
        let fleet = FleetTtl::default();
        // This instance judges by 600 s; the fleet recorded for 72 s (a 60 s window).
        let own = settings(600);
        fleet.note(Duration::from_secs(72), &own, NOW);
        assert!(!fleet.lost_for(NOW - 60, NOW));
        assert!(fleet.lost_for(NOW - 61, NOW));
        // Until the cutoff (now + 2 × skew + margin + propagation) the others may still record
        // for 72 s.
        assert!(fleet.lost_for(NOW + 15, NOW + 76));
        assert!(!fleet.lost_for(NOW + 15, NOW + 75));
        assert!(!fleet.lost_for(NOW + 16, NOW + 600));
        // A narrower one still: the narrowest window, the latest cutoff.
        fleet.note(Duration::from_secs(22), &own, NOW + 5);
        assert!(fleet.lost_for(NOW - 11, NOW));
        assert!(fleet.lost_for(NOW + 20, NOW + 31));
        assert!(!fleet.lost_for(NOW + 21, NOW + 600));
    }

    #[test]
    fn what_the_store_could_not_vouch_for_is_dropped_once_it_cannot_pass_the_window() {
        let fleet = FleetTtl::default();
        let own = settings(60);
        fleet.note(Duration::ZERO, &own, NOW);
        fleet.note(Duration::from_secs(22), &own, NOW + 10);
        // Both live: the empty store's second and the narrower cutoff.
        let both = **fleet.unvouched.load();
        assert_eq!(both.forgotten_until, Some(NOW - 1));
        assert_eq!(both.shorter, Some((NOW + 10 + 15, 10)));
        // 62 s past the first: nothing signed before it passes the 60 s window (+ margin).
        fleet.note(Duration::from_secs(22), &own, NOW + 62);
        let later = **fleet.unvouched.load();
        assert_eq!(later.forgotten_until, None);
        assert_eq!(later.shorter, Some((NOW + 62 + 15, 10)));
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
