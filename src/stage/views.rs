//! Response views (stage 11): what each caller may see of a JSON answer. Compiled once from
//! `[[routes.response.views]]` into one trie; applied as `allow` (keep only these paths), then
//! `deny` (remove these), then `mask` (rewrite these values with a masker), in a single streaming
//! pass over the upstream's bytes. Paths: `a.b`, `list[].field`, `*`.
//!
//! Allow is an allow-list, so a path that does not fit the document's shape keeps nothing there.
//! Deny and mask fail closed instead: where the answer departs from a rule's path (an array where
//! the path expects an object, an object where it expects an array), the rule applies to its key
//! wherever that key appears below the departure; in an error answer (not 2xx), whose shape the
//! view does not describe, every rule applies to its key anywhere. Keys match as the same key
//! whatever their case and a few look-alikes (see [`fold_key`]), as lenient JSON binders would.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::vocab::mask::Masker;
use crate::vocab::scopes::ScopeSet;

pub mod watch;

use watch::{Probe, Watch, WatchNode, Watcher};

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Each,
}

/// A parsed field path; empty means `*` (the whole document).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath(Vec<Step>);

impl FieldPath {
    /// Parses `orders[].customer.phone`, `next_cursor` or `*`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "*" {
            return Ok(Self(Vec::new()));
        }
        let mut steps = Vec::new();
        for part in text.split('.') {
            let (name, each) = match part.strip_suffix("[]") {
                Some(name) => (name, true),
                None => (part, false),
            };
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '$' || c == '@');
            if !valid {
                return Err(format!(
                    "field path `{text}`: `{part}` is not a field name (use `a.b`, `list[].field` or `*`)"
                ));
            }
            steps.push(Step::Key(name.to_owned()));
            if each {
                steps.push(Step::Each);
            }
        }
        Ok(Self(steps))
    }

    /// True when this path names `other` or a place above it (`*` covers everything).
    pub fn covers(&self, other: &FieldPath) -> bool {
        other.0.len() >= self.0.len()
            && self.0.iter().zip(&other.0).all(|(a, b)| match (a, b) {
                (Step::Key(x), Step::Key(y)) => fold_key(x) == fold_key(y),
                (Step::Each, Step::Each) => true,
                _ => false,
            })
    }

    /// The last key the path names (folded), if any: where key guards apply.
    pub fn last_key(&self) -> Option<String> {
        self.0.iter().rev().find_map(|step| match step {
            Step::Key(k) => Some(fold_key(k).into_owned()),
            Step::Each => None,
        })
    }
}

/// Written back as parsed: `orders[].customer.phone`, `*`.
impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("*");
        }
        let mut first = true;
        for step in &self.0 {
            match step {
                Step::Key(k) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Step::Each => f.write_str("[]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// Folds a key to the form rule keys are compared in: ASCII case folded, and the look-alikes that
/// case-insensitive JSON binders also accept (Go's `encoding/json` folds `ſ` to `s` and the Kelvin
/// sign to `k`; full-width Latin is folded too). Borrowed for the usual lowercase ASCII key.
fn fold_key(key: &str) -> Cow<'_, str> {
    if key.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        return Cow::Borrowed(key);
    }
    let mut folded = String::with_capacity(key.len());
    for c in key.chars() {
        match c {
            'ſ' => folded.push('s'),
            '\u{212A}' => folded.push('k'),
            '\u{FF01}'..='\u{FF5E}' => match char::from_u32(u32::from(c) - 0xFEE0) {
                Some(ascii) => folded.push(ascii.to_ascii_lowercase()),
                None => folded.push(c),
            },
            c if c.is_ascii() => folded.push(c.to_ascii_lowercase()),
            c => folded.extend(c.to_lowercase()),
        }
    }
    Cow::Owned(folded)
}

/// What a deny or mask rule does to the value it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Deny,
    Mask(Masker),
}

/// A deny or mask rule reduced to its key (folded), for where the answer departs from its path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Guard {
    key: String,
    action: Action,
}

/// The strongest guard on `key` among `guards`: deny wins over mask.
fn guard_on(guards: &[Guard], key: &str) -> Option<Action> {
    let mut found = None;
    for guard in guards.iter().filter(|g| g.key == key) {
        match guard.action {
            Action::Deny => return Some(Action::Deny),
            mask => found = found.or(Some(mask)),
        }
    }
    found
}

