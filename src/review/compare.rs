//! Whether a fact's change widens or narrows exposure, and the words for it. Each kind of fact
//! has its own small comparison below; a change that is neither plainly wider nor plainly
//! narrower (a masker swapped, scopes exchanged) counts as widening, so it asks for sign-off.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::review::exposure::{
    Access, CredentialFact, Fact, FieldFact, Limit, LimitFact, ReachFact, RouteFact, Shown,
};
use crate::review::rules::{self, SideFact};

/// Which way a change goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// More is reachable or visible than before.
    Widened,
    /// Less is.
    Narrowed,
}

/// A change, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Which way.
    pub direction: Direction,
    /// Why, briefly (`mask removed`, `not_after extended`).
    pub what: String,
}

fn widened(what: impl Into<String>) -> Option<Verdict> {
    Some(Verdict {
        direction: Direction::Widened,
        what: what.into(),
    })
}

fn narrowed(what: impl Into<String>) -> Option<Verdict> {
    Some(Verdict {
        direction: Direction::Narrowed,
        what: what.into(),
    })
}

/// The verdict on a fact that went from `old` to `new` (`None` on a side: absent there);
/// `None` when exposure is the same.
pub fn compare(old: Option<&Fact>, new: Option<&Fact>) -> Option<Verdict> {
    if old == new {
        return None;
    }
    // A key always holds the same kind of fact; a mismatch would be a bug, and widens.
    match old.or(new)? {
        Fact::Credential(_) => match (old, new) {
            (Some(Fact::Credential(a)), Some(Fact::Credential(b))) => credential(a, b),
            (None, Some(_)) => widened("new credential"),
            (Some(_), None) => narrowed("credential removed"),
            _ => widened("changed"),
        },
        Fact::RateLimit(_) => match (old, new) {
            (Some(Fact::RateLimit(a)), Some(Fact::RateLimit(b))) => rate_limit(a, b),
            // A limit comes and goes with its route, which reports it.
            _ => None,
        },
        Fact::Route(_) => match (old, new) {
            (Some(Fact::Route(a)), Some(Fact::Route(b))) => route(a, b),
            (None, Some(_)) => widened("route added"),
            (Some(_), None) => narrowed("route removed"),
            _ => widened("changed"),
        },
        Fact::Reach(_) => reach(as_reach(old), as_reach(new)),
        Fact::Field(_) => field(as_field(old), as_field(new)),
        Fact::Side(_) => rules::compare_sides(as_side(old), as_side(new)),
        // The facts below come and go with their route or caller, which reports it.
        Fact::IpList(_) => match (old, new) {
            (Some(Fact::IpList(a)), Some(Fact::IpList(b))) => rules::compare_ip_lists(a, b),
            _ => None,
        },
        Fact::Signature(_) => match (old, new) {
            (Some(Fact::Signature(a)), Some(Fact::Signature(b))) => rules::compare_signatures(a, b),
            _ => None,
        },
        Fact::Owners(_) => match (old, new) {
            (Some(Fact::Owners(a)), Some(Fact::Owners(b))) => rules::compare_owners(a, b),
            _ => None,
        },
        Fact::Upstream(_) => match (old, new) {
            (Some(Fact::Upstream(a)), Some(Fact::Upstream(b))) => rules::compare_upstreams(a, b),
            _ => None,
        },
        Fact::Stale(_) => match (old, new) {
            (Some(Fact::Stale(a)), Some(Fact::Stale(b))) => rules::compare_stale(a, b),
            _ => None,
        },
        Fact::Volume(_) => match (old, new) {
            (Some(Fact::Volume(a)), Some(Fact::Volume(b))) => rules::compare_volume(a, b),
            _ => None,
        },
    }
}

fn as_side(fact: Option<&Fact>) -> Option<&SideFact> {
    match fact {
        Some(Fact::Side(s)) => Some(s),
        _ => None,
    }
}

fn as_reach(fact: Option<&Fact>) -> Option<&ReachFact> {
    match fact {
        Some(Fact::Reach(r)) => Some(r),
        _ => None,
    }
}

fn as_field(fact: Option<&Fact>) -> Option<&FieldFact> {
    match fact {
        Some(Fact::Field(f)) => Some(f),
        _ => None,
    }
}

/// A later `not_after` or an earlier `not_before` (or either dropped) widens; so does another
/// tenant (the upstream may scope its answers by it).
fn credential(a: &CredentialFact, b: &CredentialFact) -> Option<Verdict> {
    // Absent bounds are the widest: `i64::MAX` / `i64::MIN`.
    let after = |c: &CredentialFact| c.not_after.unwrap_or(i64::MAX);
    let before = |c: &CredentialFact| c.not_before.unwrap_or(i64::MIN);
    let mut wider = Vec::new();
    let mut narrower = Vec::new();
    match after(b).cmp(&after(a)) {
        std::cmp::Ordering::Greater => wider.push("not_after extended"),
        std::cmp::Ordering::Less => narrower.push("not_after earlier"),
        std::cmp::Ordering::Equal => {}
    }
    match before(b).cmp(&before(a)) {
        std::cmp::Ordering::Less => wider.push("not_before earlier"),
        std::cmp::Ordering::Greater => narrower.push("not_before later"),
        std::cmp::Ordering::Equal => {}
    }
    if a.tenant != b.tenant {
        wider.push("tenant changed");
    }
    verdict(&wider, &narrower)
}

