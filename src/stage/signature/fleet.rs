//! The widest nonce lifetime of a fleet on one Redis store. Each instance keeps a nonce for its
//! own window (`max_age` and `clock_skew`), but a request recorded by one instance may be
//! replayed to another: were that one's window wider (reloaded earlier, or configured so), it
//! would accept the request again once the first instance's shorter-lived nonce expired.
//!
//! So every instance publishes its lifetime under `<prefix>nonce_ttl` once a second, where
//! the widest one holds the key (a narrower one leaves it alone; the key lapses
//! [`CLAIM_HOLDS`] after the widest instance stopped refreshing it), reads back the widest, and
//! records its nonces for at least that long. One round trip per second per instance, none per
//! request. A reload publishes its new lifetime before it serves with it; the others see it
//! within [`propagation`], which the reload's own carry covers ([`super::carry`]).

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::vocab::shared_store::SharedStore;

use super::nonce::StoreError;

/// How long a published lifetime holds without being refreshed.
pub const CLAIM_HOLDS: Duration = Duration::from_secs(10);

/// The longest it takes a lifetime published at a reload to reach every instance: a read that
/// just missed it, that tick's other Redis calls (the frozen set, the canary state), the next
/// tick a second on, and the read again, each call up to `redis_timeout`; a second to spare.
/// Whole seconds, rounded up (`created` is read in seconds).
pub fn propagation(redis_timeout: Duration) -> Duration {
    let millis = 2_000u64.saturating_add(millis(redis_timeout).saturating_mul(4));
    Duration::from_secs(millis.div_ceil(1_000))
}

/// Publishes this instance's lifetime if it is at least the widest, returns the widest.
static PUBLISH: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(PUBLISH_SCRIPT));

const PUBLISH_SCRIPT: &str = r"
local own = tonumber(ARGV[1])
local held = redis.call('GET', KEYS[1])
local widest = 0
if held then widest = tonumber(held) or 0 end
if own >= widest then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return own
end
return widest
";

/// The widest lifetime the fleet last published, as this instance read it (milliseconds; 0
/// before the first read).
#[derive(Debug, Default)]
pub struct FleetTtl(AtomicU64);

impl FleetTtl {
    /// The lifetime to record a nonce for: `own`, or the fleet's widest when that is longer.
    pub fn widen(&self, own: Duration) -> Duration {
        own.max(Duration::from_millis(self.0.load(Ordering::Relaxed)))
    }

    /// Publishes `own` in `store` and keeps the widest published lifetime for [`Self::widen`].
    pub async fn publish(&self, store: &SharedStore, own: Duration) -> Result<(), StoreError> {
        let mut invocation = PUBLISH.prepare_invoke();
        invocation
            .key(format!("{}nonce_ttl", store.prefix()))
            .arg(millis(own))
            .arg(millis(CLAIM_HOLDS));
        let mut connection = store.connection();
        let widest: u64 =
            tokio::time::timeout(store.timeout(), invocation.invoke_async(&mut connection))
                .await
                .map_err(|_| StoreError::Timeout(store.timeout()))??;
        self.0.store(widest, Ordering::Relaxed);
        Ok(())
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        fleet.0.store(612_000, Ordering::Relaxed);
        assert_eq!(fleet.widen(own), Duration::from_secs(612));
        assert_eq!(
            fleet.widen(Duration::from_secs(900)),
            Duration::from_secs(900)
        );
    }
}
