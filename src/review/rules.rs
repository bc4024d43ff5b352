//! Exposure facts of the wave-2 rules (CONTRACT §7, §8, §10): IP lists, the signature
//! requirement, response owners, the upstream and its canary, stale-if-error and the volume
//! guard — each read from the compiled policy, with its line for people and its comparison
//! (which way widens). A change that is neither plainly wider nor plainly narrower widens, so it
//! asks for sign-off.

use std::collections::BTreeSet;
use std::time::Duration;

use ipnet::IpNet;
use serde::Serialize;

use crate::policy::{Policy, Route};
use crate::review::compare::{Direction, Verdict};
use crate::review::who::Caller;
use crate::stage::canary::{self, CanarySettings};
use crate::stage::stale::StaleSettings;
use crate::stage::volume::{VolumeAction, VolumeSettings};
use crate::vocab::ip_list::IpAllowList;

fn verdict(wider: Vec<String>, narrower: Vec<String>) -> Option<Verdict> {
    if !wider.is_empty() {
        let mut words = wider;
        words.extend(narrower);
        return Some(Verdict {
            direction: Direction::Widened,
            what: words.join(", "),
        });
    }
    (!narrower.is_empty()).then(|| Verdict {
        direction: Direction::Narrowed,
        what: narrower.join(", "),
    })
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

fn duration_text(ms: u128) -> String {
    match ms {
        ms if ms % 3_600_000 == 0 && ms > 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 && ms > 0 => format!("{}min", ms / 60_000),
        ms if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        ms => format!("{ms}ms"),
    }
}

/// IP lists that apply (`allow_ips`): an address must be in every one; none: any address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IpListFact {
    /// Each list's CIDR blocks, canonical, as compiled.
    pub lists: Vec<Vec<String>>,
}

impl IpListFact {
    /// The lists `lists`.
    pub fn of<'a>(lists: impl IntoIterator<Item = &'a IpAllowList>) -> Self {
        Self {
            lists: lists
                .into_iter()
                .map(|l| l.nets().iter().map(IpNet::to_string).collect())
                .collect(),
        }
    }

    /// For people.
    pub fn text(&self) -> String {
        if self.lists.is_empty() {
            return "any address".to_owned();
        }
        let lists: Vec<String> = self.lists.iter().map(|l| l.join(", ")).collect();
        format!("only from [{}]", lists.join("] and ["))
    }

    fn nets(&self) -> Option<Vec<Vec<IpNet>>> {
        self.lists
            .iter()
            .map(|l| l.iter().map(|n| n.parse().ok()).collect())
            .collect()
    }
}

/// Every block of `inner` lies inside a block of `outer`.
fn within(inner: &[IpNet], outer: &[IpNet]) -> bool {
    inner.iter().all(|n| outer.iter().any(|o| o.contains(n)))
}

/// `b` admits no address `a` refuses when each list of `a` holds some list of `b` whole (then
/// the addresses every list of `b` admits are inside every list of `a`).
fn no_wider(a: &[Vec<IpNet>], b: &[Vec<IpNet>]) -> bool {
    a.iter()
        .all(|outer| b.iter().any(|inner| within(inner, outer)))
}

/// A block added, a list removed or made wider widens; the reverse narrows. Lists that are
/// neither (one block swapped for another) widen.
pub fn compare_ip_lists(a: &IpListFact, b: &IpListFact) -> Option<Verdict> {
    let (Some(old), Some(new)) = (a.nets(), b.nets()) else {
        return verdict(vec!["IP lists changed".to_owned()], vec![]);
    };
    match (no_wider(&old, &new), no_wider(&new, &old)) {
        (true, true) => None,
        (true, false) => verdict(vec![], vec!["IP list narrowed".to_owned()]),
        (false, _) if new.is_empty() => verdict(vec!["IP list removed".to_owned()], vec![]),
        (false, _) => verdict(vec!["IP list widened".to_owned()], vec![]),
    }
}

