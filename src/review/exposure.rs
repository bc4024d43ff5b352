//! Exposure facts: what a policy lets each caller reach and see, one fact per (subject, route,
//! item). `explain` prints the facts of one caller; `diff` compares the facts of two policies.
//! Every decision in a fact comes from the gateway's own code: reach from
//! [`authz::authorize`] (asked once with the caller's own customer and once with another's),
//! fields from [`probe`] (the view filter run on a probe document).
//!
//! How to add a rule kind (IP lists, signatures, response owners, canary, … are in
//! `review/rules.rs`):
//! 1. a variant of [`Fact`] with a small struct holding the rule as compiled (serialisable);
//! 2. where it applies, one `facts.insert(...)` in [`facts`] (a caller's fact, a route's fact,
//!    or a policy-wide one), with a `text()` line for people;
//! 3. its comparison, called from `review/compare.rs` (which direction widens, and the words);
//! 4. its line in `review/explain.rs` (text and JSON).
//!
//! Nothing else changes: `explain` and `diff` print and compare every fact they are given.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;

use crate::policy::{Policy, Route};
use crate::review::rules::{
    self, IpListFact, OwnersFact, SideFact, SignatureFact, StaleFact, UpstreamFact, VolumeFact,
};
use crate::review::who::{Caller, PLACEHOLDER, Validity};
use crate::stage::authn::Principal;
use crate::stage::authz::{self, OwnerBinding, OwnerParam};
use crate::stage::rate_limit::BucketRef;
use crate::stage::validate::{self, Validated};
use crate::stage::views::probe::{Seen, probe};
use crate::stage::views::{CompiledView, FieldPath};
use crate::vocab::cause::{Denied, ParamFailure};
use crate::vocab::error::GatewayError;
use crate::vocab::query::RawQuery;

/// Where a fact belongs: its subject (`policy`, `route`, `key:ID`, `mtls:ID`, `role:NAME`,
/// `view:SCOPE`, `jwt:…`), the route it concerns, and what it is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct FactKey {
    /// Who the fact is about.
    pub subject: String,
    /// The route id, for route facts.
    pub route: Option<String>,
    /// `credential`, `rate_limit`, `route`, `reach`, `field PATH`.
    pub item: String,
}

/// Every fact of one policy, in a stable order.
pub type Facts = BTreeMap<FactKey, Fact>;

/// One exposure fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fact {
    /// A configured credential and its validity window.
    Credential(CredentialFact),
    /// A token bucket (per route, or per principal across routes); `None`: no limit.
    RateLimit(LimitFact),
    /// A route, and what any caller needs for it.
    Route(RouteFact),
    /// Whether a caller reaches a route, and by which rule.
    Reach(ReachFact),
    /// What a caller (or a view's holder) sees of a field on a route.
    Field(FieldFact),
    /// The IP lists that apply (server, credential and roles, route).
    IpList(IpListFact),
    /// Whether requests must be signed (route, credential).
    Signature(SignatureFact),
    /// A route's response owners.
    Owners(OwnersFact),
    /// A route's upstream and canary.
    Upstream(UpstreamFact),
    /// The side of a canary route a caller is on.
    Side(SideFact),
    /// A route's stale-if-error store.
    Stale(StaleFact),
    /// The volume guard.
    Volume(VolumeFact),
}

impl Fact {
    /// One line for people.
    pub fn text(&self) -> String {
        match self {
            Fact::Credential(c) => c.text(),
            Fact::RateLimit(l) => l.text(),
            Fact::Route(r) => r.text(),
            Fact::Reach(r) => r.text(),
            Fact::Field(f) => f.text(),
            Fact::IpList(f) => f.text(),
            Fact::Signature(f) => f.text(),
            Fact::Owners(f) => f.text(),
            Fact::Upstream(f) => f.text(),
            Fact::Side(f) => f.text(),
            Fact::Stale(f) => f.text(),
            Fact::Volume(f) => f.text(),
        }
    }
}

/// `not_before` / `not_after`, as RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialFact {
    /// `api_key` or `mtls`.
    pub credential: &'static str,
    /// Valid from (seconds since the epoch).
    #[serde(serialize_with = "instant")]
    pub not_before: Option<i64>,
    /// Valid until (seconds since the epoch).
    #[serde(serialize_with = "instant")]
    pub not_after: Option<i64>,
    /// The tenant it speaks for (`X-Auth-Tenant` upstream).
    pub tenant: Option<String>,
}

