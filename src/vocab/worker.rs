//! Serving threads. With `threading = "per-core"` each worker is a thread with a runtime of its
//! own; what is kept per thread (the upstream connection pools) is found by the thread's slot,
//! so a request never wakes a task on another thread to reach its upstream.

use std::cell::Cell;

/// How the workers share requests (`[server] threading`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threading {
    /// One single-thread runtime per worker, each accepting on its own `SO_REUSEPORT` listener
    /// and using its own upstream pool: a connection and everything it waits for stay on one
    /// thread.
    PerCore,
    /// One work-stealing runtime: an idle worker takes tasks from a busy one.
    Shared,
}

thread_local! {
    static SLOT: Cell<usize> = const { Cell::new(0) };
}

/// Marks the calling thread as serving worker `worker` (0-based): its slot is `worker + 1`.
pub fn enter(worker: usize) {
    SLOT.with(|slot| slot.set(worker.saturating_add(1)));
}

/// The calling thread's slot among `slots`: `worker + 1` on a per-core worker, 0 on any other
/// thread (the shared runtime, the control runtime, tests). Always below `slots` (at least 1).
pub fn slot(slots: usize) -> usize {
    SLOT.with(Cell::get) % slots.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_that_did_not_enter_use_slot_zero() {
        assert_eq!(slot(3), 0);
        std::thread::spawn(|| {
            enter(1);
            assert_eq!(slot(3), 2);
            // Fewer slots than workers (a pool built for another worker count) stays in range.
            assert_eq!(slot(2), 0);
            assert_eq!(slot(0), 0);
        })
        .join()
        .unwrap();
        assert_eq!(slot(3), 0);
    }
}