/// One node of a view's path trie: what the view says about the value at this place.
#[derive(Debug, Clone, Default)]
struct Node {
    /// `allow` names this place or a place above it: everything below is kept.
    allow_all: bool,
    /// `allow` names something at or below this place.
    allowed: bool,
    /// `deny` names this place.
    deny: bool,
    /// `mask` names this place.
    mask: Option<Masker>,
    /// Children by folded key.
    keys: HashMap<String, Node>,
    each: Option<Box<Node>>,
    /// The deny and mask rules whose paths go through or end at this place, by key: they apply
    /// anywhere below when the value here does not have the shape the trie expects.
    below: Vec<Guard>,
}

impl Node {
    fn at(&mut self, steps: &[Step]) -> &mut Node {
        match steps.split_first() {
            None => self,
            Some((Step::Key(k), rest)) => self
                .keys
                .entry(fold_key(k).into_owned())
                .or_default()
                .at(rest),
            Some((Step::Each, rest)) => self.each.get_or_insert_with(Default::default).at(rest),
        }
    }

    /// Records `guard` on every node from here along `steps`.
    fn guard(&mut self, steps: &[Step], guard: &Guard) {
        if !self.below.contains(guard) {
            self.below.push(guard.clone());
        }
        match steps.split_first() {
            None => {}
            Some((Step::Key(k), rest)) => self
                .keys
                .entry(fold_key(k).into_owned())
                .or_default()
                .guard(rest, guard),
            Some((Step::Each, rest)) => self
                .each
                .get_or_insert_with(Default::default)
                .guard(rest, guard),
        }
    }

    /// The rule a path ending in `[]` puts on this place's elements: a value here that is not
    /// an array is taken as the element itself.
    fn each_action(&self) -> Option<Action> {
        let each = self.each.as_deref()?;
        if each.deny {
            Some(Action::Deny)
        } else {
            each.mask.map(Action::Mask)
        }
    }

    fn mark_allowed(&mut self, steps: &[Step]) {
        self.allowed = true;
        match steps.split_first() {
            None => self.allow_all = true,
            Some((Step::Key(k), rest)) => self
                .keys
                .entry(fold_key(k).into_owned())
                .or_default()
                .mark_allowed(rest),
            Some((Step::Each, rest)) => self
                .each
                .get_or_insert_with(Default::default)
                .mark_allowed(rest),
        }
    }

    /// True when nothing below needs a decision: the value can be copied verbatim.
    fn is_plain(&self) -> bool {
        !self.deny && self.mask.is_none() && self.keys.is_empty() && self.each.is_none()
    }
}

/// A view, compiled into one trie of its `allow`, `deny` and `mask` paths.
#[derive(Debug, Clone)]
pub struct CompiledView {
    /// The scope as written, for metrics and documentation.
    pub scope_name: Arc<str>,
    /// The one scope this view is for.
    pub scope: ScopeSet,
    root: Node,
    /// `deny = ["*"]` or a mask on `*`: nothing is shown.
    deny_all: bool,
    /// The rules as written, so `explain` can name the rule behind a decision.
    rules: ViewRules,
}

/// A view's rules as written (parsed), kept for `ordergate explain` and `diff`; the filter
/// itself runs on the trie.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewRules {
    /// `allow` paths.
    pub allow: Vec<FieldPath>,
    /// `deny` paths.
    pub deny: Vec<FieldPath>,
    /// `mask` paths with their maskers.
    pub mask: Vec<(FieldPath, Masker)>,
}

/// Why a body could not be filtered (it is then refused, fail closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotJson;

impl CompiledView {
    /// Builds a view from parsed parts.
    pub fn new(
        scope_name: Arc<str>,
        scope: ScopeSet,
        allow: &[FieldPath],
        deny: Vec<FieldPath>,
        mask: Vec<(FieldPath, Masker)>,
    ) -> Self {
        let mut root = Node::default();
        for path in allow {
            root.mark_allowed(&path.0);
        }
        // Masking `*` cannot mask a document character by character: it hides it, like `deny`.
        let deny_all =
            deny.iter().any(|p| p.0.is_empty()) || mask.iter().any(|(p, _)| p.0.is_empty());
        for path in deny.iter().filter(|p| !p.0.is_empty()) {
            root.at(&path.0).deny = true;
        }
        for (path, masker) in &mask {
            if !path.0.is_empty() {
                root.at(&path.0).mask = Some(*masker);
            }
        }
        let rules = deny
            .iter()
            .map(|p| (p, Action::Deny))
            .chain(mask.iter().map(|(p, m)| (p, Action::Mask(*m))));
        for (path, action) in rules {
            let key = path.0.iter().rev().find_map(|step| match step {
                Step::Key(k) => Some(fold_key(k).into_owned()),
                Step::Each => None,
            });
            if let Some(key) = key {
                root.guard(&path.0, &Guard { key, action });
            }
        }
        Self {
            scope_name,
            scope,
            root,
            deny_all,
            rules: ViewRules {
                allow: allow.to_vec(),
                deny,
                mask,
            },
        }
    }

