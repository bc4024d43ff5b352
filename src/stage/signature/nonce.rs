//! Replay protection: a `(keyid, nonce)` pair is accepted once within `max_age + clock_skew`
//! (plus a 2 s margin for whole-second clocks; a request older than that is refused as expired
//! anyway, so the pair can be forgotten then).
//!
//! Pairs are kept as a SHA-256 of kind, keyid and nonce, so the stores hold fixed-size keys
//! whatever the client sent. Locally they live in [`LocalNonces`]: 16 shards (no single lock on
//! the request path), each a map and a queue ordered by deadline, bounded at [`LOCAL_CAPACITY`]
//! pairs in all (about 20 MiB); when it is full of unexpired pairs the store reports an error and
//! `on_store_error` decides — it never forgets a live pair to make room, which would reopen
//! the replay. The shard is chosen by a keyed hash with a per-process random key, so a caller
//! cannot grind nonces into one shard; and one credential holds at most a quarter of any shard
//! ([`CREDENTIAL_SHARE`]), so a partner that floods the store is refused alone instead of
//! locking the others out. A full store is never treated as a store *failure*: it refuses
//! whatever `on_store_error` says. With Redis, one `SET key 1 NX PX ttl` round trip: the first
//! instance to set it wins, every other instance sees the pair taken.

use std::cmp::Reverse;
use std::collections::hash_map::RandomState;
use std::collections::{BinaryHeap, HashMap};
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::vocab::principal_kind::PrincipalKind;
use crate::vocab::shared_store::SharedStore;

/// The most `(keyid, nonce)` pairs this process remembers at once.
pub const LOCAL_CAPACITY: usize = 262_144;

const SHARDS: usize = 16;
const PER_SHARD: usize = LOCAL_CAPACITY / SHARDS;

/// The share of each shard one credential may hold (one in this many).
pub const CREDENTIAL_SHARE: usize = 4;
const PER_CREDENTIAL: usize = PER_SHARD / CREDENTIAL_SHARE;

/// A `(kind, keyid, nonce)` pair, hashed, with the credential it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NonceKey {
    pair: [u8; 32],
    credential: u64,
}

impl NonceKey {
    /// The key of `nonce` sent by the credential `keyid` of `kind`.
    pub fn new(kind: PrincipalKind, keyid: &str, nonce: &str) -> Self {
        let mut hash = Sha256::new();
        for part in [kind.as_str(), keyid] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        let credential = hash.clone().finalize();
        hash.update((nonce.len() as u64).to_be_bytes());
        hash.update(nonce.as_bytes());
        let mut id = [0u8; 8];
        id.copy_from_slice(&credential[..8]);
        Self {
            pair: hash.finalize().into(),
            credential: u64::from_be_bytes(id),
        }
    }
}

/// Why a nonce could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Every slot holds a pair that has not expired.
    #[error("the local nonce store is full ({LOCAL_CAPACITY} unexpired nonces)")]
    Full,
    /// This credential holds its whole share of the store.
    #[error("one credential holds its whole share of the local nonce store")]
    CredentialFull,
    /// Redis answered with an error.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis did not answer in time.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
}

impl StoreError {
    /// True when the store is full rather than failing: such a pair is refused whatever
    /// `on_store_error` says (accepting it unchecked would reopen the replay on demand).
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Full | Self::CredentialFull)
    }
}

#[derive(Debug, Default)]
struct Shard {
    until: HashMap<NonceKey, Instant>,
    /// Every pair in `until` once, soonest deadline first. Ordered by deadline, not by arrival:
    /// after a reload shortens the ttl, a pair recorded before it must not hold the shorter-lived
    /// ones behind it in the store (they would fill the shard's limits while dead).
    queue: BinaryHeap<Reverse<(Instant, NonceKey)>>,
    held: HashMap<u64, usize>,
}

impl Shard {
    /// Forgets every pair expired at `now`.
    fn expire(&mut self, now: Instant) {
        while let Some(&Reverse((until, key))) = self.queue.peek() {
            if until > now {
                break;
            }
            self.queue.pop();
            if self.until.get(&key) == Some(&until) {
                self.remove(key);
            }
        }
    }

    /// Drops the queue's entries for pairs taken back (no longer held with that deadline).
    fn drop_forgotten(&mut self) {
        let Self { until, queue, .. } = self;
        queue.retain(|Reverse((deadline, key))| until.get(key) == Some(deadline));
    }

    /// Forgets `key` and gives its credential's slot back.
    fn remove(&mut self, key: NonceKey) {
        if self.until.remove(&key).is_none() {
            return;
        }
        if let Some(held) = self.held.get_mut(&key.credential) {
            *held -= 1;
            if *held == 0 {
                self.held.remove(&key.credential);
            }
        }
    }
}

/// This process's nonces; outlives reloads.
#[derive(Debug)]
pub struct LocalNonces {
    shards: Vec<Mutex<Shard>>,
    /// Picks the shard; randomly keyed per process, so callers cannot aim at one.
    salt: RandomState,
}