/// The blocks admitted by both `a` and `b` (two blocks overlap only when one holds the other;
/// the overlap is the smaller). At most `a.len() + b.len()` distinct blocks.
fn overlap(a: &[IpNet], b: &[IpNet]) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = Vec::new();
    for x in a {
        for y in b {
            let smaller = if x.contains(y) {
                *y
            } else if y.contains(x) {
                *x
            } else {
                continue;
            };
            if !out.contains(&smaller) {
                out.push(smaller);
            }
        }
    }
    out
}

/// A refusal every request of `caller` on `route` meets whatever it sends, before
/// authorisation: no address is in every IP list that applies (server, credential and roles,
/// route), or the route demands a signature the credential has no key to make. The audit
/// `detail` and the rule in words.
pub fn always_refused(
    policy: &Policy,
    route: &Route,
    caller: &Caller,
) -> Option<(&'static str, String)> {
    let lists = policy
        .server
        .allow_ips
        .iter()
        .chain(&caller.principal.allow_ips)
        .chain(&route.allow_ips);
    let mut admitted: Option<Vec<IpNet>> = None;
    for list in lists {
        admitted = Some(match admitted {
            None => list.nets().to_vec(),
            Some(so_far) => overlap(&so_far, list.nets()),
        });
    }
    if admitted.is_some_and(|a| a.is_empty()) {
        return Some((
            "ip_not_allowed",
            "allow_ips: no address is in every list that applies (server, credential and roles, route)"
                .to_owned(),
        ));
    }
    let p = &caller.principal;
    if route.require_signature && !policy.signatures.keys.contains_key(&(p.kind, p.id.clone())) {
        return Some((
            "signature_invalid",
            "require_signature: the credential has no signature key, so none of its requests verifies"
                .to_owned(),
        ));
    }
    None
}

/// Whether requests must be signed: a route's `require_signature`, or a credential's
/// `signature` key (with its algorithm).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureFact {
    /// Every request must carry a valid signature.
    pub required: bool,
    /// The credential's algorithm (`ed25519`, `hmac-sha256`).
    pub alg: Option<&'static str>,
}

impl SignatureFact {
    /// The credential's `signature` key, if any.
    pub fn of_caller(policy: &Policy, caller: &Caller) -> Self {
        let p = &caller.principal;
        let alg = policy
            .signatures
            .keys
            .get(&(p.kind, p.id.clone()))
            .map(|k| k.alg_name());
        Self {
            required: alg.is_some(),
            alg,
        }
    }

    /// For people.
    pub fn text(&self) -> String {
        match (self.required, self.alg) {
            (true, Some(alg)) => format!("signs every request ({alg})"),
            (true, None) => "every caller must sign (require_signature)".to_owned(),
            (false, _) => "no signature required".to_owned(),
        }
    }
}

/// A requirement removed widens; a key's algorithm changed asks for sign-off.
pub fn compare_signatures(a: &SignatureFact, b: &SignatureFact) -> Option<Verdict> {
    match (a.required, b.required) {
        (true, false) => verdict(vec!["signature requirement removed".to_owned()], vec![]),
        (false, true) => verdict(vec![], vec!["signature now required".to_owned()]),
        _ if a.alg != b.alg => verdict(
            vec![format!(
                "signature algorithm changed ({} → {})",
                a.alg.unwrap_or("-"),
                b.alg.unwrap_or("-")
            )],
            vec![],
        ),
        _ => None,
    }
}

/// One `[[routes.response.owners]]` entry as written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct OwnerEntry {
    /// The answer's field.
    pub field: String,
    /// The claim its value must be one of.
    pub claim: String,
    /// Scopes the entry does not apply to, sorted.
    pub bypass_scopes: Vec<String>,
}

/// A route's response owners: the answer must belong to the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnersFact {
    /// The entries, sorted.
    pub entries: Vec<OwnerEntry>,
}

impl OwnersFact {
    /// The route's entries.
    pub fn of(route: &Route) -> Self {
        let mut entries: Vec<OwnerEntry> = route
            .answer
            .owners
            .iter()
            .map(|o| {
                let mut bypass_scopes: Vec<String> =
                    o.bypass_names.iter().map(|s| s.to_string()).collect();
                bypass_scopes.sort();
                OwnerEntry {
                    field: o.field.to_string(),
                    claim: o.claim.to_string(),
                    bypass_scopes,
                }
            })
            .collect();
        entries.sort();
        Self { entries }
    }