    /// The rules as written.
    pub fn rules(&self) -> &ViewRules {
        &self.rules
    }

    /// Filters a JSON document in one pass — `allow`, then `deny`, then `mask` — without building
    /// it in memory: kept subtrees without rules below them are copied as they are, dropped ones
    /// are skipped, and only masked values are parsed.
    pub fn apply_bytes(&self, input: &[u8]) -> Result<Vec<u8>, NotJson> {
        self.filter(input, &[], None, &mut Probe::new(&[], false))
    }

    /// Filters an error answer (not 2xx): its shape is not the one the view describes, so every
    /// deny and mask rule applies to its key at any depth, besides the view's own paths.
    pub fn apply_error_bytes(&self, input: &[u8]) -> Result<Vec<u8>, NotJson> {
        self.filter(input, &self.root.below, None, &mut Probe::new(&[], false))
    }

    /// Filters like [`CompiledView::apply_bytes`] (or, with `error`,
    /// [`CompiledView::apply_error_bytes`]) and, in the same pass, looks at what `watch` names
    /// (owner fields, the count array) — also where the view drops it — for `probe`.
    pub fn apply_watching(
        &self,
        input: &[u8],
        error: bool,
        watch: &Watch,
        probe: &mut Probe<'_>,
    ) -> Result<Vec<u8>, NotJson> {
        let guards = if error { &self.root.below[..] } else { &[] };
        self.filter(input, guards, watch.root(), probe)
    }

    fn filter(
        &self,
        input: &[u8],
        guards: &[Guard],
        watch: Option<&WatchNode>,
        probe: &mut Probe<'_>,
    ) -> Result<Vec<u8>, NotJson> {
        let mut out = Vec::with_capacity(input.len());
        let mut de = serde_json::Deserializer::from_slice(input);
        let pass = if self.deny_all {
            Filter {
                node: None,
                all: false,
                guards,
                out: &mut out,
                watch,
                probe,
            }
            .skip(&mut de)
        } else {
            Filter {
                node: Some(&self.root),
                all: self.root.allow_all,
                guards,
                out: &mut out,
                watch,
                probe,
            }
            .deserialize(&mut de)
        }
        .map_err(|_| NotJson)?;
        de.end().map_err(|_| NotJson)?;
        probe.finish(pass.held);
        if !pass.kept {
            out.clear();
            out.extend_from_slice(b"{}");
        }
        Ok(out)
    }