impl Default for LocalNonces {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            salt: RandomState::new(),
        }
    }
}

impl LocalNonces {
    /// Records `key` for `ttl` from `now`: `Ok(true)` when it was new, `Ok(false)` when it was
    /// seen within its ttl (a replay).
    pub fn record(&self, key: NonceKey, ttl: Duration, now: Instant) -> Result<bool, StoreError> {
        let Some(shard) = self.shard(key) else {
            return Err(StoreError::Full);
        };
        let mut shard = shard.lock();
        shard.expire(now);
        if shard.until.get(&key).is_some_and(|until| *until > now) {
            return Ok(false);
        }
        // Pairs taken back ([`Self::forget`]) stay in the queue until their deadline: dropped
        // once they are as many as the shard holds, so no caller can fill it with them.
        if shard.queue.len() >= 2 * PER_SHARD {
            shard.drop_forgotten();
        }
        if shard.until.len() >= PER_SHARD || shard.queue.len() >= 2 * PER_SHARD {
            return Err(StoreError::Full);
        }
        let held = shard.held.entry(key.credential).or_insert(0);
        if *held >= PER_CREDENTIAL {
            return Err(StoreError::CredentialFull);
        }
        *held += 1;
        let until = now + ttl;
        shard.until.insert(key, until);
        shard.queue.push(Reverse((until, key)));
        Ok(true)
    }

    /// Takes back `key`, recorded for a request that was then refused for another reason (so
    /// the same request sent again is not taken for a replay).
    pub fn forget(&self, key: NonceKey) {
        if let Some(shard) = self.shard(key) {
            shard.lock().remove(key);
        }
    }

    /// True when `key` is remembered at `now` (recording nothing).
    pub fn holds(&self, key: NonceKey, now: Instant) -> bool {
        self.shard(key).is_some_and(|shard| {
            shard
                .lock()
                .until
                .get(&key)
                .is_some_and(|until| *until > now)
        })
    }

    /// The shard `key` lives in.
    fn shard(&self, key: NonceKey) -> Option<&Mutex<Shard>> {
        let index = (self.salt.hash_one(key.pair) % SHARDS as u64) as usize;
        self.shards.get(index)
    }

    /// Pairs remembered (expired ones included until the next record in their shard).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().until.len()).sum()
    }

    /// True when no pair is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The Redis key of `key`'s pair.
fn shared_name(store: &SharedStore, key: NonceKey) -> String {
    format!("{}nonce:{}", store.prefix(), hex::encode(key.pair))
}

/// `command` on the shared Redis, within its timeout.
async fn query<T: redis::FromRedisValue>(
    store: &SharedStore,
    command: &redis::Cmd,
) -> Result<T, StoreError> {
    let mut connection = store.connection();
    Ok(
        tokio::time::timeout(store.timeout(), command.query_async(&mut connection))
            .await
            .map_err(|_| StoreError::Timeout(store.timeout()))??,
    )
}

/// True when the shared Redis holds `key` (one `EXISTS`, recording nothing).
pub async fn holds_shared(store: &SharedStore, key: NonceKey) -> Result<bool, StoreError> {
    let held: u64 = query(store, redis::cmd("EXISTS").arg(shared_name(store, key))).await?;
    Ok(held > 0)
}

/// Takes back `key` from the shared Redis (one `DEL`), recorded by this instance for a request
/// then refused for another reason.
pub async fn forget_shared(store: &SharedStore, key: NonceKey) -> Result<(), StoreError> {
    let _: u64 = query(store, redis::cmd("DEL").arg(shared_name(store, key))).await?;
    Ok(())
}

