//! A request's pipeline, polled in place by the connection instead of in a task of its own; if
//! hyper drops it before it has finished (the client went away), what is left of it is spawned
//! then, so the request is still recorded (as `client_disconnected`) and upstream bookkeeping
//! (breaker, in-flight) stays right. The common case, a request that finishes, costs no task
//! spawn, no join and no wake-up across tasks; only an abandoned request pays for a task.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::sync::Notify;

/// `future`, run to its end even if this wrapper is dropped first.
pub(super) struct FinishAnyway<F: Future + Send + 'static>
where
    F::Output: Send + 'static,
{
    future: Option<Pin<Box<F>>>,
}

impl<F: Future + Send + 'static> FinishAnyway<F>
where
    F::Output: Send + 'static,
{
    pub(super) fn new(future: F) -> Self {
        Self {
            future: Some(Box::pin(future)),
        }
    }
}

impl<F: Future + Send + 'static> Future for FinishAnyway<F>
where
    F::Output: Send + 'static,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Some(future) = self.future.as_mut() else {
            // Polled after it completed: a caller bug, answered by never completing again.
            return Poll::Pending;
        };
        let output = std::task::ready!(future.as_mut().poll(cx));
        self.future = None;
        Poll::Ready(output)
    }
}

impl<F: Future + Send + 'static> Drop for FinishAnyway<F>
where
    F::Output: Send + 'static,
{
    fn drop(&mut self) {
        let Some(future) = self.future.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            // Its output (a response nobody will send) is dropped when it ends, which records it.
            Ok(runtime) => {
                let left = Leftover::new();
                drop(runtime.spawn(async move {
                    drop(future.await);
                    drop(left);
                }));
            }
            // No runtime left (the process is stopping): dropping it now is all that can be done,
            // as with a task the runtime drops at shutdown.
            Err(_) => drop(future),
        }
    }
}

/// Abandoned requests still running, in the whole process.
static LEFTOVERS: AtomicUsize = AtomicUsize::new(0);
/// Told when the last of them has ended.
static SETTLED: Notify = Notify::const_new();

/// One abandoned request running on; counted until it has ended and sent its record.
struct Leftover;

impl Leftover {
    fn new() -> Self {
        LEFTOVERS.fetch_add(1, Ordering::AcqRel);
        Self
    }
}

impl Drop for Leftover {
    fn drop(&mut self) {
        if LEFTOVERS.fetch_sub(1, Ordering::AcqRel) == 1 {
            SETTLED.notify_waiters();
        }
    }
}

/// Resolves once no abandoned request is running any more (at once if none is). A per-core
/// worker waits for this before dropping its runtime: a task dropped unfinished would record its
/// request as abandoned instead of ending it at the shutdown cutoff.
pub(super) async fn settled() {
    loop {
        let notified = SETTLED.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        if LEFTOVERS.load(Ordering::Acquire) == 0 {
            return;
        }
        notified.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn a_finished_future_gives_its_output_in_place() {
        assert_eq!(FinishAnyway::new(async { 7 }).await, 7);
    }

    #[tokio::test]
    async fn a_future_dropped_midway_still_runs_to_its_end() {
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let ended = Arc::new(AtomicBool::new(false));
        let flag = ended.clone();
        let mut wrapped = Box::pin(FinishAnyway::new(async move {
            let _ = wait.await;
            flag.store(true, Ordering::Release);
            let _ = done_tx.send(());
        }));
        // Polled once (it waits), then abandoned as hyper abandons a request.
        assert!(futures_poll_once(wrapped.as_mut()).await.is_pending());
        drop(wrapped);
        assert!(!ended.load(Ordering::Acquire));
        go.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), done_rx)
            .await
            .unwrap()
            .unwrap();
        assert!(ended.load(Ordering::Acquire));
    }

    #[tokio::test]
    async fn settled_waits_for_the_abandoned_requests_to_end() {
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let mut wrapped = Box::pin(FinishAnyway::new(async move {
            let _ = wait.await;
        }));
        assert!(futures_poll_once(wrapped.as_mut()).await.is_pending());
        drop(wrapped);
        let mut settled = Box::pin(super::settled());
        assert!(futures_poll_once(settled.as_mut()).await.is_pending());
        go.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), settled)
            .await
            .unwrap();
    }

    async fn futures_poll_once<F: Future + Unpin>(mut future: F) -> Poll<F::Output> {
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut future).poll(cx))).await
    }
}
