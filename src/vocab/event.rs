//! Security events (CONTRACT §8.2): what happened, as a typed kind, and the handle every layer
//! uses to report one. Reporting never blocks and never fails: the handle logs the event at WARN
//! and hands it to whatever delivers events (the webhook sender, when `[events]` is set), which
//! runs off the request path.
//!
//! A client can set two kinds off once per request (`ip_violation`, `signature_replayed`): a
//! stolen credential used in a loop would otherwise flood the log and push every other event
//! out of the webhook's bounded queue. Of those, one per principal and route is reported per
//! [`REPEAT_WINDOW`]; the repeats are counted (`ordergate_events_total{result="suppressed"}`)
//! and the next one reported carries their number (`suppressed`). Every request stays in the
//! audit log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwapOption;
use parking_lot::Mutex;

use crate::vocab::cause::causes;

causes! {
    /// The kinds of security event.
    EventKind {
        Freeze => "freeze",
        Unfreeze => "unfreeze",
        IpViolation => "ip_violation",
        SignatureReplayed => "signature_replayed",
        AuditUnavailable => "audit_unavailable",
        AuditRecovered => "audit_recovered",
        Reload => "reload",
        VolumeExceeded => "volume_exceeded",
        CanaryRollback => "canary_rollback",
    }
}

impl EventKind {
    /// True for the kinds a client can set off on every request it sends.
    pub fn repeats_per_request(self) -> bool {
        matches!(self, EventKind::IpViolation | EventKind::SignatureReplayed)
    }
}

/// After a per-request event is reported, its repeats (same kind, principal and route) are held
/// back this long.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(60);

/// The (kind, principal, route) triples the repeat filter remembers. When that many are inside
/// their window, further new ones are reported unfiltered: never an event lost to a full filter.
const REPEAT_KEYS: usize = 4096;

/// One event, before redaction (the deliverer redacts like audit records).
#[derive(Debug, Clone)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// When.
    pub ts: SystemTime,
    /// `<kind>:<id>` of the principal concerned, if any.
    pub principal: Option<String>,
    /// The client address concerned, if any.
    pub client_ip: Option<IpAddr>,
    /// The route concerned, if any.
    pub route: Option<Arc<str>>,
    /// A closed-list detail (an audit `detail`, or a reload result), if any.
    pub detail: Option<&'static str>,
    /// How many repeats of this event were held back since the last one reported (see
    /// [`REPEAT_WINDOW`]); 0 for every other kind.
    pub suppressed: u64,
}

impl Event {
    /// An event of `kind` now, with nothing else known yet.
    pub fn new(kind: EventKind) -> Self {
        Self {
            kind,
            ts: SystemTime::now(),
            principal: None,
            client_ip: None,
            route: None,
            detail: None,
            suppressed: 0,
        }
    }
}

type RepeatKey = (EventKind, Option<String>, Option<Arc<str>>);

/// When a key's event was last reported, and the repeats held back since.
#[derive(Debug, Clone, Copy)]
struct Held {
    since: Instant,
    suppressed: u64,
}

/// The repeat filter: bounded, shared by every clone of an [`Events`].
#[derive(Debug, Default)]
struct Repeats(Mutex<HashMap<RepeatKey, Held>>);

impl Repeats {
    /// True when `event` is to be reported at `now`; it then carries the repeats held back.
    fn admit(&self, event: &mut Event, now: Instant) -> bool {
        if !event.kind.repeats_per_request() {
            return true;
        }
        let lapsed = |held: &Held| now.saturating_duration_since(held.since) >= REPEAT_WINDOW;
        let key = (event.kind, event.principal.clone(), event.route.clone());
        let mut seen = self.0.lock();
        if let Some(held) = seen.get_mut(&key) {
            if !lapsed(held) {
                held.suppressed = held.suppressed.saturating_add(1);
                return false;
            }
            event.suppressed = held.suppressed;
            *held = Held {
                since: now,
                suppressed: 0,
            };
            return true;
        }
        if seen.len() >= REPEAT_KEYS {
            seen.retain(|_, held| !lapsed(held));
        }
        if seen.len() < REPEAT_KEYS {
            seen.insert(
                key,
                Held {
                    since: now,
                    suppressed: 0,
                },
            );
        }
        true
    }
}