    /// Filters a parsed document (through the same one-pass filter); for tests.
    #[cfg(test)]
    pub fn apply(&self, document: Value) -> Value {
        serde_json::to_vec(&document)
            .ok()
            .and_then(|bytes| self.apply_bytes(&bytes).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_else(|| Value::Object(serde_json::Map::new()))
    }
}

/// What filtering one value yields: whether it was kept (a dropped value writes nothing), and
/// the owner entries that held at it (see `watch`).
#[derive(Debug, Clone, Copy)]
struct Pass {
    kept: bool,
    held: u64,
}

/// Filters one value into `out`, watching it where `watch` says.
struct Filter<'a, 'p> {
    node: Option<&'a Node>,
    /// Everything here is allowed (by this node or one above).
    all: bool,
    /// Rules applying by key at any depth, because the answer departed from their paths above.
    guards: &'a [Guard],
    out: &'a mut Vec<u8>,
    /// What the owner check and count look for at this place, if anything.
    watch: Option<&'a WatchNode>,
    probe: &'a mut Probe<'p>,
}

impl<'de> DeserializeSeed<'de> for Filter<'_, '_> {
    type Value = Pass;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Pass, D::Error> {
        match self.node {
            Some(node) if node.deny => self.skip(d),
            Some(Node {
                mask: Some(masker), ..
            }) if self.all => Masked {
                masker: *masker,
                out: self.out,
                watch: self.watch.map(|node| (node, self.probe)),
            }
            .deserialize(d),
            None if !self.all => self.skip(d),
            node if self.all
                && self.guards.is_empty()
                && self.watch.is_none()
                && node.is_none_or(Node::is_plain) =>
            {
                let raw = <&RawValue>::deserialize(d)?;
                self.out.extend_from_slice(raw.get().as_bytes());
                Ok(Pass {
                    kept: true,
                    held: 0,
                })
            }
            _ => d.deserialize_any(self),
        }
    }
}

impl Filter<'_, '_> {
    /// Drops the value, still watching it when something is watched there.
    fn skip<'de, D: Deserializer<'de>>(self, d: D) -> Result<Pass, D::Error> {
        let held = match self.watch {
            Some(node) => Watcher {
                node,
                probe: self.probe,
            }
            .deserialize(d)?,
            None => {
                IgnoredAny::deserialize(d)?;
                0
            }
        };
        Ok(Pass { kept: false, held })
    }
}

/// Writes one value through a masker (structures become null); the value is always kept. What
/// is watched in it is looked at before it is masked, on the bytes as received: a parsed
/// `Value` keeps only the last of duplicate keys, so `{"id":"C2","id":"C1"}` would show the
/// owner check `C1` alone, where every other place checks every duplicate.
struct Masked<'a, 'p> {
    masker: Masker,
    out: &'a mut Vec<u8>,
    watch: Option<(&'a WatchNode, &'a mut Probe<'p>)>,
}

impl<'de> DeserializeSeed<'de> for Masked<'_, '_> {
    type Value = Pass;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Pass, D::Error> {
        let (mut value, held) = match self.watch {
            Some((node, probe)) => {
                let raw = <&RawValue>::deserialize(d)?;
                let held = Watcher { node, probe }
                    .deserialize(&mut serde_json::Deserializer::from_str(raw.get()))
                    .map_err(serde::de::Error::custom)?;
                let value = serde_json::from_str(raw.get()).map_err(serde::de::Error::custom)?;
                (value, held)
            }
            None => (Value::deserialize(d)?, 0),
        };
        self.masker.apply(&mut value);
        serde_json::to_writer(&mut *self.out, &value).map_err(serde::de::Error::custom)?;
        Ok(Pass { kept: true, held })
    }
}

impl<'de> Visitor<'de> for Filter<'_, '_> {
    type Value = Pass;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pass, A::Error> {
        let mut guards = self.guards;
        if let Some(node) = self.node.filter(|n| n.each.is_some()) {
            // An object where the path expects an array: a rule on the elements applies to the
            // object itself, and the rules below apply by key anywhere inside it.
            if let Some(action) = node.each_action() {
                let held = match self.watch {
                    Some(node) => Watcher {
                        node,
                        probe: self.probe,
                    }
                    .visit_map(map)?,
                    None => {
                        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                        0
                    }
                };
                if action == Action::Deny || !self.all {
                    return Ok(Pass { kept: false, held });
                }
                self.out.extend_from_slice(b"null");
                return Ok(Pass { kept: true, held });
            }
            if guards.is_empty() {
                guards = &node.below;
            }
        }
        self.out.push(b'{');
        let mut first = true;
        let (mut seen, mut failed) = (0, 0);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let folded = fold_key(&key);
            let child = self.node.and_then(|n| n.keys.get(folded.as_ref()));
            let watched = self.watch.and_then(|w| w.child(&folded));
            let allowed = self.all || child.is_some_and(|c| c.allowed);
            let guard = guard_on(guards, &folded);
            if !allowed || guard == Some(Action::Deny) {
                if let Some(watched) = watched {
                    let held = map.next_value_seed(Watcher {
                        node: watched,
                        probe: &mut *self.probe,
                    })?;
                    watched.note(held, &mut seen, &mut failed);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
                continue;
            }
            let mark = self.out.len();
            if !first {
                self.out.push(b',');
            }
            serde_json::to_writer(&mut *self.out, key.as_ref())
                .map_err(serde::de::Error::custom)?;
            self.out.push(b':');
            let all = self.all || child.is_some_and(|c| c.allow_all);
            let pass = match guard {
                Some(Action::Mask(masker)) if child.is_none_or(|c| !c.deny) => map
                    .next_value_seed(Masked {
                        masker: child.and_then(|c| c.mask).unwrap_or(masker),
                        out: self.out,
                        watch: watched.map(|w| (w, &mut *self.probe)),
                    })?,
                _ => map.next_value_seed(Filter {
                    node: child,
                    all,
                    guards,
                    out: self.out,
                    watch: watched,
                    probe: &mut *self.probe,
                })?,
            };
            if let Some(watched) = watched {
                watched.note(pass.held, &mut seen, &mut failed);
            }
            if pass.kept {
                first = false;
            } else {
                self.out.truncate(mark);
            }
        }
        self.out.push(b'}');
        let held = self.watch.map_or(0, |w| w.object_held(seen, failed));
        Ok(Pass { kept: true, held })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Pass, A::Error> {
        let each = self.node.and_then(|n| n.each.as_deref());
        let mut guards = self.guards;
        if let Some(node) = self.node.filter(|n| !n.keys.is_empty())
            && guards.is_empty()
        {
            // An array where the path expects an object: the rules below apply by key anywhere
            // inside its elements.
            guards = &node.below;
        }
        if !self.all && !each.is_some_and(|e| e.allowed) {
            let held = match self.watch {
                Some(node) => Watcher {
                    node,
                    probe: self.probe,
                }
                .visit_seq(seq)?,
                None => {
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    0
                }
            };
            return Ok(Pass { kept: false, held });
        }
        let watched = self.watch.and_then(WatchNode::each);
        let mut held = watched.map_or(0, |w| w.through());
        let mut len = 0u64;
        self.out.push(b'[');
        let mut first = true;
        loop {
            let mark = self.out.len();
            if !first {
                self.out.push(b',');
            }
            let all = self.all || each.is_some_and(|e| e.allow_all);
            match seq.next_element_seed(Filter {
                node: each,
                all,
                guards,
                out: self.out,
                watch: watched,
                probe: &mut *self.probe,
            })? {
                None => {
                    self.out.truncate(mark);
                    break;
                }
                Some(pass) => {
                    len += 1;
                    held &= pass.held;
                    if pass.kept {
                        first = false;
                    } else {
                        self.out.truncate(mark);
                    }
                }
            }
        }
        self.out.push(b']');
        if let Some(node) = self.watch {
            self.probe.array(node, len);
        }
        Ok(Pass { kept: true, held })
    }

    // A scalar where the view expects structure is dropped; a scalar under `all` is copied.
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Pass, E> {
        self.scalar(&v, None)
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Pass, E> {
        self.scalar(&v, Some(&v.to_string()))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Pass, E> {
        self.scalar(&v, Some(&v.to_string()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Pass, E> {
        // Never an owner's id: rounded (see `watch`).
        self.scalar(&v, None)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Pass, E> {
        self.scalar(&v, Some(v))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Pass, E> {
        self.scalar(&(), None)
    }
}

impl Filter<'_, '_> {
    /// A scalar, with `text` its owner-check reading (strings and numbers only).
    fn scalar<E: serde::de::Error, T: serde::Serialize + ?Sized>(
        self,
        v: &T,
        text: Option<&str>,
    ) -> Result<Pass, E> {
        let held = self.watch.map_or(0, |node| self.probe.leaf(node, text));
        if !self.all {
            return Ok(Pass { kept: false, held });
        }
        // A scalar where the path expects an array is its own element.
        let kept = match self.node.and_then(Node::each_action) {
            Some(Action::Deny) => false,
            Some(Action::Mask(masker)) => {
                let mut value = serde_json::to_value(v).map_err(E::custom)?;
                masker.apply(&mut value);
                serde_json::to_writer(&mut *self.out, &value).map_err(E::custom)?;
                true
            }
            None => {
                serde_json::to_writer(&mut *self.out, v).map_err(E::custom)?;
                true
            }
        };
        Ok(Pass { kept, held })
    }
}

pub mod probe;

#[cfg(test)]
#[path = "views/shape_tests.rs"]
mod shape_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A view from path texts (shared with `shape_tests`).
    pub(super) fn view(allow: &[&str], deny: &[&str], mask: &[(&str, &str)]) -> CompiledView {
        CompiledView::new(
            Arc::from("s"),
            ScopeSet::default(),
            &allow
                .iter()
                .map(|p| FieldPath::parse(p).unwrap())
                .collect::<Vec<_>>(),
            deny.iter().map(|p| FieldPath::parse(p).unwrap()).collect(),
            mask.iter()
                .map(|(p, m)| (FieldPath::parse(p).unwrap(), Masker::parse(m).unwrap()))
                .collect(),
        )
    }

    fn page() -> Value {
        json!({
            "orders": [
                {"order_id": "O1", "status": "paid", "total": 10,
                 "customer": {"name": "张三", "phone": "13812345678", "email": "zhang@example.com", "id_number": "110101199003071234"},
                 "payment": {"card": "6222021234567890123", "method": "card"},
                 "shipping": {"address": "1 Road", "phone": "13987654321"}},
                {"order_id": "O2", "status": "shipped", "customer": {"name": "李四"}}
            ],
            "next_cursor": "abc",
            "internal": {"cost": 3}
        })
    }

    #[test]
    fn allow_keeps_only_listed_paths() {
        let v = view(
            &["orders[].order_id", "orders[].shipping", "next_cursor"],
            &[],
            &[("orders[].shipping.phone", "phone")],
        );
        assert_eq!(
            v.apply(page()),
            json!({"orders": [
                {"order_id": "O1", "shipping": {"address": "1 Road", "phone": "139****4321"}},
                {"order_id": "O2"}
            ], "next_cursor": "abc"})
        );
    }

    #[test]
    fn deny_and_mask_after_allow_all() {
        let v = view(
            &["*"],
            &["orders[].payment", "internal"],
            &[
                ("orders[].customer.phone", "phone"),
                ("orders[].customer.email", "email"),
                ("orders[].customer.id_number", "id_number"),
                ("orders[].customer.name", "name"),
            ],
        );
        let out = v.apply(page());
        assert_eq!(
            out["orders"][0]["customer"],
            json!({"name": "张*", "phone": "138****5678", "email": "z***@example.com", "id_number": "110101********1234"})
        );
        assert!(out["orders"][0].get("payment").is_none());
        assert!(out.get("internal").is_none());
        assert_eq!(
            out["orders"][1]["customer"],
            json!({"name": "李*"}),
            "missing fields stay missing"
        );
        let rendered = out.to_string();
        assert!(!rendered.contains("13812345678") && !rendered.contains("6222021234567890123"));
    }

    #[test]
    fn shape_mismatches_select_nothing() {
        let v = view(&["orders.order_id"], &[], &[]);
        assert_eq!(
            v.apply(page()),
            json!({}),
            "orders is an array: `orders.order_id` keeps nothing"
        );
        let v = view(&["orders[]"], &[], &[("orders[].customer", "phone")]);
        assert_eq!(
            v.apply(page())["orders"][0]["customer"],
            Value::Null,
            "structures are hidden, not half-masked"
        );
        assert_eq!(
            view(&[], &[], &[]).apply(page()),
            json!({}),
            "no allow list shows nothing"
        );
        assert_eq!(view(&["*"], &["*"], &[]).apply(page()), json!({}));
        assert_eq!(view(&["x"], &[], &[]).apply(json!([1, 2])), json!({}));
    }

    #[test]
    fn maskers() {
        assert_eq!(Masker::Phone.mask("13812345678"), "138****5678");
        assert_eq!(Masker::Phone.mask("+86 138-1234-5678"), "861****5678");
        assert_eq!(Masker::Phone.mask("12345"), "****");
        assert_eq!(Masker::Email.mask("alice@example.com"), "a***@example.com");
        assert_eq!(Masker::Email.mask("not-an-email"), "***");
        assert_eq!(
            Masker::IdNumber.mask("11010119900307123X"),
            "110101********123X"
        );
        assert_eq!(
            Masker::BankCard.mask("6222 0212 3456 7890"),
            "************7890"
        );
        assert_eq!(Masker::Name.mask("Alice"), "A****");
        assert_eq!(Masker::Hide.mask("x"), "");
        let mut n = json!(13812345678u64);
        Masker::Phone.apply(&mut n);
        assert_eq!(n, json!("138****5678"));
        let mut h = json!("secret");
        Masker::Hide.apply(&mut h);
        assert_eq!(h, Value::Null);
        assert!(Masker::parse("rot13").is_err());
        assert!(FieldPath::parse("a..b").is_err());
        assert!(FieldPath::parse("a[0]").is_err());
    }
}
