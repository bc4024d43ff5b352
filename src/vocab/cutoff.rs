//! The moment shutdown stops waiting. Shutdown first drains (no new connections, HTTP/2 GOAWAY,
//! in-flight requests finish); when `shutdown_grace` runs out the cutoff is reached: requests
//! still waiting for the upstream end at once with 503 `overloaded`, and responses still being
//! sent are dropped, both recorded with `detail` `shutdown` (CONTRACT §11: the exit is bounded
//! whatever the upstream does).

use std::sync::Arc;

use tokio::sync::watch;

use crate::vocab::worker;

/// Watches the cutoff is spread over, one per serving thread's slot ([`worker::slot`]): every
/// request waits on it, and on one watch the requests of all cores would take turns on one
/// waiter list (a lock and its cache line travelling between cores, twice per request).
const SLOTS: usize = 64;

/// Shared by the gateway, every request and every response body; cheap to clone.
#[derive(Debug, Clone)]
pub struct Cutoff {
    reached: Arc<[watch::Sender<bool>; SLOTS]>,
}

impl Default for Cutoff {
    fn default() -> Self {
        Self {
            reached: Arc::new(std::array::from_fn(|_| watch::Sender::new(false))),
        }
    }
}

impl Cutoff {
    /// Reaches the cutoff; everything waiting on [`Cutoff::reached`] wakes.
    pub fn cut(&self) {
        for slot in self.reached.iter() {
            slot.send_replace(true);
        }
    }

    /// True once the cutoff is reached.
    pub fn is_cut(&self) -> bool {
        *self.local().borrow()
    }

    /// Resolves when the cutoff is reached (at once if it already was).
    pub async fn reached(&self) {
        let mut seen = self.local().subscribe();
        // The sender lives in `self`, so this only returns once the value is true.
        let _ = seen.wait_for(|cut| *cut).await;
    }

    /// The calling thread's watch.
    fn local(&self) -> &watch::Sender<bool> {
        &self.reached[worker::slot(SLOTS)]
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

    #[test]
    fn waiters_on_every_worker_thread_wake() {
        let cutoff = Cutoff::default();
        let (ready, waiting) = std::sync::mpsc::channel();
        let workers: Vec<_> = (0..SLOTS + 2)
            .map(|worker| {
                let cutoff = cutoff.clone();
                let ready = ready.clone();
                std::thread::spawn(move || {
                    super::worker::enter(worker);
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    runtime.block_on(async {
                        assert!(!cutoff.is_cut());
                        let mut wait = std::pin::pin!(cutoff.reached());
                        // Registered before the cut is sent.
                        let pending = std::future::poll_fn(|cx| {
                            std::task::Poll::Ready(wait.as_mut().poll(cx).is_pending())
                        });
                        assert!(pending.await);
                        ready.send(()).unwrap();
                        wait.await;
                        assert!(cutoff.is_cut());
                    });
                })
            })
            .collect();
        for _ in 0..workers.len() {
            waiting.recv().unwrap();
        }
        cutoff.cut();
        for worker in workers {
            worker.join().unwrap();
        }
    }
}
