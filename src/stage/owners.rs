//! Stage 11, ownership checked on the answer (CONTRACT §7.3) and the number of records it
//! returns (§8.3). `owner` (stage 6) can only protect routes that carry the customer in the
//! request; a route addressed by an object id (`/v1/orders/{order_id}`) learns the owner from
//! the answer, so `[[routes.response.owners]]` checks it there, before any byte of the body is
//! sent. Refuses with 403 `forbidden`, detail `owner_mismatch_response`, when an entry that
//! applies to the caller does not hold (see `views::watch` for what holds: every element of a
//! `list[]` path, every duplicate key, a missing field never); with 502 `bad_gateway`, detail
//! `owner_non_json`, when the answer cannot be read as JSON. Every status with a body is checked
//! (an upstream 404 for somebody else's order is refused like the order itself, so the answer
//! does not tell which ids exist). The refused body is dropped whole; it counts as a denial.
//!
//! The values an entry admits are the caller's `claim` (a JWT claim or a key's or client's
//! attribute); an array claim is a set (a sales rep's customers) and matches when any element
//! does; a caller without it matches nothing. An entry does not apply to a caller holding one of
//! its `bypass_scopes`.
//!
//! Adds to the context: `records`, the length of the `count` array of a 2xx JSON answer (null
//! when the route has no `count` or the answer has no such array).

use std::borrow::Cow;
use std::sync::Arc;

use crate::stage::authn::Principal;
use crate::stage::views::watch::{Probe, Watch};
use crate::vocab::cause::{Denied, UpstreamFailure};
use crate::vocab::error::GatewayError;
use crate::vocab::scopes::ScopeSet;

/// One `[[routes.response.owners]]` entry, compiled (its field path lives in the route's
/// [`Watch`], as the bit of its index).
#[derive(Debug, Clone)]
pub struct OwnerRule {
    /// The claim or attribute whose values the field must hold.
    pub claim: Arc<str>,
    /// Scopes for which the entry does not apply.
    pub bypass: ScopeSet,
    /// The field path as written, for `ordergate explain` and `diff`.
    pub field: Arc<str>,
    /// `bypass_scopes` as written, for `ordergate explain` and `diff`.
    pub bypass_names: Vec<Arc<str>>,
}

/// A route's `[routes.response]` `owners` and `count`: the stage's own settings.
#[derive(Debug, Clone, Default)]
pub struct AnswerRules {
    /// The owner entries, in order; every one that applies must hold.
    pub owners: Vec<OwnerRule>,
    /// The route has a `count` path.
    pub counts: bool,
    /// The owner fields and the count path, as one trie for the pass over the answer.
    pub watch: Watch,
}

/// What one request checks its answer for.
#[derive(Debug)]
pub struct AnswerCheck<'a> {
    rules: &'a AnswerRules,
    /// Per owner entry: the caller's values, or `None` when a bypass scope lifts it.
    sought: Vec<Option<Vec<Cow<'a, str>>>>,
}

impl<'a> AnswerCheck<'a> {
    /// The check of `rules` for `principal`.
    pub fn new(rules: &'a AnswerRules, principal: &'a Principal) -> Self {
        let sought = rules
            .owners
            .iter()
            .map(|rule| {
                (!principal.scopes.contains_any(&rule.bypass))
                    .then(|| principal.claim_values(&rule.claim))
            })
            .collect();
        Self { rules, sought }
    }

    /// True when an owner entry applies to this caller: the answer must then be read.
    pub fn checks_owners(&self) -> bool {
        self.sought.iter().any(Option::is_some)
    }

    /// True when the route counts records.
    pub fn counts(&self) -> bool {
        self.rules.counts
    }

    /// True when there is nothing to look at in the answer.
    pub fn is_idle(&self) -> bool {
        !self.checks_owners() && !self.counts()
    }

    /// The watched paths.
    pub fn watch(&self) -> &Watch {
        &self.rules.watch
    }