fn verdict(wider: &[&str], narrower: &[&str]) -> Option<Verdict> {
    if !wider.is_empty() {
        let mut words = wider.to_vec();
        words.extend(narrower);
        return widened(words.join(", "));
    }
    if !narrower.is_empty() {
        return narrowed(narrower.join(", "));
    }
    None
}

/// A faster rate or a bigger burst widens; no limit is the widest.
fn rate_limit(a: &LimitFact, b: &LimitFact) -> Option<Verdict> {
    match (&a.limit, &b.limit) {
        (None, None) => None,
        (Some(_), None) => widened("rate limit removed"),
        (None, Some(_)) => narrowed("rate limit added"),
        (Some(x), Some(y)) => {
            // Events per millisecond compared without division: x.count / x.period vs y's.
            let speed = |l: &Limit, other: &Limit| u128::from(l.count) * other.period_ms;
            let (old, new) = (speed(x, y), speed(y, x));
            let mut wider = Vec::new();
            let mut narrower = Vec::new();
            match new.cmp(&old) {
                std::cmp::Ordering::Greater => wider.push("rate loosened"),
                std::cmp::Ordering::Less => narrower.push("rate tightened"),
                std::cmp::Ordering::Equal => {}
            }
            match y.burst.cmp(&x.burst) {
                std::cmp::Ordering::Greater => wider.push("burst raised"),
                std::cmp::Ordering::Less => narrower.push("burst lowered"),
                std::cmp::Ordering::Equal => {}
            }
            verdict(&wider, &narrower)
        }
    }
}

/// Fewer required scopes, a dropped owner binding or more bypass scopes widen.
fn route(a: &RouteFact, b: &RouteFact) -> Option<Verdict> {
    let mut wider = Vec::new();
    let mut narrower = Vec::new();
    if a.endpoint != b.endpoint {
        wider.push(format!("endpoint now {}", b.endpoint));
    }
    let (old, new): (BTreeSet<_>, BTreeSet<_>) = (
        a.require_scopes.iter().collect(),
        b.require_scopes.iter().collect(),
    );
    for s in old.difference(&new) {
        wider.push(format!("no longer requires {s}"));
    }
    for s in new.difference(&old) {
        narrower.push(format!("now requires {s}"));
    }
    match (&a.owner, &b.owner) {
        (Some(_), None) => wider.push("owner binding removed".to_owned()),
        (None, Some(_)) => narrower.push("owner binding added".to_owned()),
        (Some(x), Some(y)) => {
            if x.param != y.param || x.claim != y.claim {
                wider.push(format!("owner binding now {} = claim {}", y.param, y.claim));
            }
            let (old, new): (BTreeSet<_>, BTreeSet<_>) = (
                x.bypass_scopes.iter().collect(),
                y.bypass_scopes.iter().collect(),
            );
            for s in new.difference(&old) {
                wider.push(format!("bypass scope {s} granted"));
            }
            for s in old.difference(&new) {
                narrower.push(format!("bypass scope {s} withdrawn"));
            }
        }
        (None, None) => {}
    }
    let wider: Vec<&str> = wider.iter().map(String::as_str).collect();
    let narrower: Vec<&str> = narrower.iter().map(String::as_str).collect();
    verdict(&wider, &narrower)
}

/// Refused < own customer only < any customer; the same access bound to another customer
/// widens (another customer's data becomes reachable).
fn reach(a: Option<&ReachFact>, b: Option<&ReachFact>) -> Option<Verdict> {
    let access = |r: Option<&ReachFact>| r.map_or(Access::Refused, |r| r.access);
    let (old, new) = (access(a), access(b));
    let words = |x: Access| match x {
        Access::Refused => "refused",
        Access::OwnerBound => "own customer only",
        Access::Allowed => "any customer",
    };
    match new.cmp(&old) {
        std::cmp::Ordering::Greater if old == Access::Refused => {
            widened(format!("newly reachable ({})", words(new)))
        }
        std::cmp::Ordering::Greater => widened(format!("{} → {}", words(old), words(new))),
        std::cmp::Ordering::Less if new == Access::Refused => narrowed("closed"),
        std::cmp::Ordering::Less => narrowed(format!("{} → {}", words(old), words(new))),
        std::cmp::Ordering::Equal => {
            let bound = |r: Option<&ReachFact>| r.and_then(|r| r.bound_to.clone());
            if old == Access::OwnerBound && bound(a) != bound(b) {
                widened("bound to another customer")
            } else {
                None
            }
        }
    }
}

