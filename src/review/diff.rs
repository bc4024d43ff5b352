//! `ordergate diff OLD NEW`: the exposure change between two policies. The facts of both
//! ([`super::exposure`]) are gathered for the same subjects — every API key, mTLS client and
//! role (as a token holder) of either policy, every route's rules, every view — and the same
//! fields (every path a view of that route names in either policy, and `*`), then compared fact
//! by fact ([`super::compare`]). Exit 0: no change; 2: widened somewhere; 3: only narrowed.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::policy::{Policy, Route};
use crate::review::compare::{Direction, compare};
use crate::review::exposure::{self, Fact, FactKey, Gather, named_fields};
use crate::review::who::{self, Caller};
use crate::stage::views::FieldPath;

/// One change of exposure.
#[derive(Debug, Clone)]
pub struct Change {
    /// Which way.
    pub direction: Direction,
    /// Where.
    pub key: FactKey,
    /// Why, briefly.
    pub what: String,
    /// Before (absent: `None`).
    pub old: Option<Fact>,
    /// After.
    pub new: Option<Fact>,
}

/// Every change, in a stable order (subject, route, item).
#[derive(Debug, Clone)]
pub struct Report {
    old_file: String,
    new_file: String,
    /// The changes.
    pub changes: Vec<Change>,
}

/// The callers of a policy, by label.
fn callers(policy: &Policy) -> Vec<Caller> {
    let mut all = who::configured_keys(policy);
    all.extend(who::configured_clients(policy));
    all.extend(who::role_holders(policy));
    all
}

/// Every field either policy names on each route id.
fn fields_by_route(old: &Policy, new: &Policy) -> BTreeMap<String, Vec<FieldPath>> {
    let mut out: BTreeMap<String, Vec<FieldPath>> = BTreeMap::new();
    for route in old.routes.iter().chain(&new.routes) {
        let list = out.entry(route.id.to_string()).or_default();
        for f in named_fields(route) {
            if !list.contains(&f) {
                list.push(f);
            }
        }
    }
    out
}

/// Compares `old` with `new`.
pub fn diff(old: &Policy, new: &Policy) -> Report {
    let fields = fields_by_route(old, new);
    let of = |route: &Route| fields.get(&*route.id).cloned().unwrap_or_default();
    let gather = |policy: &Policy| {
        let callers = callers(policy);
        exposure::facts(
            policy,
            &Gather {
                callers: &callers,
                fields: &of,
                views: true,
                route: None,
            },
        )
    };
    let (before, after) = (gather(old), gather(new));
    let keys: BTreeSet<&FactKey> = before.keys().chain(after.keys()).collect();
    let changes = keys
        .into_iter()
        .filter_map(|key| {
            let (a, b) = (before.get(key), after.get(key));
            compare(a, b).map(|v| Change {
                direction: v.direction,
                key: key.clone(),
                what: v.what,
                old: a.cloned(),
                new: b.cloned(),
            })
        })
        .collect();
    Report {
        old_file: who::file_name(old),
        new_file: who::file_name(new),
        changes,
    }
}

impl Report {
    fn count(&self, direction: Direction) -> usize {
        self.changes
            .iter()
            .filter(|c| c.direction == direction)
            .count()
    }

    /// 0: no change in exposure; 2: widened somewhere; 3: only narrowed.
    pub fn exit_code(&self) -> u8 {
        match (
            self.count(Direction::Widened),
            self.count(Direction::Narrowed),
        ) {
            (0, 0) => 0,
            (0, _) => 3,
            _ => 2,
        }
    }

    fn summary(&self) -> String {
        let (w, n) = (
            self.count(Direction::Widened),
            self.count(Direction::Narrowed),
        );
        match self.exit_code() {
            0 => "no change in exposure".to_owned(),
            2 => format!("exposure widened: {w} widening, {n} narrowing change(s)"),
            _ => format!("exposure only narrowed: {n} narrowing change(s)"),
        }
    }

    /// For people: one line per change, the why first, then before → after; a summary last.
    pub fn text(&self) -> String {
        let mut out = format!("diff {} → {}\n", self.old_file, self.new_file);
        for c in &self.changes {
            let side =
                |f: &Option<Fact>| f.as_ref().map_or_else(|| "absent".to_owned(), Fact::text);
            out.push_str(&format!(
                "{} {} {} {}: {}: {} → {}\n",
                match c.direction {
                    Direction::Widened => "+ widened ",
                    Direction::Narrowed => "- narrowed",
                },
                c.key.subject,
                c.key.route.as_deref().unwrap_or("-"),
                c.key.item,
                c.what,
                side(&c.old),
                side(&c.new),
            ));
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    /// For tools.
    pub fn json(&self) -> Value {
        let changes: Vec<Value> = self
            .changes
            .iter()
            .map(|c| {
                json!({
                    "direction": c.direction,
                    "subject": c.key.subject,
                    "route": c.key.route,
                    "item": c.key.item,
                    "what": c.what,
                    "old": c.old,
                    "new": c.new,
                })
            })
            .collect();
        json!({
            "old": self.old_file,
            "new": self.new_file,
            "exit_code": self.exit_code(),
            "widened": self.count(Direction::Widened),
            "narrowed": self.count(Direction::Narrowed),
            "changes": changes,
        })
    }
}