/// Takes events off the reporter's hands; must not block.
pub trait Deliver: Send + Sync {
    /// Queues `event` for delivery.
    fn deliver(&self, event: Event);
}

/// The cheap, cloneable handle events are reported through.
#[derive(Clone, Default)]
pub struct Events {
    deliverer: Arc<ArcSwapOption<Box<dyn Deliver>>>,
    repeats: Arc<Repeats>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

impl Events {
    /// Reports `event`: a WARN log line, then the deliverer if one is set. A repeat held back
    /// (see [`REPEAT_WINDOW`]) is only counted.
    pub fn emit(&self, mut event: Event) {
        if !self.repeats.admit(&mut event, Instant::now()) {
            crate::vocab::metrics::event_counted(event.kind, "suppressed");
            return;
        }
        tracing::warn!(
            event = event.kind.as_str(),
            principal = event.principal.as_deref().map(crate::vocab::redact::redact).as_deref(),
            client_ip = ?event.client_ip,
            route = event.route.as_deref(),
            detail = event.detail,
            suppressed = event.suppressed,
            "security event"
        );
        if let Some(deliverer) = &*self.deliverer.load() {
            deliverer.deliver(event);
        }
    }

    /// Sets (or, with `None`, removes) what delivers events; every clone sees the change.
    pub fn set_deliverer(&self, deliverer: Option<Box<dyn Deliver>>) {
        self.deliverer.store(deliverer.map(Arc::new));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(principal: &str, route: &str) -> Event {
        Event {
            principal: Some(principal.to_owned()),
            route: Some(Arc::from(route)),
            ..Event::new(EventKind::SignatureReplayed)
        }
    }

    #[test]
    fn repeats_inside_the_window_are_held_back_and_counted_on_the_next() {
        let repeats = Repeats::default();
        let start = Instant::now();
        assert!(repeats.admit(&mut replay("api_key:a", "r"), start));
        for s in 1..=3 {
            let later = start + Duration::from_secs(s);
            assert!(!repeats.admit(&mut replay("api_key:a", "r"), later));
        }
        // Another principal, another route: their own first event.
        assert!(repeats.admit(&mut replay("api_key:b", "r"), start));
        assert!(repeats.admit(&mut replay("api_key:a", "other"), start));
        let mut next = replay("api_key:a", "r");
        assert!(repeats.admit(&mut next, start + REPEAT_WINDOW));
        assert_eq!(next.suppressed, 3);
        let mut again = replay("api_key:a", "r");
        assert!(!repeats.admit(&mut again, start + REPEAT_WINDOW));
        assert!(repeats.admit(&mut again, start + REPEAT_WINDOW * 2));
        assert_eq!(again.suppressed, 1);
    }

    #[test]
    fn other_kinds_are_never_held_back() {
        let repeats = Repeats::default();
        let now = Instant::now();
        for _ in 0..3 {
            let mut freeze = Event {
                principal: Some("api_key:a".into()),
                ..Event::new(EventKind::Freeze)
            };
            assert!(repeats.admit(&mut freeze, now));
            assert_eq!(freeze.suppressed, 0);
        }
        assert!(repeats.0.lock().is_empty(), "nothing remembered for them");
    }

    #[test]
    fn a_full_filter_forgets_lapsed_keys_and_never_loses_a_new_event() {
        let repeats = Repeats::default();
        let start = Instant::now();
        for n in 0..REPEAT_KEYS {
            assert!(repeats.admit(&mut replay(&format!("jwt:{n}"), "r"), start));
        }
        // Full, every key inside its window: a new key is reported, not remembered.
        let inside = start + Duration::from_secs(1);
        for _ in 0..2 {
            assert!(repeats.admit(&mut replay("jwt:new", "r"), inside));
        }
        assert_eq!(repeats.0.lock().len(), REPEAT_KEYS);
        // Once the old keys lapse, they make room.
        assert!(repeats.admit(&mut replay("jwt:new", "r"), start + REPEAT_WINDOW));
        assert_eq!(repeats.0.lock().len(), 1);
        assert!(!repeats.admit(&mut replay("jwt:new", "r"), start + REPEAT_WINDOW));
    }
}