/// Denied < masked by `hide` < masked otherwise < visible; a masker swapped for another
/// (neither `hide`) is a change reviewers must see, so it widens.
fn field(a: Option<&FieldFact>, b: Option<&FieldFact>) -> Option<Verdict> {
    let rank = |f: Option<&FieldFact>| match f {
        None => 0,
        Some(f) => match (f.shown, f.masker) {
            (Shown::Denied, _) => 0,
            (Shown::Masked, Some("hide")) => 1,
            (Shown::Masked | Shown::Altered, _) => 2,
            (Shown::Visible, _) => 3,
        },
    };
    let (old, new) = (rank(a), rank(b));
    let masker = |f: Option<&FieldFact>| f.and_then(|f| f.masker);
    match (old, new) {
        (o, n) if o == n && n == 2 && masker(a) != masker(b) => widened(format!(
            "masker changed ({} → {})",
            masker(a).unwrap_or("?"),
            masker(b).unwrap_or("?")
        )),
        (o, n) if o == n => None,
        (0, 3) => widened("newly visible"),
        (0, _) => widened("newly visible, masked"),
        (_, 3) => widened("unmasked"),
        (o, n) if n > o => widened("less masked"),
        (_, 0) => narrowed("no longer visible"),
        _ => narrowed("masked now"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(count: u32, period_ms: u128, burst: u32) -> LimitFact {
        LimitFact {
            limit: Some(Limit {
                rate: String::new(),
                burst,
                count,
                period_ms,
            }),
        }
    }

    #[test]
    fn limits_compare_by_speed_and_burst() {
        let per_min = limit(120, 60_000, 20);
        assert_eq!(
            rate_limit(&per_min, &limit(2, 1_000, 20)),
            None,
            "120/min = 2/s"
        );
        assert_eq!(
            rate_limit(&per_min, &limit(3, 1_000, 20)).map(|v| v.direction),
            Some(Direction::Widened)
        );
        assert_eq!(
            rate_limit(&per_min, &limit(120, 60_000, 10)).map(|v| v.direction),
            Some(Direction::Narrowed)
        );
        assert_eq!(
            rate_limit(&per_min, &limit(60, 60_000, 40)).map(|v| v.direction),
            Some(Direction::Widened),
            "mixed counts as widening"
        );
        assert_eq!(
            rate_limit(&per_min, &LimitFact { limit: None }).map(|v| v.direction),
            Some(Direction::Widened)
        );
    }

    fn shown(shown: Shown, masker: Option<&'static str>) -> FieldFact {
        FieldFact {
            shown,
            masker,
            rule: String::new(),
            view: None,
        }
    }

    #[test]
    fn fields_rank_denied_hidden_masked_visible() {
        let order = [
            shown(Shown::Denied, None),
            shown(Shown::Masked, Some("hide")),
            shown(Shown::Masked, Some("phone")),
            shown(Shown::Visible, None),
        ];
        for (i, a) in order.iter().enumerate() {
            for (j, b) in order.iter().enumerate() {
                let want = match i.cmp(&j) {
                    std::cmp::Ordering::Less => Some(Direction::Widened),
                    std::cmp::Ordering::Greater => Some(Direction::Narrowed),
                    std::cmp::Ordering::Equal => None,
                };
                assert_eq!(
                    field(Some(a), Some(b)).map(|v| v.direction),
                    want,
                    "{i} → {j}"
                );
            }
        }
        assert_eq!(
            field(None, Some(&order[3])).map(|v| v.what),
            Some("newly visible".to_owned())
        );
        let swapped = field(Some(&order[2]), Some(&shown(Shown::Masked, Some("name"))));
        assert_eq!(
            swapped.map(|v| v.direction),
            Some(Direction::Widened),
            "a masker swapped asks for sign-off"
        );
    }

    #[test]
    fn credentials_widen_with_a_longer_window() {
        let window = |not_before, not_after| CredentialFact {
            credential: "api_key",
            not_before,
            not_after,
            tenant: None,
        };
        let base = window(Some(100), Some(200));
        for (other, want) in [
            (window(Some(100), Some(300)), Some(Direction::Widened)),
            (window(Some(100), None), Some(Direction::Widened)),
            (window(Some(50), Some(200)), Some(Direction::Widened)),
            (window(Some(100), Some(150)), Some(Direction::Narrowed)),
            (window(Some(150), Some(300)), Some(Direction::Widened)),
            (window(Some(100), Some(200)), None),
            (
                CredentialFact {
                    tenant: Some("other".into()),
                    ..window(Some(100), Some(200))
                },
                Some(Direction::Widened),
            ),
        ] {
            assert_eq!(
                credential(&base, &other).map(|v| v.direction),
                want,
                "{other:?}"
            );
        }
    }
}