    /// For people.
    pub fn text(&self) -> String {
        if self.entries.is_empty() {
            return "no response owner check".to_owned();
        }
        let entries: Vec<String> = self
            .entries
            .iter()
            .map(|e| {
                let unless = if e.bypass_scopes.is_empty() {
                    String::new()
                } else {
                    format!(" unless {}", e.bypass_scopes.join(" or "))
                };
                format!("{} in claim {}{unless}", e.field, e.claim)
            })
            .collect();
        format!("answer must hold {}", entries.join("; "))
    }
}

/// An entry removed or a bypass scope added widens; the reverse narrows.
pub fn compare_owners(a: &OwnersFact, b: &OwnersFact) -> Option<Verdict> {
    let key = |e: &OwnerEntry| (e.field.clone(), e.claim.clone());
    let (mut wider, mut narrower) = (Vec::new(), Vec::new());
    for e in &a.entries {
        match b.entries.iter().find(|n| key(n) == key(e)) {
            None => wider.push(format!("response owner {} removed", e.field)),
            Some(n) => {
                let (old, new): (BTreeSet<_>, BTreeSet<_>) = (
                    e.bypass_scopes.iter().collect(),
                    n.bypass_scopes.iter().collect(),
                );
                for s in new.difference(&old) {
                    wider.push(format!(
                        "response owner {}: bypass scope {s} granted",
                        e.field
                    ));
                }
                for s in old.difference(&new) {
                    narrower.push(format!(
                        "response owner {}: bypass scope {s} withdrawn",
                        e.field
                    ));
                }
            }
        }
    }
    for n in &b.entries {
        if !a.entries.iter().any(|e| key(e) == key(n)) {
            narrower.push(format!("response owner {} added", n.field));
        }
    }
    verdict(wider, narrower)
}

/// A route's canary as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CanaryFact {
    /// Its upstream's name.
    pub upstream: String,
    /// The share of principals, in hundredths of a percent (`threshold`).
    pub basis_points: u32,
    /// Principals always on it, sorted.
    pub principals: Vec<String>,
}

/// Where a route forwards: its upstream, its canary, and whether it may serve stale answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpstreamFact {
    /// The route's upstream's name.
    pub upstream: String,
    /// Its canary, if any.
    pub canary: Option<CanaryFact>,
}

fn upstream_name(policy: &Policy, r: canary::UpstreamRef) -> String {
    policy
        .upstreams
        .get(r.0)
        .map_or_else(|| "?".to_owned(), |(n, _)| n.to_string())
}

fn percent(basis_points: u32) -> String {
    let whole = basis_points / 100;
    match basis_points % 100 {
        0 => format!("{whole}%"),
        frac => format!("{whole}.{frac:02}%"),
    }
}

impl UpstreamFact {
    /// The route's upstream and canary.
    pub fn of(policy: &Policy, route: &Route) -> Self {
        Self {
            upstream: upstream_name(policy, route.upstream),
            canary: route.canary.as_ref().map(|c| {
                let mut principals: Vec<String> =
                    c.principals.iter().map(|p| p.to_string()).collect();
                principals.sort();
                CanaryFact {
                    upstream: upstream_name(policy, c.upstream),
                    basis_points: c.threshold,
                    principals,
                }
            }),
        }
    }

    /// For people.
    pub fn text(&self) -> String {
        match &self.canary {
            None => self.upstream.clone(),
            Some(c) => {
                let named = if c.principals.is_empty() {
                    String::new()
                } else {
                    format!(" and always {}", c.principals.join(", "))
                };
                format!(
                    "{}; canary {} for {} of principals{named}",
                    self.upstream,
                    c.upstream,
                    percent(c.basis_points)
                )
            }
        }
    }
}

