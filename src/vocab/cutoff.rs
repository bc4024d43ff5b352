//! The moment shutdown stops waiting. Shutdown first drains (no new connections, HTTP/2 GOAWAY,
//! in-flight requests finish); when `shutdown_grace` runs out the cutoff is reached: requests
//! still waiting for the upstream end at once with 503 `overloaded`, and responses still being
//! sent are dropped, both recorded with `detail` `shutdown` (CONTRACT §11: the exit is bounded
//! whatever the upstream does).

use std::sync::Arc;

use tokio::sync::watch;

/// Shared by the gateway, every request and every response body; cheap to clone.
#[derive(Debug, Clone)]
pub struct Cutoff {
    reached: Arc<watch::Sender<bool>>,
}

impl Default for Cutoff {
    fn default() -> Self {
        Self {
            reached: Arc::new(watch::Sender::new(false)),
        }
    }
}

impl Cutoff {
    /// Reaches the cutoff; everything waiting on [`Cutoff::reached`] wakes.
    pub fn cut(&self) {
        self.reached.send_replace(true);
    }

    /// True once the cutoff is reached.
    pub fn is_cut(&self) -> bool {
        *self.reached.borrow()
    }

    /// Resolves when the cutoff is reached (at once if it already was).
    pub async fn reached(&self) {
        let mut seen = self.reached.subscribe();
        // The sender lives in `self`, so this only returns once the value is true.
        let _ = seen.wait_for(|cut| *cut).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_wake_when_cut_and_late_waiters_return_at_once() {
        let cutoff = Cutoff::default();
        assert!(!cutoff.is_cut());
        let waiter = tokio::spawn({
            let cutoff = cutoff.clone();
            async move { cutoff.reached().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        cutoff.cut();
        waiter.await.unwrap();
        assert!(cutoff.is_cut());
        cutoff.reached().await;
    }
}
