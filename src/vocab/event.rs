//! Security events (CONTRACT §8.2): what happened, as a typed kind, and the handle every layer
//! uses to report one. Reporting never blocks and never fails: the handle logs the event at WARN
//! and hands it to whatever delivers events (the webhook sender, when `[events]` is set), which
//! runs off the request path.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwapOption;

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
        }
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
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

impl Events {
    /// Reports `event`: a WARN log line, then the deliverer if one is set.
    pub fn emit(&self, event: Event) {
        tracing::warn!(
            event = event.kind.as_str(),
            principal = event.principal.as_deref().map(crate::vocab::redact::redact).as_deref(),
            client_ip = ?event.client_ip,
            route = event.route.as_deref(),
            detail = event.detail,
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