fn instant_text(t: Option<i64>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map_or_else(
            || "-".to_owned(),
            |d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        )
}

fn instant<S: serde::Serializer>(t: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(_) => s.serialize_str(&instant_text(*t)),
        None => s.serialize_none(),
    }
}

impl CredentialFact {
    fn text(&self) -> String {
        format!(
            "{} valid from {} until {}, tenant {}",
            self.credential,
            instant_text(self.not_before),
            instant_text(self.not_after),
            self.tenant.as_deref().unwrap_or("-")
        )
    }
}

/// A bucket's rate and burst.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Limit {
    /// `120/min`.
    pub rate: String,
    /// Capacity.
    pub burst: u32,
    /// Events per period, for comparisons.
    #[serde(skip)]
    pub count: u32,
    /// The period in milliseconds, for comparisons.
    #[serde(skip)]
    pub period_ms: u128,
}

/// A bucket, or none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitFact {
    /// `None`: unlimited.
    pub limit: Option<Limit>,
}

impl LimitFact {
    fn of(bucket: Option<&BucketRef>) -> Self {
        let limit = bucket.map(|b| {
            let period = b.spec.rate.period;
            let unit = match period.as_millis() {
                1_000 => "s".to_owned(),
                60_000 => "min".to_owned(),
                3_600_000 => "h".to_owned(),
                86_400_000 => "d".to_owned(),
                ms => format!("{ms}ms"),
            };
            Limit {
                rate: format!("{}/{unit}", b.spec.rate.count),
                burst: b.spec.burst.get(),
                count: b.spec.rate.count.get(),
                period_ms: period.as_millis(),
            }
        });
        Self { limit }
    }

    fn text(&self) -> String {
        match &self.limit {
            Some(l) => format!("{} (burst {})", l.rate, l.burst),
            None => "unlimited".to_owned(),
        }
    }
}

/// An owner binding as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnerFact {
    /// `path customer_id` or `query customer_id`.
    pub param: String,
    /// The claim it must equal.
    pub claim: String,
    /// Scopes that skip it, sorted.
    pub bypass_scopes: Vec<String>,
}

/// A route: where it is and what every caller needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteFact {
    /// `GET /v1/orders/{order_id}`.
    pub endpoint: String,
    /// `require_scopes`, sorted.
    pub require_scopes: Vec<String>,
    /// The owner binding, if any.
    pub owner: Option<OwnerFact>,
}

impl RouteFact {
    fn of(route: &Route) -> Self {
        let mut require_scopes = route.require_scope_names.clone();
        require_scopes.sort();
        Self {
            endpoint: format!("{} {}", route.method, route.path),
            require_scopes,
            owner: route.access.owner.as_ref().map(owner_fact),
        }
    }

    fn text(&self) -> String {
        let owner = match &self.owner {
            Some(o) => format!(
                "; owner: {} = claim {} unless {}",
                o.param,
                o.claim,
                if o.bypass_scopes.is_empty() {
                    "(no bypass scope)".to_owned()
                } else {
                    o.bypass_scopes.join(" or ")
                }
            ),
            None => "; no owner binding".to_owned(),
        };
        format!(
            "{} needs {}{owner}",
            self.endpoint,
            self.require_scopes.join(" + ")
        )
    }
}

fn param_text(param: &OwnerParam) -> String {
    match param {
        OwnerParam::Path(n) => format!("path {n}"),
        OwnerParam::Query(n) => format!("query {n}"),
    }
}

fn owner_fact(o: &OwnerBinding) -> OwnerFact {
    let mut bypass_scopes: Vec<String> = o.bypass_names.iter().map(|s| s.to_string()).collect();
    bypass_scopes.sort();
    OwnerFact {
        param: param_text(&o.param),
        claim: o.claim.to_string(),
        bypass_scopes,
    }
}

/// How far a caller gets on a route, from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Refused (403) by authorisation.
    Refused,
    /// Allowed for its own customer only (the owner binding holds it).
    OwnerBound,
    /// Allowed for every customer (no owner binding, or a bypass scope).
    Allowed,
}

