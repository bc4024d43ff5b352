//! The shared backend: every gateway instance evaluates its buckets in Redis with one atomic
//! script per request (one round trip), so N instances admit what one would. Keys of one
//! principal share a hash tag, so the script also works on Redis Cluster.
//!
//! The script is `gcra.rs` transcribed, in microseconds (Lua numbers are doubles: nanoseconds
//! since the epoch would lose precision), using the Redis server's clock so that instances with
//! skewed clocks still agree.

use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::vocab::shared_store::SharedStore;

use super::gcra::Evaluation;
use super::local::{BucketRef, Decision, combine};

const GCRA_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS
local all = 1
local out = {}
local tats = {}
for i = 1, n do
  local interval = tonumber(ARGV[2 * i - 1])
  local capacity = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  local base = math.max(tat, now)
  local new_tat = base + interval
  local ahead = new_tat - now
  if ahead <= capacity then
    tats[i] = new_tat
    table.insert(out, 1)
    table.insert(out, math.floor((capacity - ahead) / interval))
    table.insert(out, math.ceil(ahead / 1000000))
    table.insert(out, 0)
  else
    all = 0
    table.insert(out, 0)
    table.insert(out, 0)
    table.insert(out, math.ceil((base - now) / 1000000))
    table.insert(out, math.max(1, math.ceil((ahead - capacity) / 1000000)))
  end
end
if all == 1 then
  for i = 1, n do
    local ttl = math.ceil((tats[i] - now) / 1000) + 1000
    redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', ttl)
  end
end
return out
"#;

/// Why the shared backend did not answer.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The client or server reported an error.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// No answer within the configured timeout.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// The script answered a different number of figures than asked for.
    #[error("redis answered an unexpected shape")]
    Shape,
}

/// The buckets' script on the shared backend.
#[derive(Clone, Debug)]
pub struct RedisBuckets {
    store: SharedStore,
    script: redis::Script,
}

impl RedisBuckets {
    /// Connects lazily-reconnecting to `client`.
    pub async fn connect(
        client: redis::Client,
        timeout: Duration,
        prefix: String,
    ) -> Result<Self, BackendError> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let connect = ConnectionManager::new_with_config(client, config);
        let connection = tokio::time::timeout(timeout * 4, connect)
            .await
            .map_err(|_| BackendError::Timeout(timeout * 4))??;
        Ok(Self {
            store: SharedStore::new(connection, timeout, prefix),
            script: redis::Script::new(GCRA_SCRIPT),
        })
    }

    /// The backend for other shared state (freezes).
    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// Evaluates and, if all admit, charges `buckets` of the hash-tagged `owner` in one round trip.
    pub async fn check(
        &self,
        owner: &str,
        buckets: &[BucketRef],
    ) -> Result<Decision, BackendError> {
        let mut invocation = self.script.prepare_invoke();
        let tag = crate::vocab::shared_store::hash_tag(owner);
        for bucket in buckets {
            invocation.key(format!("{}rl:{{{tag}}}:{}", self.store.prefix(), bucket.id));
        }
        for bucket in buckets {
            invocation
                .arg(bucket.spec.interval_ns().div_ceil(1_000).max(1))
                .arg(bucket.spec.capacity_ns().div_ceil(1_000));
        }
        let mut connection = self.store.connection();
        let reply: Vec<i64> = tokio::time::timeout(
            self.store.timeout(),
            invocation.invoke_async(&mut connection),
        )
        .await
        .map_err(|_| BackendError::Timeout(self.store.timeout()))??;
        if reply.len() != buckets.len() * 4 {
            return Err(BackendError::Shape);
        }
        let evaluations: Vec<Evaluation> = reply
            .chunks_exact(4)
            .map(|c| Evaluation {
                admitted: c[0] == 1,
                new_tat: 0,
                remaining: u32::try_from(c[1].max(0)).unwrap_or(u32::MAX),
                reset_secs: u64::try_from(c[2].max(0)).unwrap_or(0),
                retry_after_secs: u64::try_from(c[3].max(0)).unwrap_or(0),
            })
            .collect();
        Ok(combine(buckets, &evaluations))
    }
}

#[cfg(test)]
mod tests {
    use crate::vocab::shared_store::hash_tag;

    #[test]
    fn hash_tags_cannot_be_broken_out_of_and_stay_distinct() {
        assert_eq!(hash_tag("a}b{c"), "a%7Db%7Bc");
        assert_ne!(
            hash_tag("a}b"),
            hash_tag("a%7Db"),
            "two principals, two buckets"
        );
        assert_eq!(hash_tag("a%b"), "a%25b");
    }
}
