//! Nonces across a reload. A nonce is kept for the lifetime its generation gave it
//! ([`SignatureSettings::nonce_ttl`]), in the store that generation named. A reload that raises
//! `max_age` would accept a request again once its nonce, kept for the shorter window, has
//! expired; one that moves `nonce_store` would not see the pairs kept in the old store.
//!
//! Only a request signed before the reload can have been seen before it: one seen then had a
//! `created` at most `clock_skew` ahead of the clock (twice that across instances). So requests
//! whose `created` is at or before that cutoff are judged by the previous `max_age` and looked up
//! in the previous store too; requests signed after it get the new window and store alone. A
//! request refused this way was signed before the change and is signed again by its sender; a
//! replay is never accepted.
//!
//! A process start is the same change with nothing to inherit when the store is local: the
//! nonces of the process before died with it. For a request signed before the second this
//! process started, this store cannot say whether it was seen: it counts as the store failing,
//! and `on_store_error` decides (`reject`: 503, signed again and sent within a second). Not
//! covered, so that a start does not refuse every partner for seconds: a request the process
//! before accepted in that same second, or signed up to `clock_skew` ahead of the clock. The
//! Redis store outlives the process; what it may have let go is judged by the lifetime it held
//! ([`super::fleet`]).

use std::time::Duration;

use super::{NONCE_MARGIN, NonceStore, SignatureSettings, secs};

/// What a generation inherits from the ones before it, for requests signed before it began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Carried {
    /// Epoch seconds: a request whose `created` is at or before this may have been seen by an
    /// earlier generation.
    pub cutoff: i64,
    /// The narrowest `max_age` of those generations.
    pub max_age: Duration,
    /// A store other than this generation's that may hold their nonces.
    pub also: Option<NonceStore>,
}

impl SignatureSettings {
    /// Inherits from `previous` (the running generation) at `now` (epoch seconds): a cutoff when
    /// `max_age` was raised or the store moved, folded with what `previous` carried itself while
    /// requests signed before that cutoff could still pass this generation's window.
    pub fn carry_from(&mut self, previous: &SignatureSettings, now: i64) {
        let raised = self.max_age > previous.max_age;
        let moved = previous.nonce_store != self.nonce_store;
        // On Redis the other instances learn the new lifetime within `fleet_propagation`
        // ([`super::fleet`]); until then they record for the old window.
        let propagation = match self.nonce_store {
            NonceStore::Redis => secs(self.fleet_propagation),
            NonceStore::Local => 0,
        };
        let own = (raised || moved).then(|| Carried {
            cutoff: now
                .saturating_add(secs(previous.clock_skew).saturating_mul(2))
                .saturating_add(secs(NONCE_MARGIN))
                .saturating_add(propagation),
            max_age: previous.max_age,
            also: moved.then_some(previous.nonce_store),
        });
        let window = secs(self.max_age).saturating_add(secs(NONCE_MARGIN));
        let kept = previous
            .carried
            .filter(|c| now <= c.cutoff.saturating_add(window));
        let folded = match (own, kept) {
            (Some(a), Some(b)) => Some(Carried {
                cutoff: a.cutoff.max(b.cutoff),
                max_age: a.max_age.min(b.max_age),
                also: a.also.or(b.also),
            }),
            (one, other) => one.or(other),
        };
        // Whatever the store now: neither holds the nonces the process before this one saw.
        self.nonces_lost_until = previous.nonces_lost_until;
        self.carried = folded.map(|c| Carried {
            max_age: c.max_age.min(self.max_age),
            also: c.also.filter(|store| *store != self.nonce_store),
            ..c
        });
    }

    /// The first generation of a process, started at `now` (epoch seconds).
    pub fn start_at(&mut self, now: i64) {
        self.nonces_lost_until =
            (self.nonce_store == NonceStore::Local).then(|| now.saturating_sub(1));
    }

    /// True when a signature `created` at that time may have been accepted by the process
    /// before this one, whose local nonces are gone.
    pub fn lost_for(&self, created: i64) -> bool {
        self.nonces_lost_until.is_some_and(|until| created <= until)
    }

    /// The earlier store a signature `created` at that time is also looked up in.
    pub fn also_for(&self, created: i64) -> Option<NonceStore> {
        self.carried
            .filter(|c| created <= c.cutoff)
            .and_then(|c| c.also)
    }
}