/// A caller on a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReachFact {
    /// How far it gets.
    pub access: Access,
    /// The audit `detail` of a refusal (`scope_missing`, `owner_mismatch`, `no_view`).
    pub detail: Option<&'static str>,
    /// The rule that decides, in words.
    pub rule: String,
    /// For `owner_bound`: the customer it is bound to (its claim value).
    pub bound_to: Option<String>,
    /// The response view that applies (its scope), if the route has views.
    pub view: Option<String>,
}

impl ReachFact {
    fn text(&self) -> String {
        let access = match self.access {
            Access::Refused => format!("refused ({})", self.detail.unwrap_or("forbidden")),
            Access::OwnerBound => match &self.bound_to {
                Some(c) => format!("allowed for its own customer only ({c})"),
                None => "allowed for its own customer only".to_owned(),
            },
            Access::Allowed => "allowed for any customer".to_owned(),
        };
        let view = match &self.view {
            Some(v) => format!("; view {v}"),
            None => String::new(),
        };
        format!("{access}: {}{view}", self.rule)
    }
}

/// What goes out of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shown {
    /// Not in the answer (denied, or not allowed).
    Denied,
    /// Through a masker (see `masker`).
    Masked,
    /// Changed in a way no single masker explains.
    Altered,
    /// As it is.
    Visible,
}

/// A field on a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldFact {
    /// What goes out.
    pub shown: Shown,
    /// The masker, when masked.
    pub masker: Option<&'static str>,
    /// The rule that decides, in words.
    pub rule: String,
    /// The view that applies (its scope), if the route has views.
    pub view: Option<String>,
}

impl FieldFact {
    fn text(&self) -> String {
        let shown = match (self.shown, self.masker) {
            (Shown::Masked, Some(m)) => format!("masked ({m})"),
            (Shown::Denied, _) => "denied".to_owned(),
            (Shown::Masked | Shown::Altered, _) => "altered".to_owned(),
            (Shown::Visible, _) => "visible".to_owned(),
        };
        match &self.view {
            Some(v) => format!("{shown}: {} (view {v})", self.rule),
            None => format!("{shown}: {}", self.rule),
        }
    }

    /// What `view` (none: a route without views) does to `field`, and the rule behind it.
    pub fn of(view: Option<&CompiledView>, field: &FieldPath) -> Self {
        let Some(view) = view else {
            return Self {
                shown: Shown::Visible,
                masker: None,
                rule: "the route has no response views (the answer passes whole)".to_owned(),
                view: None,
            };
        };
        let rules = view.rules();
        let key = field.last_key();
        let by_key = |path: &FieldPath| key.is_some() && path.last_key() == key;
        let seen = probe(view, field);
        let rule = match seen {
            Seen::Shown => rules
                .allow
                .iter()
                .find(|a| a.covers(field))
                .map_or_else(|| "allow".to_owned(), |a| format!("allow `{a}`")),
            Seen::Masked(m) => rules
                .mask
                .iter()
                .filter(|(_, masker)| *masker == m)
                .find(|(p, _)| p.covers(field))
                .or_else(|| {
                    rules
                        .mask
                        .iter()
                        .find(|(p, masker)| *masker == m && by_key(p))
                })
                .map_or_else(
                    || "mask".to_owned(),
                    |(p, _)| format!("mask `{p}` = {}", m.name()),
                ),
            Seen::Altered => "mask".to_owned(),
            Seen::Removed => {
                if let Some(d) = rules.deny.iter().find(|d| d.covers(field)) {
                    format!("deny `{d}`")
                } else if let Some(d) = rules.deny.iter().find(|d| by_key(d)) {
                    format!("deny `{d}` (by key)")
                } else if !rules.allow.iter().any(|a| a.covers(field)) {
                    "not in allow".to_owned()
                } else if let Some((p, _)) = rules.mask.iter().find(|(p, _)| p.covers(field)) {
                    format!("mask `{p}`")
                } else {
                    "the view".to_owned()
                }
            }
        };
        let (shown, masker) = match seen {
            Seen::Shown => (Shown::Visible, None),
            Seen::Masked(m) => (Shown::Masked, Some(m.name())),
            Seen::Altered => (Shown::Altered, None),
            Seen::Removed => (Shown::Denied, None),
        };
        Self {
            shown,
            masker,
            rule,
            view: Some(view.scope_name.to_string()),
        }
    }
}

