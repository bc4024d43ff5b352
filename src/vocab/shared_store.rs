//! The shared Redis backend as every stage sees it: one lazily reconnecting connection, the key
//! prefix and the round-trip timeout. Rate limits (stage 8) and freezes (stage 4) keep their
//! state there when `rate_limits.backend = "redis"`, so every instance agrees.

use std::time::Duration;

use redis::aio::ConnectionManager;

/// A handle on the shared backend; cheap to clone.
#[derive(Clone)]
pub struct SharedStore {
    connection: ConnectionManager,
    timeout: Duration,
    prefix: String,
}

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl SharedStore {
    /// Wraps a connected manager.
    pub fn new(connection: ConnectionManager, timeout: Duration, prefix: String) -> Self {
        Self {
            connection,
            timeout,
            prefix,
        }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A connection (a clone of the manager: requests are multiplexed).
    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// The round-trip timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// `text` made safe inside a Redis Cluster `{...}` hash tag, injectively: `%` first, then the
/// braces, so `a}b` and `a%7Db` stay two keys and no id can close the tag early.
pub fn hash_tag(text: &str) -> String {
    text.replace('%', "%25")
        .replace('{', "%7B")
        .replace('}', "%7D")
}