/// The `max_age` a signature `created` at that time is judged by, under `own` and `carried`.
pub fn max_age_for(carried: Option<&Carried>, own: Duration, created: i64) -> Duration {
    match carried {
        Some(c) if created <= c.cutoff => c.max_age.min(own),
        _ => own,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    impl SignatureSettings {
        /// The `max_age` a signature `created` at that time is judged by, under its own carry.
        fn max_age_for(&self, created: i64) -> Duration {
            max_age_for(self.carried.as_ref(), self.max_age, created)
        }
    }

    fn settings(max_age: u64, store: NonceStore) -> SignatureSettings {
        SignatureSettings {
            max_age: Duration::from_secs(max_age),
            clock_skew: Duration::from_secs(5),
            nonce_store: store,
            ..SignatureSettings::default()
        }
    }

    #[test]
    fn an_unchanged_or_lowered_max_age_carries_nothing() {
        let old = settings(60, NonceStore::Local);
        for max_age in [60, 30] {
            let mut new = settings(max_age, NonceStore::Local);
            new.clock_skew = Duration::from_secs(30);
            new.carry_from(&old, NOW);
            assert_eq!(new.carried, None);
            assert_eq!(new.max_age_for(NOW - 1), Duration::from_secs(max_age));
        }
    }

    #[test]
    fn a_raised_max_age_judges_requests_signed_before_the_reload_by_the_old_one() {
        let old = settings(60, NonceStore::Local);
        let mut new = settings(600, NonceStore::Local);
        new.carry_from(&old, NOW);
        // Seen before the reload at most 2 × clock_skew (+ the margin) ahead of the clock.
        let cutoff = NOW + 2 * 5 + 2;
        assert_eq!(new.max_age_for(NOW - 300), Duration::from_secs(60));
        assert_eq!(new.max_age_for(cutoff), Duration::from_secs(60));
        assert_eq!(new.max_age_for(cutoff + 1), Duration::from_secs(600));
        assert_eq!(new.also_for(NOW), None);
    }

    #[test]
    fn a_moved_store_is_also_asked_for_requests_signed_before_the_move() {
        let old = settings(60, NonceStore::Local);
        let mut new = settings(60, NonceStore::Redis);
        new.carry_from(&old, NOW);
        assert_eq!(new.also_for(NOW), Some(NonceStore::Local));
        // On Redis, with the time the fleet takes to learn the new lifetime.
        assert_eq!(new.also_for(NOW + 12 + 3), Some(NonceStore::Local));
        assert_eq!(new.also_for(NOW + 12 + 3 + 1), None);
        assert_eq!(new.max_age_for(NOW), Duration::from_secs(60));
        // Moving back while those requests live: the old store is the one this generation
        // does not use.
        let mut back = settings(60, NonceStore::Local);
        back.carry_from(&new, NOW + 1);
        assert_eq!(back.also_for(NOW), Some(NonceStore::Redis));
    }

    #[test]
    fn reloads_in_a_row_keep_the_narrowest_window_while_it_matters() {
        let first = settings(60, NonceStore::Local);
        let mut second = settings(300, NonceStore::Local);
        second.carry_from(&first, NOW);
        let mut third = settings(900, NonceStore::Local);
        third.carry_from(&second, NOW + 10);
        assert_eq!(third.max_age_for(NOW), Duration::from_secs(60));
        assert_eq!(third.carried.unwrap().cutoff, NOW + 10 + 12);
        // A reload that changes nothing keeps what is carried.
        let mut fourth = settings(900, NonceStore::Local);
        fourth.carry_from(&third, NOW + 100);
        assert_eq!(fourth.carried, third.carried);
        // Once nothing signed before the cutoff can pass the window, it is dropped.
        let mut fifth = settings(900, NonceStore::Local);
        fifth.carry_from(&fourth, NOW + 22 + 902 + 1);
        assert_eq!(fifth.carried, None);
    }

    #[test]
    fn a_start_on_the_local_store_cannot_vouch_for_requests_signed_before_it() {
        let mut local = settings(60, NonceStore::Local);
        local.start_at(NOW);
        assert!(local.lost_for(NOW - 30));
        assert!(local.lost_for(NOW - 1));
        // Signed once this process runs (the second it started in included).
        assert!(!local.lost_for(NOW));
        // Kept across reloads, whichever store they name.
        let mut reloaded = settings(60, NonceStore::Redis);
        reloaded.carry_from(&local, NOW + 1);
        assert!(reloaded.lost_for(NOW - 1));
        assert!(!reloaded.lost_for(NOW));
        // Redis outlives the process.
        let mut shared = settings(60, NonceStore::Redis);
        shared.start_at(NOW);
        assert!(!shared.lost_for(NOW - 30));
    }
}