/// A caller's reach on a route: refused outright when no request of it can pass the IP lists
/// or the signature requirement ([`rules::always_refused`]); else asked of
/// [`authz::authorize`]: once with the caller's own customer in the owner parameter, once
/// with another customer.
pub fn reach(policy: &Policy, route: &Route, caller: &Caller) -> (ReachFact, Option<usize>) {
    let principal = &caller.principal;
    if let Some((detail, rule)) = rules::always_refused(policy, route, caller) {
        return (
            ReachFact {
                access: Access::Refused,
                detail: Some(detail),
                rule,
                bound_to: None,
                view: None,
            },
            None,
        );
    }
    let owner = route.access.owner.as_ref();
    // The caller's own customers: every value its claim holds (a claim may be a set) that the
    // gateway lets through; the first of them, else the claim's first value, is asked.
    let owns: Vec<String> = owner.map_or_else(Vec::new, |o| {
        principal
            .claim_values(&o.claim)
            .into_iter()
            .map(Cow::into_owned)
            .collect()
    });
    let passing: Vec<&String> = owns
        .iter()
        .filter(|v| {
            owner.is_some_and(|o| {
                authorize_for(route, principal, owner, v).is_ok()
                    && sent_upstream(route, principal, o, Some(v), caller).is_ok()
            })
        })
        .collect();
    let own = passing.first().copied().or(owns.first()).cloned();
    // A caller without the claim is asked with a value no claim equals: it is refused unless
    // it holds a bypass scope, as at the gateway.
    let own_value = own.clone().unwrap_or_else(|| "\u{0}".to_owned());
    let decided = authorize_for(route, principal, owner, &own_value);
    let view_of = |i: Option<usize>| i.map(|i| route.views[i].scope_name.to_string());
    let index = match decided {
        Ok(index) => index,
        Err(error) => {
            let rule = refusal_rule(policy, route, principal, &error);
            let detail = error.cause();
            return (
                ReachFact {
                    access: Access::Refused,
                    detail,
                    rule,
                    bound_to: None,
                    view: None,
                },
                None,
            );
        }
    };
    let needs = format!("holds {}", route.require_scope_names.join(" + "));
    let fact = match owner {
        None => ReachFact {
            access: Access::Allowed,
            detail: None,
            rule: format!("{needs}; no owner binding"),
            bound_to: None,
            view: view_of(index),
        },
        Some(o) => {
            let other = format!("{own_value}-another-customer");
            match authorize_for(route, principal, owner, &other) {
                Ok(_) => {
                    let via = o
                        .bypass_names
                        .iter()
                        .find(|s| {
                            principal
                                .scopes
                                .contains_all(&policy.scopes.known([s.as_ref()]))
                        })
                        .map_or_else(String::new, |s| s.to_string());
                    ReachFact {
                        access: Access::Allowed,
                        detail: None,
                        rule: format!("{needs}; bypass scope {via}"),
                        bound_to: None,
                        view: view_of(index),
                    }
                }
                Err(_) => match sent_upstream(route, principal, o, own.as_deref(), caller) {
                    Err((detail, rule)) => ReachFact {
                        access: Access::Refused,
                        detail: Some(detail),
                        rule: format!("{needs}; {rule}"),
                        bound_to: None,
                        view: None,
                    },
                    Ok(()) => ReachFact {
                        access: Access::OwnerBound,
                        detail: None,
                        rule: format!(
                            "{needs}; owner: {} must equal claim {}",
                            param_text(&o.param),
                            o.claim
                        ),
                        bound_to: bound_to(&passing, caller),
                        view: view_of(index),
                    },
                },
            }
        }
    };
    (fact, index)
}

