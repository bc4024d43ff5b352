//! Stages 4 and 5 (their IP halves), IP allowlists (CONTRACT §7.2). The address checked is the
//! §6 client address (`RequestContext::client_ip`: the peer, or with a trusted proxy the
//! right-most untrusted `X-Forwarded-For` element), so a spoofed header from an untrusted peer
//! changes nothing. Refuses with 403 `forbidden`, detail `ip_not_allowed`:
//! - before authentication, a client outside `[server] allow_ips`;
//! - once the principal and route are known, a client outside any list that applies: the
//!   credential's own (`[[auth.api_keys.keys]]`, `[[auth.mtls.clients]]`), each of its roles'
//!   (`[roles.NAME]`, for tokens the roles the token names) and the route's. Every one must admit
//!   the address.
//!
//! The refusal counts as a denial (pipeline). A credential used from outside its lists is a
//! security event (`ip_violation`) and, with `[abuse] freeze_on_ip_violation`, frozen at once.
//! Adds nothing to the context.

use std::net::IpAddr;
use std::sync::Arc;

use crate::stage::abuse::{AbuseGuard, AbuseSettings, FreezeFacts, principal_key};
use crate::stage::authn::Principal;
use crate::vocab::cause::Denied;
use crate::vocab::error::GatewayError;
use crate::vocab::event::{Event, EventKind, Events};
use crate::vocab::ip_list::IpAllowList;
use crate::vocab::shared_store::SharedStore;

const REFUSED: GatewayError = GatewayError::Forbidden {
    cause: Denied::IpNotAllowed,
};

/// Before authentication: the `[server]` list, when there is one.
pub fn refuse_outside_server(list: Option<&IpAllowList>, ip: IpAddr) -> Result<(), GatewayError> {
    match list {
        Some(list) if !list.admits(ip) => Err(REFUSED),
        _ => Ok(()),
    }
}

/// After authentication: the credential's and its roles' lists, then the route's.
pub fn refuse_outside_caller(
    principal: &Principal,
    route: Option<&IpAllowList>,
    ip: IpAddr,
) -> Result<(), GatewayError> {
    let admitted = principal.allow_ips.iter().all(|list| list.admits(ip))
        && route.is_none_or(|list| list.admits(ip));
    if admitted { Ok(()) } else { Err(REFUSED) }
}

/// Stage 5's IP lists for the pipeline: [`refuse_outside_caller`], a refusal first reported
/// through `violation` (event, and a freeze when the policy says so).
pub async fn caller_stage(
    principal: &Principal,
    route: (&Arc<str>, Option<&IpAllowList>),
    ip: IpAddr,
    violation: Violation<'_>,
) -> Result<(), GatewayError> {
    let (route_id, list) = route;
    let refused = refuse_outside_caller(principal, list, ip);
    if refused.is_err() {
        violation.report(principal, route_id, ip).await;
    }
    refused
}

/// What a caller-list violation sets off: an `ip_violation` event and, when the policy says so,
/// an immediate freeze of the principal (with its own `freeze` event when it was not frozen).
pub struct Violation<'a> {
    /// The abuse guard that keeps freezes.
    pub guard: &'a AbuseGuard,
    /// `[abuse]`.
    pub settings: &'a AbuseSettings,
    /// The shared backend, when freezes are shared.
    pub store: Option<&'a SharedStore>,
    /// Where security events go.
    pub events: &'a Events,
    /// Whether this violation may freeze the principal: not for a credential that signs, whose
    /// leaked key alone (without its signing key) must not be able to freeze the partner.
    pub may_freeze: bool,
}