    /// A probe for one pass over the answer; `success`: the answer is 2xx (only those count).
    pub fn probe(&self, success: bool) -> Probe<'_> {
        Probe::new(&self.sought, self.counts() && success)
    }

    /// The refusal for an answer that was looked at with `probe`, if any.
    pub fn verdict(&self, probe: &Probe<'_>) -> Result<(), GatewayError> {
        if self.checks_owners() && !probe.owners_hold() {
            return Err(GatewayError::Forbidden {
                cause: Denied::OwnerMismatchResponse,
            });
        }
        Ok(())
    }

    /// The refusal for an answer that cannot be read as JSON: the owner check's own when it
    /// applies, else `otherwise` (the view's).
    pub fn unreadable(&self, otherwise: UpstreamFailure) -> GatewayError {
        GatewayError::BadGateway {
            cause: if self.checks_owners() {
                UpstreamFailure::OwnerNonJson
            } else {
                otherwise
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::authn::principal::Claims;
    use crate::stage::views::FieldPath;
    use crate::vocab::principal_kind::PrincipalKind;
    use crate::vocab::scopes::ScopeRegistry;

    fn principal(scopes: ScopeSet, claims: serde_json::Value) -> Principal {
        let serde_json::Value::Object(map) = claims else {
            panic!("claims must be an object")
        };
        Principal {
            id: Arc::from("alice"),
            kind: PrincipalKind::Jwt,
            tenant: None,
            scopes,
            scope_header: http::HeaderValue::from_static(""),
            claims: Claims::Token(map),
            expires_at: None,
            allow_ips: Vec::new(),
        }
    }

    fn rules(registry: &mut ScopeRegistry) -> AnswerRules {
        let field = FieldPath::parse("customer.id").unwrap();
        AnswerRules {
            owners: vec![OwnerRule {
                claim: Arc::from("customer_id"),
                bypass: registry.set_of(["orders:read:any_customer"]),
                field: Arc::from("customer.id"),
                bypass_names: vec![Arc::from("orders:read:any_customer")],
            }],
            counts: false,
            watch: Watch::new(&[field], None),
        }
    }

    fn judge(check: &AnswerCheck<'_>, doc: &str) -> Result<(), GatewayError> {
        let mut probe = check.probe(true);
        crate::stage::views::watch::inspect(doc.as_bytes(), check.watch(), &mut probe).unwrap();
        check.verdict(&probe)
    }

    #[test]
    fn own_other_missing_and_bypassed() {
        let mut registry = ScopeRegistry::default();
        let rules = rules(&mut registry);
        let alice = principal(
            ScopeSet::default(),
            serde_json::json!({"customer_id": "C1"}),
        );
        let check = AnswerCheck::new(&rules, &alice);
        assert!(check.checks_owners());
        assert!(judge(&check, r#"{"customer":{"id":"C1"}}"#).is_ok());
        let refused = judge(&check, r#"{"customer":{"id":"C2"}}"#).unwrap_err();
        assert_eq!(refused.cause(), Some("owner_mismatch_response"));
        assert_eq!(refused.status(), http::StatusCode::FORBIDDEN);
        assert!(judge(&check, r#"{"customer":{}}"#).is_err());
        assert_eq!(
            check.unreadable(UpstreamFailure::ViewNonJson).cause(),
            Some("owner_non_json")
        );

        let support = principal(
            registry.known(["orders:read:any_customer"]),
            serde_json::json!({}),
        );
        let check = AnswerCheck::new(&rules, &support);
        assert!(!check.checks_owners() && check.is_idle());
        assert!(judge(&check, r#"{"customer":{"id":"C2"}}"#).is_ok());
        assert_eq!(
            check.unreadable(UpstreamFailure::ViewNonJson).cause(),
            Some("view_non_json")
        );
    }

    #[test]
    fn array_claims_are_sets_and_a_missing_claim_never_matches() {
        let mut registry = ScopeRegistry::default();
        let rules = rules(&mut registry);
        let rep = principal(
            ScopeSet::default(),
            serde_json::json!({"customer_id": ["C1", "C2", 7, {"x": 1}]}),
        );
        let check = AnswerCheck::new(&rules, &rep);
        assert!(judge(&check, r#"{"customer":{"id":"C2"}}"#).is_ok());
        assert!(judge(&check, r#"{"customer":{"id":7}}"#).is_ok());
        assert!(judge(&check, r#"{"customer":{"id":"C3"}}"#).is_err());
        let nobody = principal(ScopeSet::default(), serde_json::json!({"sub": "x"}));
        let check = AnswerCheck::new(&rules, &nobody);
        assert!(judge(&check, r#"{"customer":{"id":"C1"}}"#).is_err());
        let empty = principal(ScopeSet::default(), serde_json::json!({"customer_id": []}));
        let check = AnswerCheck::new(&rules, &empty);
        assert!(judge(&check, r#"{"customer":{"id":""}}"#).is_err());
    }
}
