//! Stage 9a, load shedding: at most `max_in_flight` requests are served at once; beyond that the
//! answer is 503 `overloaded` at once — no queue, so a burst cannot pile up latency or memory.
//! A slot is held until the response body ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::vocab::cause::Overload;
use crate::vocab::error::GatewayError;

/// The in-flight counter, shared across reloads.
#[derive(Debug, Default, Clone)]
pub struct InFlightLimit {
    current: Arc<AtomicUsize>,
}

/// One request's slot; released on drop.
#[derive(Debug)]
pub struct InFlight {
    current: Arc<AtomicUsize>,
}

impl InFlightLimit {
    /// Takes a slot if fewer than `max` are taken.
    pub fn try_acquire(&self, max: usize) -> Result<InFlight, GatewayError> {
        let previous = self.current.fetch_add(1, Ordering::AcqRel);
        if previous >= max {
            self.current.fetch_sub(1, Ordering::AcqRel);
            return Err(GatewayError::Overloaded {
                cause: Overload::MaxInFlight,
            });
        }
        crate::vocab::metrics::in_flight(previous + 1);
        Ok(InFlight {
            current: self.current.clone(),
        })
    }

    /// Requests in flight now.
    pub fn current(&self) -> usize {
        self.current.load(Ordering::Acquire)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let now = self.current.fetch_sub(1, Ordering::AcqRel) - 1;
        crate::vocab::metrics::in_flight(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_beyond_max_and_frees_on_drop() {
        let limit = InFlightLimit::default();
        let a = limit.try_acquire(2).unwrap();
        let _b = limit.try_acquire(2).unwrap();
        assert!(matches!(
            limit.try_acquire(2),
            Err(GatewayError::Overloaded { .. })
        ));
        assert_eq!(limit.current(), 2);
        drop(a);
        assert!(limit.try_acquire(2).is_ok());
    }
}