/// A canary added, a larger share or more named principals, or another upstream: a change that
/// needs sign-off (widens). A canary removed or shrunk narrows.
pub fn compare_upstreams(a: &UpstreamFact, b: &UpstreamFact) -> Option<Verdict> {
    let (mut wider, mut narrower) = (Vec::new(), Vec::new());
    if a.upstream != b.upstream {
        wider.push(format!("upstream now {}", b.upstream));
    }
    match (&a.canary, &b.canary) {
        (None, Some(c)) => wider.push(format!("canary {} added", c.upstream)),
        (Some(_), None) => narrower.push("canary removed".to_owned()),
        (Some(x), Some(y)) => {
            if x.upstream != y.upstream {
                wider.push(format!("canary now {}", y.upstream));
            }
            match y.basis_points.cmp(&x.basis_points) {
                std::cmp::Ordering::Greater => wider.push(format!(
                    "canary share raised ({} → {})",
                    percent(x.basis_points),
                    percent(y.basis_points)
                )),
                std::cmp::Ordering::Less => narrower.push(format!(
                    "canary share lowered ({} → {})",
                    percent(x.basis_points),
                    percent(y.basis_points)
                )),
                std::cmp::Ordering::Equal => {}
            }
            for p in y.principals.iter().filter(|p| !x.principals.contains(p)) {
                wider.push(format!("{p} put on the canary"));
            }
            for p in x.principals.iter().filter(|p| !y.principals.contains(p)) {
                narrower.push(format!("{p} taken off the canary"));
            }
        }
        (None, None) => {}
    }
    verdict(wider, narrower)
}

/// Which side of a canary route a caller is on, by the gateway's own assignment
/// ([`canary::assigned`]; while the guard holds — a tripped guard sends everyone to the
/// route's own upstream).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SideFact {
    /// `canary`, `primary`, or `by_subject` (a role stands for holders on either side).
    pub side: &'static str,
    /// The upstream it reaches.
    pub upstream: String,
}

impl SideFact {
    /// The caller's side on `route`; `None` for a route without a canary.
    pub fn of(policy: &Policy, route: &Route, caller: &Caller) -> Option<Self> {
        let settings: &CanarySettings = route.canary.as_ref()?;
        let (side, upstream) = if caller.placeholder_claims {
            ("by_subject", "either".to_owned())
        } else if canary::assigned(settings, &route.id, &caller.principal.id) {
            ("canary", upstream_name(policy, settings.upstream))
        } else {
            ("primary", upstream_name(policy, route.upstream))
        };
        Some(Self { side, upstream })
    }

    /// For people.
    pub fn text(&self) -> String {
        match self.side {
            "canary" => format!("on the canary ({}) while its guard holds", self.upstream),
            "primary" => format!("on the route's own upstream ({})", self.upstream),
            _ => "on the canary or not by each holder's subject".to_owned(),
        }
    }
}

/// Moved onto the canary widens (another upstream answers it); moved off narrows.
pub fn compare_sides(a: Option<&SideFact>, b: Option<&SideFact>) -> Option<Verdict> {
    let on = |s: Option<&SideFact>| s.is_some_and(|s| s.side != "primary");
    match (on(a), on(b)) {
        (false, true) => verdict(vec!["now on the canary".to_owned()], vec![]),
        (true, false) => verdict(vec![], vec!["off the canary".to_owned()]),
        _ if a.map(|s| &s.upstream) != b.map(|s| &s.upstream) && on(b) => {
            verdict(vec!["another canary upstream".to_owned()], vec![])
        }
        _ => None,
    }
}

/// `[routes.stale_if_error]`: answers kept and served while the upstream fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaleFact {
    /// Oldest answer served, in milliseconds; `None`: never stale.
    pub max_age_ms: Option<u128>,
    /// Entries kept at most.
    pub max_entries: Option<u32>,
}

impl StaleFact {
    /// The route's settings.
    pub fn of(stale: Option<&StaleSettings>) -> Self {
        Self {
            max_age_ms: stale.map(|s| ms(s.max_age)),
            max_entries: stale.map(|s| s.max_entries),
        }
    }

    /// For people.
    pub fn text(&self) -> String {
        match (self.max_age_ms, self.max_entries) {
            (Some(age), Some(n)) => format!(
                "stale_if_error: answers up to {} old, {n} kept",
                duration_text(age)
            ),
            _ => "never serves a stale answer".to_owned(),
        }
    }
}