impl Violation<'_> {
    /// Reports `principal` calling `route` from `ip`, outside a list that applies to it.
    pub async fn report(&self, principal: &Principal, route: &Arc<str>, ip: IpAddr) {
        let key = principal_key(principal.kind, &principal.id);
        let event = |kind| Event {
            principal: Some(key.strip_prefix("principal:").unwrap_or(&key).to_owned()),
            client_ip: Some(ip),
            route: Some(route.clone()),
            detail: Some(Denied::IpNotAllowed.as_str()),
            ..Event::new(kind)
        };
        self.events.emit(event(EventKind::IpViolation));
        if self.settings.freeze_on_ip_violation && self.may_freeze {
            // The guard reports the `freeze` event itself, once, when the freeze is new.
            let facts = FreezeFacts {
                detail: Some(Denied::IpNotAllowed.as_str()),
                client_ip: Some(ip),
                route: Some(route.clone()),
            };
            self.guard
                .freeze_at_once(self.settings, &key, self.store, &facts)
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::authn::principal::Claims;
    use crate::vocab::ip_list::parse_entry;
    use crate::vocab::principal_kind::PrincipalKind;
    use crate::vocab::scopes::ScopeSet;

    fn list(entries: &[&str]) -> Arc<IpAllowList> {
        Arc::new(
            IpAllowList::new(entries.iter().map(|e| parse_entry(e).unwrap()).collect()).unwrap(),
        )
    }

    fn principal(lists: Vec<Arc<IpAllowList>>) -> Principal {
        Principal {
            id: Arc::from("sf-logistics"),
            kind: PrincipalKind::ApiKey,
            tenant: None,
            scopes: ScopeSet::default(),
            scope_header: http::HeaderValue::from_static(""),
            claims: Claims::Attributes(Default::default()),
            expires_at: None,
            allow_ips: lists,
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn every_list_that_applies_must_admit_the_address() {
        let key = list(&["127.0.0.0/29"]);
        let role = list(&["127.0.0.2", "127.0.0.3"]);
        let route = list(&["127.0.0.3/32", "::ffff:127.0.0.2/128"]);
        let p = principal(vec![key, role]);
        assert!(refuse_outside_caller(&p, Some(&route), ip("127.0.0.2")).is_ok());
        assert!(refuse_outside_caller(&p, Some(&route), ip("::ffff:127.0.0.3")).is_ok());
        // Admitted by the key's list, not by the role's.
        let refused = refuse_outside_caller(&p, None, ip("127.0.0.4")).unwrap_err();
        assert_eq!(refused.cause(), Some("ip_not_allowed"));
        assert_eq!(refused.status(), http::StatusCode::FORBIDDEN);
        // Admitted by the credential's lists, not by the route's.
        let narrow = list(&["127.0.0.3"]);
        assert!(refuse_outside_caller(&p, Some(&narrow), ip("127.0.0.2")).is_err());
        // No list: any address.
        assert!(refuse_outside_caller(&principal(Vec::new()), None, ip("203.0.113.9")).is_ok());
    }

    #[test]
    fn the_server_list_applies_to_everyone() {
        let server = list(&["10.0.0.0/8"]);
        assert!(refuse_outside_server(Some(&server), ip("10.9.9.9")).is_ok());
        assert!(refuse_outside_server(Some(&server), ip("::ffff:10.9.9.9")).is_ok());
        assert!(refuse_outside_server(Some(&server), ip("11.0.0.1")).is_err());
        assert!(refuse_outside_server(None, ip("11.0.0.1")).is_ok());
    }

    #[tokio::test]
    async fn a_violation_freezes_only_when_the_policy_says_so() {
        let guard = AbuseGuard::default();
        let events = Events::default();
        let p = principal(vec![list(&["127.0.0.2"])]);
        let route: Arc<str> = Arc::from("orders.get");
        let lenient = AbuseSettings::default();
        let strict = AbuseSettings {
            freeze_on_ip_violation: true,
            ..AbuseSettings::default()
        };
        let violation = |settings, may_freeze| Violation {
            guard: &guard,
            settings,
            store: None,
            events: &events,
            may_freeze,
        };
        violation(&lenient, true)
            .report(&p, &route, ip("127.0.0.3"))
            .await;
        assert!(!guard.is_principal_frozen(p.kind, &p.id));
        // A credential that signs is not frozen by its key alone used from outside its list.
        violation(&strict, false)
            .report(&p, &route, ip("127.0.0.3"))
            .await;
        assert!(!guard.is_principal_frozen(p.kind, &p.id));
        violation(&strict, true)
            .report(&p, &route, ip("127.0.0.3"))
            .await;
        assert!(guard.is_principal_frozen(p.kind, &p.id));
        assert!(guard.refuse_frozen_principal(p.kind, &p.id).is_err());
    }
}
