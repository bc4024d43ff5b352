//! The bounded queue between the reporters and the sender task. Pushing never waits: a full
//! queue drops its oldest event (counted as `result="dropped"`), so a dead receiver costs the
//! request path one short lock and nothing else, and the newest events — the ones an operator
//! most needs — survive.

use std::collections::VecDeque;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::vocab::event::Event;

/// A bounded, drop-oldest queue with a wake-up for its one consumer.
pub struct EventQueue {
    items: Mutex<VecDeque<Event>>,
    capacity: usize,
    ready: Notify,
}

impl EventQueue {
    /// A queue holding at most `capacity` events (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            items: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
            capacity,
            ready: Notify::new(),
        }
    }

    /// Adds `event`; returns the event dropped to make room, if any.
    pub fn push(&self, event: Event) -> Option<Event> {
        let dropped = {
            let mut items = self.items.lock();
            let dropped = if items.len() >= self.capacity {
                items.pop_front()
            } else {
                None
            };
            items.push_back(event);
            dropped
        };
        self.ready.notify_one();
        dropped
    }

    /// The oldest event, if any.
    pub fn pop(&self) -> Option<Event> {
        self.items.lock().pop_front()
    }

    /// Waits until something was pushed since the last wake-up.
    pub async fn wait(&self) {
        self.ready.notified().await;
    }

    /// Wakes the consumer (to notice it should stop).
    pub fn wake(&self) {
        self.ready.notify_one();
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.items.lock().len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::event::EventKind;

    #[test]
    fn a_full_queue_drops_the_oldest() {
        let queue = EventQueue::new(2);
        assert!(queue.push(Event::new(EventKind::Freeze)).is_none());
        assert!(queue.push(Event::new(EventKind::Unfreeze)).is_none());
        let dropped = queue.push(Event::new(EventKind::Reload)).unwrap();
        assert_eq!(dropped.kind, EventKind::Freeze);
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.pop().unwrap().kind, EventKind::Unfreeze);
        assert_eq!(queue.pop().unwrap().kind, EventKind::Reload);
        assert!(queue.pop().is_none());
        assert!(queue.is_empty());
    }
}