/// Stale answers turned on or kept longer widen; off or shorter narrows.
pub fn compare_stale(a: &StaleFact, b: &StaleFact) -> Option<Verdict> {
    match (a.max_age_ms, b.max_age_ms) {
        (None, Some(_)) => verdict(vec!["stale_if_error added".to_owned()], vec![]),
        (Some(_), None) => verdict(vec![], vec!["stale_if_error removed".to_owned()]),
        (Some(x), Some(y)) if y > x => {
            verdict(vec!["stale answers kept longer".to_owned()], vec![])
        }
        (Some(x), Some(y)) if y < x => {
            verdict(vec![], vec!["stale answers kept shorter".to_owned()])
        }
        _ if a.max_entries < b.max_entries => {
            verdict(vec!["more stale answers kept".to_owned()], vec![])
        }
        _ if a.max_entries > b.max_entries => {
            verdict(vec![], vec!["fewer stale answers kept".to_owned()])
        }
        _ => None,
    }
}

/// A volume limit: at most `max` within `window_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeLimit {
    /// The parameter counted (`distinct` only).
    pub param: Option<String>,
    /// The most allowed in a window.
    pub max: u64,
    /// The window, in milliseconds.
    pub window_ms: u128,
}

/// `[abuse.volume]`: how much one principal may read before it is reported (or frozen).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeFact {
    /// `distinct = { param, max, window }`.
    pub distinct: Option<VolumeLimit>,
    /// `records = { max, window }`.
    pub records: Option<VolumeLimit>,
    /// `alert` or `freeze`; `None`: no volume guard.
    pub action: Option<&'static str>,
}

impl VolumeFact {
    /// The policy's guard.
    pub fn of(volume: Option<&VolumeSettings>) -> Self {
        Self {
            distinct: volume
                .and_then(|v| v.distinct.as_ref())
                .map(|d| VolumeLimit {
                    param: Some(d.param.to_string()),
                    max: u64::from(d.max),
                    window_ms: ms(d.window),
                }),
            records: volume
                .and_then(|v| v.records.as_ref())
                .map(|r| VolumeLimit {
                    param: None,
                    max: r.max,
                    window_ms: ms(r.window),
                }),
            action: volume.map(|v| match v.action {
                VolumeAction::Alert => "alert",
                VolumeAction::Freeze(_) => "freeze",
            }),
        }
    }

    /// For people.
    pub fn text(&self) -> String {
        let Some(action) = self.action else {
            return "no volume guard".to_owned();
        };
        let mut limits = Vec::new();
        if let Some(d) = &self.distinct {
            limits.push(format!(
                "{} distinct {} per {}",
                d.max,
                d.param.as_deref().unwrap_or("?"),
                duration_text(d.window_ms)
            ));
        }
        if let Some(r) = &self.records {
            limits.push(format!(
                "{} records per {}",
                r.max,
                duration_text(r.window_ms)
            ));
        }
        format!("{} per principal, then {action}", limits.join(", "))
    }
}