/// Records `key` in the shared Redis with one `SET NX PX`: `Ok(true)` when this instance was
/// the first to set it.
pub async fn record_shared(
    store: &SharedStore,
    key: NonceKey,
    ttl: Duration,
) -> Result<bool, StoreError> {
    let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
    let mut command = redis::cmd("SET");
    command
        .arg(shared_name(store, key))
        .arg(1)
        .arg("NX")
        .arg("PX")
        .arg(millis);
    let reply: Option<String> = query(store, &command).await?;
    Ok(reply.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> NonceKey {
        NonceKey::new(PrincipalKind::ApiKey, "sf-logistics", &n.to_string())
    }

    /// `n`'s nonce from one of eight partners.
    fn spread(n: u32) -> NonceKey {
        NonceKey::new(
            PrincipalKind::ApiKey,
            &format!("p{}", n % 8),
            &n.to_string(),
        )
    }

    #[test]
    fn a_nonce_is_accepted_once_within_its_ttl() {
        let store = LocalNonces::default();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(65);
        assert!(store.record(key(1), ttl, t0).unwrap());
        assert!(
            !store
                .record(key(1), ttl, t0 + Duration::from_secs(64))
                .unwrap()
        );
        assert!(store.record(key(2), ttl, t0).unwrap());
        // Past its ttl the pair is forgotten (such a request is refused as expired anyway).
        assert!(
            store
                .record(key(1), ttl, t0 + Duration::from_secs(66))
                .unwrap()
        );
    }

    #[test]
    fn pairs_are_per_credential() {
        let a = NonceKey::new(PrincipalKind::ApiKey, "a", "n1");
        assert_ne!(a, NonceKey::new(PrincipalKind::ApiKey, "b", "n1"));
        assert_ne!(a, NonceKey::new(PrincipalKind::Mtls, "a", "n1"));
        // Lengths are part of the hash: ("ab", "c") is not ("a", "bc").
        assert_ne!(
            NonceKey::new(PrincipalKind::ApiKey, "ab", "c"),
            NonceKey::new(PrincipalKind::ApiKey, "a", "bc")
        );
    }

    #[test]
    fn a_full_store_refuses_rather_than_forgets() {
        let store = LocalNonces::default();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(60);
        let mut full = 0;
        for n in 0..(LOCAL_CAPACITY as u32 + 10_000) {
            match store.record(spread(n), ttl, t0) {
                Ok(fresh) => assert!(fresh),
                Err(e) if e.is_full() => full += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(full >= 10_000, "{full}");
        assert!(store.len() <= LOCAL_CAPACITY);
        // A recorded pair is still refused: nothing was evicted.
        assert!(!store.record(spread(0), ttl, t0).unwrap());
        // Once they expire there is room again.
        assert!(store.record(spread(u32::MAX), ttl, t0 + ttl).unwrap());
    }

    #[test]
    fn one_credential_flooding_the_store_is_refused_alone() {
        let store = LocalNonces::default();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(60);
        let mut refused = 0;
        for n in 0..(LOCAL_CAPACITY as u32 / 2) {
            match store.record(key(n), ttl, t0) {
                Ok(fresh) => assert!(fresh),
                Err(StoreError::CredentialFull) => refused += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(refused > 0, "one credential took half the store");
        assert!(store.len() <= LOCAL_CAPACITY / CREDENTIAL_SHARE);
        // Another partner still records its nonces.
        for n in 0..1000 {
            let other = NonceKey::new(PrincipalKind::ApiKey, "jd-marketplace", &n.to_string());
            assert!(store.record(other, ttl, t0).unwrap());
        }
        // Its share frees as its pairs expire.
        assert!(store.record(key(u32::MAX), ttl, t0 + ttl).unwrap());
    }

    #[test]
    fn a_shorter_ttl_after_a_long_one_does_not_fill_the_store_with_dead_pairs() {
        let store = LocalNonces::default();
        let t0 = Instant::now();
        // A pair recorded under a day's ttl in every shard (before a reload lowered max_age).
        let mut n = 0u32;
        while store.shards.iter().any(|s| s.lock().until.is_empty()) {
            let long = NonceKey::new(PrincipalKind::ApiKey, "before", &n.to_string());
            assert!(store.record(long, Duration::from_secs(86_400), t0).unwrap());
            n += 1;
        }
        let before = store.len();
        // Then one partner at one live pair at a time, more pairs in all than its share of
        // any shard: each must be accepted, and the dead ones forgotten.
        let ttl = Duration::from_secs(1);
        for n in 0..(SHARDS * PER_CREDENTIAL + 1000) as u32 {
            let now = t0 + Duration::from_secs(u64::from(n));
            assert!(store.record(key(n), ttl, now).unwrap(), "pair {n}");
            assert!(store.holds(key(n), now));
        }
        assert!(store.len() <= before + SHARDS, "{} pairs", store.len());
        // The long-lived pairs are still held.
        let first = NonceKey::new(PrincipalKind::ApiKey, "before", "0");
        assert!(
            !store
                .record(first, ttl, t0 + Duration::from_secs(86_399))
                .unwrap()
        );
    }

    #[test]
    fn a_pair_taken_back_can_be_recorded_again_and_frees_its_slot() {
        let store = LocalNonces::default();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(60);
        assert!(store.record(key(1), ttl, t0).unwrap());
        store.forget(key(1));
        assert!(!store.holds(key(1), t0));
        assert!(store.record(key(1), ttl, t0).unwrap());
        assert!(!store.record(key(1), ttl, t0).unwrap());
        // Taking back over and over does not use up the credential's share.
        for n in 2..(SHARDS * PER_CREDENTIAL + 1000) as u32 {
            assert!(store.record(key(n), ttl, t0).unwrap(), "pair {n}");
            store.forget(key(n));
        }
        assert_eq!(store.len(), 1);
        // Nor does taking one pair back over and over fill its shard's queue for everyone.
        for _ in 0..(2 * PER_SHARD + 10) {
            assert!(store.record(key(0), ttl, t0).unwrap());
            store.forget(key(0));
        }
        assert!(store.record(key(0), ttl, t0).unwrap());
    }
}