/// The customers an owner-bound caller reaches, as shown (none for a role's made-up claim).
fn bound_to(passing: &[&String], caller: &Caller) -> Option<String> {
    let made_up = caller.placeholder_claims && passing.iter().all(|c| *c == PLACEHOLDER);
    (!passing.is_empty() && !made_up).then(|| {
        passing
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// What validation makes of the caller's own claim in the owner parameter, as the gateway
/// decides it ([`validate::confirm_owner`]): the claim must be a value the parameter accepts,
/// and its canonical form (what goes upstream) a value the claim holds. A claim of `"0042"` on
/// an integer parameter passes stage 6 but would send customer 42, so it is refused. Made-up
/// claims (role holders) stand for any valid value and are not judged.
fn sent_upstream(
    route: &Route,
    principal: &Principal,
    owner: &OwnerBinding,
    own: Option<&str>,
    caller: &Caller,
) -> Result<(), (&'static str, String)> {
    let Some(own) = own.filter(|_| !caller.placeholder_claims) else {
        return Ok(());
    };
    let (schemas, name) = match &owner.param {
        OwnerParam::Path(name) => (&route.params.path, name),
        OwnerParam::Query(name) => (&route.params.query, name),
    };
    let Some(schema) = schemas.iter().find(|s| s.name == *name) else {
        return Ok(());
    };
    let param = param_text(&owner.param);
    let value = schema.check(own).map_err(|reason| {
        (
            ParamFailure::InvalidValue.as_str(),
            format!(
                "owner: {param} must equal claim {}, whose value {own:?} {reason}",
                owner.claim
            ),
        )
    })?;
    let mut validated = Validated::default();
    let values = match &owner.param {
        OwnerParam::Path(_) => &mut validated.path,
        OwnerParam::Query(_) => &mut validated.query,
    };
    values.push((name.clone(), value));
    validate::confirm_owner(&route.access, principal, &validated).map_err(|_| {
        let mut sent = String::new();
        if let Some(v) = validated.get(name) {
            v.write_canonical(&mut sent);
        }
        (
            Denied::OwnerMismatch.as_str(),
            format!(
                "owner: {param} must equal claim {}; its value {own:?} goes upstream as {sent:?}, which the claim does not hold",
                owner.claim
            ),
        )
    })
}

/// [`authz::authorize`] with `value` in the owner parameter.
fn authorize_for(
    route: &Route,
    principal: &Principal,
    owner: Option<&OwnerBinding>,
    value: &str,
) -> Result<Option<usize>, GatewayError> {
    let mut path_params = Vec::new();
    let mut query = RawQuery::default();
    match owner.map(|o| &o.param) {
        Some(OwnerParam::Path(name)) => path_params.push((name.clone(), value.to_owned())),
        Some(OwnerParam::Query(name)) => query.pairs.push((name.to_string(), value.to_owned())),
        None => {}
    }
    authz::authorize(&route.access, principal, &path_params, &query)
}

/// The rule behind a refusal, in words.
fn refusal_rule(
    policy: &Policy,
    route: &Route,
    principal: &Principal,
    error: &GatewayError,
) -> String {
    let GatewayError::Forbidden { cause } = error else {
        return error.reason().to_owned();
    };
    match cause {
        Denied::ScopeMissing => {
            let missing: Vec<&str> = route
                .require_scope_names
                .iter()
                .map(String::as_str)
                .filter(|s| !principal.scopes.contains_all(&policy.scopes.known([*s])))
                .collect();
            format!("require_scopes: lacks {}", missing.join(" + "))
        }
        Denied::OwnerMismatch => match &route.access.owner {
            Some(o) => format!(
                "owner: {} must equal claim {}, which the caller does not have, and it holds no bypass scope",
                param_text(&o.param),
                o.claim
            ),
            None => "owner".to_owned(),
        },
        Denied::NoView => format!(
            "no response view is for its scopes (views: {})",
            route
                .views
                .iter()
                .map(|v| v.scope_name.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Denied::IpNotAllowed => {
            "allow_ips: the caller's address is outside a list that applies".to_owned()
        }
        Denied::OwnerMismatchResponse => {
            "response owners: the answer is not the caller's".to_owned()
        }
    }
}

/// What to gather.
pub struct Gather<'a> {
    /// The callers.
    pub callers: &'a [Caller],
    /// The field paths to decide on each route (by route id).
    pub fields: &'a dyn Fn(&Route) -> Vec<FieldPath>,
    /// Also every view's own field decisions (`view:SCOPE`), for holders of any scopes.
    pub views: bool,
    /// Only this route.
    pub route: Option<&'a str>,
}

fn key(subject: &str, route: Option<&str>, item: &str) -> FactKey {
    FactKey {
        subject: subject.to_owned(),
        route: route.map(str::to_owned),
        item: item.to_owned(),
    }
}

/// Every fact of `policy` about what `gather` asks.
pub fn facts(policy: &Policy, gather: &Gather<'_>) -> Facts {
    let mut facts = Facts::new();
    facts.insert(
        key("policy", None, "rate_limit per_principal"),
        Fact::RateLimit(LimitFact::of(policy.rate_limits.per_principal.as_ref())),
    );
    facts.insert(
        key("policy", None, "allow_ips server"),
        Fact::IpList(IpListFact::of(policy.server.allow_ips.as_deref())),
    );
    facts.insert(
        key("policy", None, "volume"),
        Fact::Volume(VolumeFact::of(policy.volume.as_ref())),
    );
    for caller in gather.callers {
        facts.insert(
            key(&caller.label, None, "allow_ips"),
            Fact::IpList(IpListFact::of(
                caller.principal.allow_ips.iter().map(|l| &**l),
            )),
        );
        facts.insert(
            key(&caller.label, None, "signature"),
            Fact::Signature(SignatureFact::of_caller(policy, caller)),
        );
        if let Some(Validity {
            not_before,
            not_after,
        }) = caller.credential
        {
            facts.insert(
                key(&caller.label, None, "credential"),
                Fact::Credential(CredentialFact {
                    credential: caller.principal.kind.as_str(),
                    not_before,
                    not_after,
                    tenant: caller.principal.tenant.as_ref().map(|t| t.to_string()),
                }),
            );
        }
    }
    let routes = policy
        .routes
        .iter()
        .filter(|r| gather.route.is_none_or(|id| *r.id == *id));
    for route in routes {
        let id = Some(&*route.id);
        facts.insert(key("route", id, "route"), Fact::Route(RouteFact::of(route)));
        facts.insert(
            key("route", id, "rate_limit"),
            Fact::RateLimit(LimitFact::of(route.rate_limit.as_ref())),
        );
        facts.insert(
            key("route", id, "allow_ips"),
            Fact::IpList(IpListFact::of(route.allow_ips.as_deref())),
        );
        facts.insert(
            key("route", id, "require_signature"),
            Fact::Signature(SignatureFact {
                required: route.require_signature,
                alg: None,
            }),
        );
        facts.insert(
            key("route", id, "response owners"),
            Fact::Owners(OwnersFact::of(route)),
        );
        facts.insert(
            key("route", id, "upstream"),
            Fact::Upstream(UpstreamFact::of(policy, route)),
        );
        facts.insert(
            key("route", id, "stale_if_error"),
            Fact::Stale(StaleFact::of(route.stale.as_ref())),
        );
        let fields = (gather.fields)(route);
        for caller in gather.callers {
            if let Some(side) = SideFact::of(policy, route, caller) {
                facts.insert(key(&caller.label, id, "canary side"), Fact::Side(side));
            }
            let (fact, view) = reach(policy, route, caller);
            let reached = fact.access != Access::Refused;
            facts.insert(key(&caller.label, id, "reach"), Fact::Reach(fact));
            if !reached {
                continue;
            }
            let view = view.map(|i| &route.views[i]);
            for field in &fields {
                facts.insert(
                    key(&caller.label, id, &format!("field {field}")),
                    Fact::Field(FieldFact::of(view, field)),
                );
            }
        }
        if gather.views {
            for view in &route.views {
                for field in &fields {
                    facts.insert(
                        key(
                            &format!("view:{}", view.scope_name),
                            id,
                            &format!("field {field}"),
                        ),
                        Fact::Field(FieldFact::of(Some(view), field)),
                    );
                }
            }
        }
    }
    facts
}

/// Every field path the views of `route` name, and `*` (a field no view names).
pub fn named_fields(route: &Route) -> Vec<FieldPath> {
    let mut out: Vec<FieldPath> = Vec::new();
    for view in &route.views {
        let rules = view.rules();
        let paths = rules
            .allow
            .iter()
            .chain(&rules.deny)
            .chain(rules.mask.iter().map(|(p, _)| p));
        for p in paths {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
    }
    if let Ok(all) = FieldPath::parse("*")
        && !out.contains(&all)
    {
        out.push(all);
    }
    out
}