/// A limit dropped or loosened (a larger `max` per window), a `distinct` parameter changed,
/// or `freeze` turned to `alert` widens; the reverse narrows.
pub fn compare_volume(a: &VolumeFact, b: &VolumeFact) -> Option<Verdict> {
    let (mut wider, mut narrower) = (Vec::new(), Vec::new());
    for (name, x, y) in [
        ("distinct", &a.distinct, &b.distinct),
        ("records", &a.records, &b.records),
    ] {
        match (x, y) {
            (Some(_), None) => wider.push(format!("volume {name} limit removed")),
            (None, Some(_)) => narrower.push(format!("volume {name} limit added")),
            (Some(x), Some(y)) => {
                if x.param != y.param {
                    wider.push(format!("volume {name} counts another parameter"));
                }
                // Allowed per millisecond, compared without division.
                let (old, new) = (
                    u128::from(x.max) * y.window_ms,
                    u128::from(y.max) * x.window_ms,
                );
                match new.cmp(&old) {
                    std::cmp::Ordering::Greater => wider.push(format!("volume {name} loosened")),
                    std::cmp::Ordering::Less => narrower.push(format!("volume {name} tightened")),
                    std::cmp::Ordering::Equal => {}
                }
            }
            (None, None) => {}
        }
    }
    match (a.action, b.action) {
        (Some("freeze"), Some("alert")) => wider.push("volume action freeze → alert".to_owned()),
        (Some("alert"), Some("freeze")) => narrower.push("volume action alert → freeze".to_owned()),
        _ => {}
    }
    verdict(wider, narrower)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists(l: &[&[&str]]) -> IpListFact {
        IpListFact {
            lists: l
                .iter()
                .map(|l| l.iter().map(|s| (*s).to_owned()).collect())
                .collect(),
        }
    }

    fn dir(a: &IpListFact, b: &IpListFact) -> Option<Direction> {
        compare_ip_lists(a, b).map(|v| v.direction)
    }

    #[test]
    fn ip_lists_widen_with_more_addresses() {
        let one = lists(&[&["203.0.113.0/24"]]);
        let two = lists(&[&["203.0.113.0/24", "198.51.100.7/32"]]);
        let wide = lists(&[&["203.0.0.0/16"]]);
        let none = lists(&[]);
        let other = lists(&[&["192.0.2.0/24"]]);
        assert_eq!(dir(&one, &one), None);
        assert_eq!(dir(&one, &two), Some(Direction::Widened), "a CIDR added");
        assert_eq!(dir(&two, &one), Some(Direction::Narrowed));
        assert_eq!(dir(&one, &wide), Some(Direction::Widened), "made wider");
        assert_eq!(dir(&wide, &one), Some(Direction::Narrowed));
        assert_eq!(dir(&one, &none), Some(Direction::Widened), "removed");
        assert_eq!(dir(&none, &one), Some(Direction::Narrowed));
        assert_eq!(dir(&one, &other), Some(Direction::Widened), "swapped");
        let both = lists(&[&["203.0.0.0/16"], &["203.0.113.0/24"]]);
        assert_eq!(dir(&both, &one), None, "the same addresses");
        assert_eq!(
            dir(&both, &wide),
            Some(Direction::Widened),
            "a list dropped"
        );
    }

    #[test]
    fn overlaps_are_the_smaller_blocks() {
        let nets = |l: &[&str]| l.iter().map(|n| n.parse().unwrap()).collect::<Vec<IpNet>>();
        assert_eq!(
            overlap(
                &nets(&["10.0.0.0/8", "192.0.2.0/24"]),
                &nets(&["10.1.0.0/16"])
            ),
            nets(&["10.1.0.0/16"])
        );
        assert!(overlap(&nets(&["10.0.0.0/8"]), &nets(&["192.0.2.0/24"])).is_empty());
        assert!(overlap(&nets(&["10.0.0.0/8"]), &nets(&["::/0"])).is_empty());
    }

    #[test]
    fn volume_compares_per_window() {
        let v = |max, window_ms, action| VolumeFact {
            distinct: None,
            records: Some(VolumeLimit {
                param: None,
                max,
                window_ms,
            }),
            action: Some(action),
        };
        let base = v(100, 60_000, "freeze");
        let d = |b: &VolumeFact| compare_volume(&base, b).map(|x| x.direction);
        assert_eq!(d(&v(200, 120_000, "freeze")), None);
        assert_eq!(d(&v(101, 60_000, "freeze")), Some(Direction::Widened));
        assert_eq!(d(&v(100, 30_000, "freeze")), Some(Direction::Widened));
        assert_eq!(d(&v(100, 60_000, "alert")), Some(Direction::Widened));
        assert_eq!(d(&v(50, 60_000, "freeze")), Some(Direction::Narrowed));
        assert_eq!(d(&VolumeFact::of(None)), Some(Direction::Widened));
    }

    #[test]
    fn percents_print_as_written() {
        assert_eq!(percent(1_000), "10%");
        assert_eq!(percent(1_250), "12.50%");
        assert_eq!(percent(5), "0.05%");
    }
}
