//! What the answer is checked and counted by (§7.3 `owners`, §8.3 `count`), observed during the
//! one pass over the document that the view makes (or, on a route without views, one pass that
//! only observes). The watched paths are compiled into a trie like the view's; the pass descends
//! it beside the view's trie, so values the view drops are still seen by the owner check, and
//! nothing is parsed twice.
//!
//! An owner entry *holds* at a value when:
//! - at a key step, the value is an object with that key (folded like view keys, see
//!   `fold_key`), and the entry holds at *every* occurrence of it (duplicate keys included:
//!   whichever one a client's parser keeps, it is the caller's);
//! - at a `[]` step, the value is an array and the entry holds at every element (an empty array
//!   holds: it returns nobody's records);
//! - at the end, the value is a string or an integer (within 64 bits) whose text is one of the
//!   caller's values. A number the parser can only hold as a float (a fraction, an exponent, an
//!   integer beyond 64 bits) never holds: it is rounded, and two customers' ids beyond 2^64 can
//!   round to the same float, so comparing its text would let one read the other's orders.
//!
//! Anything else — a missing key, another type, `null` — does not hold. Entries are bits of a
//! `u64`, so a value's verdict for every entry at once is a mask.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{FieldPath, NotJson, Step, fold_key};

/// Most owner entries a route may have (each is a bit of a mask).
pub const MAX_OWNER_ENTRIES: usize = 16;

/// One place of the watched trie.
#[derive(Debug, Clone, Default)]
pub struct WatchNode {
    /// Owner entries whose path goes through or ends here.
    through: u64,
    /// Owner entries whose path ends here.
    leaf: u64,
    /// The `count` path ends here.
    count: bool,
    /// Children by folded key.
    keys: HashMap<String, WatchNode>,
    each: Option<Box<WatchNode>>,
}

impl WatchNode {
    fn add(&mut self, steps: &[Step], bit: u64) -> &mut WatchNode {
        self.through |= bit;
        match steps.split_first() {
            None => {
                self.leaf |= bit;
                self
            }
            Some((Step::Key(k), rest)) => self
                .keys
                .entry(fold_key(k).into_owned())
                .or_default()
                .add(rest, bit),
            Some((Step::Each, rest)) => self
                .each
                .get_or_insert_with(Default::default)
                .add(rest, bit),
        }
    }

    /// The child for a (folded) key, when something is watched below it.
    pub(super) fn child(&self, folded: &str) -> Option<&WatchNode> {
        self.keys.get(folded)
    }

    /// The owner entries whose path goes through or ends here.
    pub(super) fn through(&self) -> u64 {
        self.through
    }

    /// The elements' node, when something is watched in them.
    pub(super) fn each(&self) -> Option<&WatchNode> {
        self.each.as_deref()
    }

    /// Records one occurrence of this child with verdict `held` (see [`WatchNode::object_held`]).
    pub(super) fn note(&self, held: u64, seen: &mut u64, failed: &mut u64) {
        *seen |= self.through;
        *failed |= self.through & !held;
    }

    /// The verdict for an object here, from its children's notes: the entries going through a
    /// key hold when that key was seen and held at every occurrence; entries ending here or
    /// expecting an array fail.
    pub(super) fn object_held(&self, seen: u64, failed: u64) -> u64 {
        let each = self.each.as_ref().map_or(0, |e| e.through);
        let keyed = self.through & !self.leaf & !each;
        keyed & seen & !failed
    }
}

/// The watched paths of a route, compiled; empty when the route neither checks nor counts.
#[derive(Debug, Clone, Default)]
pub struct Watch {
    root: Option<WatchNode>,
}

impl Watch {
    /// Watches `owner_fields` (entry `i` is bit `i`; at most [`MAX_OWNER_ENTRIES`], later ones are
    /// ignored — the policy refuses more) and the `count` path.
    pub fn new(owner_fields: &[FieldPath], count: Option<&FieldPath>) -> Self {
        if owner_fields.is_empty() && count.is_none() {
            return Self::default();
        }
        let mut root = WatchNode::default();
        for (i, field) in owner_fields.iter().take(MAX_OWNER_ENTRIES).enumerate() {
            root.add(&field.0, 1 << i);
        }
        if let Some(count) = count {
            root.add(&count.0, 0).count = true;
        }
        Self { root: Some(root) }
    }

    /// The trie's root, when anything is watched.
    pub(super) fn root(&self) -> Option<&WatchNode> {
        self.root.as_ref()
    }
}

/// One request's look at the answer: the values each owner entry admits, and what was found.
#[derive(Debug)]
pub struct Probe<'s> {
    /// Per owner entry: the caller's values (empty: it has none, so nothing matches), or `None`
    /// when the entry does not apply to this caller (a bypass scope).
    sought: &'s [Option<Vec<Cow<'s, str>>>],
    counting: bool,
    records: Option<u64>,
    held: u64,
}

impl<'s> Probe<'s> {
    /// A probe for `sought` (see the field); `counting`: the answer's records are counted.
    pub fn new(sought: &'s [Option<Vec<Cow<'s, str>>>], counting: bool) -> Self {
        Self {
            sought,
            counting,
            records: None,
            held: 0,
        }
    }

    /// The length of the `count` array (summed over every place it was found), or `None`
    /// when it was not found as an array.
    pub fn records(&self) -> Option<u64> {
        self.records
    }

    /// True when every owner entry that applies held on the whole document.
    pub fn owners_hold(&self) -> bool {
        self.sought
            .iter()
            .enumerate()
            .all(|(i, values)| values.is_none() || self.held & (1 << i) != 0)
    }

    /// Records the document's verdict.
    pub(super) fn finish(&mut self, held: u64) {
        self.held = held;
    }

    /// The verdict for a scalar at `node` whose text is `text` (`None`: not a string or number).
    pub(super) fn leaf(&self, node: &WatchNode, text: Option<&str>) -> u64 {
        let Some(text) = text else { return 0 };
        let mut held = 0;
        for (i, values) in self.sought.iter().enumerate().take(MAX_OWNER_ENTRIES) {
            let bit = 1 << i;
            if node.leaf & bit != 0 && values.as_ref().is_none_or(|v| v.iter().any(|v| v == text)) {
                held |= bit;
            }
        }
        held
    }

    /// Counts an array of `len` elements at `node`, when the count path ends there.
    pub(super) fn array(&mut self, node: &WatchNode, len: u64) {
        if node.count && self.counting {
            self.records = Some(self.records.unwrap_or(0).saturating_add(len));
        }
    }
}

/// Observes `input` (a route without views): the verdict and count go to `probe`.
pub fn inspect(input: &[u8], watch: &Watch, probe: &mut Probe<'_>) -> Result<(), NotJson> {
    let Some(root) = watch.root() else {
        return Ok(());
    };
    let mut de = serde_json::Deserializer::from_slice(input);
    let held = Watcher { node: root, probe }
        .deserialize(&mut de)
        .map_err(|_| NotJson)?;
    de.end().map_err(|_| NotJson)?;
    probe.finish(held);
    Ok(())
}

/// Observes one value at `node`, writing nothing; yields its verdict mask.
pub(super) struct Watcher<'w, 'p, 's> {
    pub(super) node: &'w WatchNode,
    pub(super) probe: &'p mut Probe<'s>,
}

impl<'de> DeserializeSeed<'de> for Watcher<'_, '_, '_> {
    type Value = u64;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Watcher<'_, '_, '_> {
    type Value = u64;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u64, A::Error> {
        let (mut seen, mut failed) = (0, 0);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match self.node.child(&fold_key(&key)) {
                Some(child) => {
                    let held = map.next_value_seed(Watcher {
                        node: child,
                        probe: &mut *self.probe,
                    })?;
                    child.note(held, &mut seen, &mut failed);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(self.node.object_held(seen, failed))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        let mut len = 0u64;
        let held = match self.node.each() {
            Some(each) => {
                let mut held = each.through;
                while let Some(h) = seq.next_element_seed(Watcher {
                    node: each,
                    probe: &mut *self.probe,
                })? {
                    held &= h;
                    len += 1;
                }
                held
            }
            None => {
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    len += 1;
                }
                0
            }
        };
        self.probe.array(self.node, len);
        Ok(held)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<u64, E> {
        Ok(self.probe.leaf(self.node, Some(v)))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
        Ok(self.probe.leaf(self.node, Some(&v.to_string())))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(self.probe.leaf(self.node, Some(&v.to_string())))
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<u64, E> {
        Ok(self.probe.leaf(self.node, None))
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<u64, E> {
        Ok(0)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<u64, E> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(owners: &[&str], count: Option<&str>) -> Watch {
        let fields: Vec<FieldPath> = owners
            .iter()
            .map(|p| FieldPath::parse(p).unwrap())
            .collect();
        Watch::new(
            &fields,
            count.map(|c| FieldPath::parse(c).unwrap()).as_ref(),
        )
    }

    /// (owners hold, records) of `doc` for one entry seeking `values`.
    fn look(w: &Watch, sought: &[Option<Vec<Cow<'_, str>>>], doc: &str) -> (bool, Option<u64>) {
        let mut probe = Probe::new(sought, true);
        inspect(doc.as_bytes(), w, &mut probe).unwrap();
        (probe.owners_hold(), probe.records())
    }

    fn c1() -> Vec<Option<Vec<Cow<'static, str>>>> {
        vec![Some(vec![Cow::Borrowed("C1")])]
    }

    #[test]
    fn a_single_field_must_be_the_callers() {
        let w = watch(&["customer.id"], None);
        let s = c1();
        assert!(look(&w, &s, r#"{"customer":{"id":"C1"},"x":1}"#).0);
        assert!(look(&w, &s, r#"{"Customer":{"ID":"C1"}}"#).0, "keys fold");
        assert!(!look(&w, &s, r#"{"customer":{"id":"C2"}}"#).0);
        assert!(!look(&w, &s, r#"{"customer":{}}"#).0, "missing");
        assert!(!look(&w, &s, r#"{}"#).0, "missing");
        assert!(!look(&w, &s, r#"{"customer":{"id":null}}"#).0);
        assert!(
            !look(&w, &s, r#"{"customer":{"id":["C1"]}}"#).0,
            "not a scalar"
        );
        assert!(
            !look(&w, &s, r#"{"customer":[{"id":"C1"}]}"#).0,
            "not an object"
        );
        assert!(!look(&w, &s, r#"[{"customer":{"id":"C1"}}]"#).0);
        assert!(
            !look(&w, &s, r#"{"customer":{"id":"C1","id":"C2"}}"#).0,
            "every duplicate must match"
        );
        assert!(
            !look(&w, &s, r#"{"customer":{"id":"C1"},"CUSTOMER":{"id":"C2"}}"#).0,
            "every folded duplicate must match"
        );
        let nobody: Vec<Option<Vec<Cow<'_, str>>>> = vec![Some(Vec::new())];
        assert!(
            !look(&w, &nobody, r#"{"customer":{"id":"C1"}}"#).0,
            "no claim"
        );
        let bypass: Vec<Option<Vec<Cow<'_, str>>>> = vec![None];
        assert!(look(&w, &bypass, r#"{"customer":{"id":"C2"}}"#).0);
    }

    #[test]
    fn list_paths_need_every_element_and_count_the_array() {
        let w = watch(&["orders[].customer_id"], Some("orders"));
        let s = c1();
        assert_eq!(
            look(
                &w,
                &s,
                r#"{"orders":[{"customer_id":"C1"},{"customer_id":"C1"}]}"#
            ),
            (true, Some(2))
        );
        assert_eq!(
            look(
                &w,
                &s,
                r#"{"orders":[{"customer_id":"C1"},{"customer_id":"C2"}]}"#
            ),
            (false, Some(2))
        );
        assert_eq!(
            look(&w, &s, r#"{"orders":[{"customer_id":"C1"},{}]}"#),
            (false, Some(2))
        );
        assert_eq!(look(&w, &s, r#"{"orders":[]}"#), (true, Some(0)));
        assert_eq!(
            look(&w, &s, r#"{"orders":{"customer_id":"C1"}}"#),
            (false, None)
        );
        assert_eq!(look(&w, &s, r#"{"next":1}"#), (false, None));
    }

    #[test]
    fn sets_numbers_and_several_entries() {
        let w = watch(&["customer_id", "tenant"], None);
        let set: Vec<Option<Vec<Cow<'_, str>>>> = vec![
            Some(vec![Cow::Borrowed("C1"), Cow::Borrowed("42")]),
            Some(vec![Cow::Borrowed("acme")]),
        ];
        assert!(look(&w, &set, r#"{"customer_id":42,"tenant":"acme"}"#).0);
        assert!(look(&w, &set, r#"{"customer_id":"C1","tenant":"acme"}"#).0);
        assert!(!look(&w, &set, r#"{"customer_id":"C1","tenant":"other"}"#).0);
        assert!(!look(&w, &set, r#"{"customer_id":"C1"}"#).0);
        assert!(!look(&w, &set, r#"{"customer_id":43,"tenant":"acme"}"#).0);
    }

    #[test]
    fn a_number_held_as_a_float_never_holds() {
        let w = watch(&["customer_id"], None);
        // What a claim of 12345678901234567890123 (a JSON number) reads as once parsed.
        let rounded = serde_json::json!(12345678901234567890123.0_f64).to_string();
        for claim in [rounded.as_str(), "42", "42.0", "1.5"] {
            let set = vec![Some(vec![Cow::Borrowed(claim)])];
            for doc in [
                r#"{"customer_id":12345678901234567890124}"#,
                r#"{"customer_id":42.0}"#,
                r#"{"customer_id":4.2e1}"#,
                r#"{"customer_id":1.5}"#,
            ] {
                assert!(!look(&w, &set, doc).0, "{claim} held at {doc}");
            }
        }
        // Integers within 64 bits compare exactly.
        let big = vec![Some(vec![Cow::Borrowed("18446744073709551615")])];
        assert!(look(&w, &big, r#"{"customer_id":18446744073709551615}"#).0);
    }

    /// (filtered document, owners hold, records) through a view that watches `w`.
    fn through_view(
        v: &super::super::CompiledView,
        w: &Watch,
        sought: &[Option<Vec<Cow<'_, str>>>],
        doc: &str,
    ) -> (String, bool, Option<u64>) {
        let mut probe = Probe::new(sought, true);
        let out = v
            .apply_watching(doc.as_bytes(), false, w, &mut probe)
            .unwrap();
        (
            String::from_utf8(out).unwrap(),
            probe.owners_hold(),
            probe.records(),
        )
    }

    #[test]
    fn the_view_pass_sees_what_the_view_drops_masks_or_copies() {
        use super::super::tests::view;
        let w = watch(&["orders[].customer.id"], Some("orders"));
        let s = c1();
        let own = r#"{"orders":[{"id":"O1","customer":{"id":"C1","phone":"13812345678"}},{"id":"O2","customer":{"id":"C1"}}],"next":"x"}"#;
        let other =
            r#"{"orders":[{"id":"O1","customer":{"id":"C1"}},{"id":"O2","customer":{"id":"C2"}}]}"#;
        // The view drops the owner field: still checked.
        let dropping = view(&["orders[].id"], &[], &[]);
        assert_eq!(
            through_view(&dropping, &w, &s, own),
            (
                r#"{"orders":[{"id":"O1"},{"id":"O2"}]}"#.to_owned(),
                true,
                Some(2)
            )
        );
        assert!(!through_view(&dropping, &w, &s, other).1);
        // The view denies the whole customer, or everything.
        let denying = view(&["*"], &["orders[].customer"], &[]);
        assert!(through_view(&denying, &w, &s, own).1);
        assert!(!through_view(&denying, &w, &s, other).1);
        let nothing = view(&["*"], &["*"], &[]);
        let (out, held, records) = through_view(&nothing, &w, &s, other);
        assert_eq!((out.as_str(), held, records), ("{}", false, Some(2)));
        // The view masks the owner field: checked on the value before masking.
        let masking = view(&["*"], &[], &[("orders[].customer.id", "hide")]);
        let (out, held, _) = through_view(&masking, &w, &s, own);
        assert!(held && !out.contains("C1"), "{out}");
        assert!(!through_view(&masking, &w, &s, other).1);
        // The view keeps everything: the answer comes out as it went in.
        let all = view(&["*"], &[], &[]);
        let (out, held, records) = through_view(&all, &w, &s, own);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&out).unwrap(),
            serde_json::from_str::<serde_json::Value>(own).unwrap()
        );
        assert_eq!((held, records), (true, Some(2)));
        // The view drops the array the count names: still counted.
        let (_, _, records) = through_view(&view(&["next"], &[], &[]), &w, &s, own);
        assert_eq!(records, Some(2));
    }

    #[test]
    fn counts_are_null_when_not_countable_and_only_when_asked() {
        let w = watch(&[], Some("data.orders"));
        let none: Vec<Option<Vec<Cow<'_, str>>>> = Vec::new();
        assert_eq!(
            look(&w, &none, r#"{"data":{"orders":[1,2,3]}}"#),
            (true, Some(3))
        );
        assert_eq!(look(&w, &none, r#"{"data":{"orders":"x"}}"#).1, None);
        assert_eq!(look(&w, &none, r#"{"data":[]}"#).1, None);
        let root = watch(&[], Some("*"));
        assert_eq!(look(&root, &none, "[1,2]").1, Some(2));
        let mut probe = Probe::new(&none, false);
        inspect(br#"{"data":{"orders":[1]}}"#, &w, &mut probe).unwrap();
        assert_eq!(probe.records(), None);
        let mut probe = Probe::new(&none, true);
        assert!(inspect(b"{\"data\":", &w, &mut probe).is_err());
        assert!(inspect(b"{} {}", &w, &mut probe).is_err());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::super::tests::view;
    use super::*;

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(json!("C1")),
            Just(json!("C2")),
            Just(json!(1)),
            Just(Value::Null),
            Just(json!(true)),
        ]
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("orders"),
            Just("Orders"),
            Just("customer_id"),
            Just("CUSTOMER_ID"),
            Just("x"),
        ]
        .prop_map(String::from)
    }

    /// Any small document over the keys that matter.
    fn any_doc() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(key(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A page shaped as the owner path expects, each element's owner chosen at random.
    fn page() -> impl Strategy<Value = Value> {
        let element = (
            prop_oneof![Just(Some("C1")), Just(Some("C2")), Just(None)],
            any_doc(),
        )
            .prop_map(|(owner, x)| match owner {
                Some(o) => json!({"customer_id": o, "x": x}),
                None => json!({"x": x}),
            });
        proptest::collection::vec(element, 0..5).prop_map(|orders| json!({"orders": orders}))
    }

    /// The values under every key of `v` that folds to `name`.
    fn under<'v>(v: &'v Value, name: &str) -> Option<Vec<&'v Value>> {
        let Value::Object(map) = v else { return None };
        let found: Vec<&Value> = map
            .iter()
            .filter(|(k, _)| k.to_ascii_lowercase() == name)
            .map(|(_, v)| v)
            .collect();
        (!found.is_empty()).then_some(found)
    }

    /// `orders[].customer_id` holds for `C1`, read straight off the parsed document.
    fn reference_holds(doc: &Value) -> bool {
        let element_holds = |e: &Value| {
            under(e, "customer_id").is_some_and(|ids| ids.iter().all(|id| **id == json!("C1")))
        };
        under(doc, "orders").is_some_and(|all| {
            all.iter().all(|orders| match orders {
                Value::Array(items) => items.iter().all(element_holds),
                _ => false,
            })
        })
    }

    fn reference_records(doc: &Value) -> Option<u64> {
        under(doc, "orders")?
            .iter()
            .filter_map(|o| o.as_array().map(|a| a.len() as u64))
            .reduce(|a, b| a + b)
    }

    proptest! {
        /// Alone or inside any view, the pass reaches the verdict and count the parsed document
        /// gives, and watching never changes what the view shows.
        #[test]
        fn the_pass_agrees_with_the_parsed_document(doc in prop_oneof![any_doc(), page()]) {
            let w = Watch::new(
                &[FieldPath::parse("orders[].customer_id").unwrap()],
                Some(&FieldPath::parse("orders").unwrap()),
            );
            let sought = vec![Some(vec![Cow::Borrowed("C1")])];
            let bytes = serde_json::to_vec(&doc).unwrap();
            let expected = (reference_holds(&doc), reference_records(&doc));
            let mut probe = Probe::new(&sought, true);
            inspect(&bytes, &w, &mut probe).unwrap();
            prop_assert_eq!((probe.owners_hold(), probe.records()), expected, "{}", doc);
            let views = [
                view(&["*"], &[], &[]),
                view(&["orders[].x"], &[], &[]),
                view(&["x"], &[], &[]),
                view(&["*"], &["orders"], &[]),
                view(&["*"], &["*"], &[]),
                view(&["*"], &[], &[("orders[].customer_id", "hide"), ("x", "phone")]),
                view(&["orders[]"], &["orders[].x"], &[("orders[]", "name")]),
            ];
            for (i, v) in views.iter().enumerate() {
                for error in [false, true] {
                    let mut probe = Probe::new(&sought, true);
                    let watched = v.apply_watching(&bytes, error, &w, &mut probe).unwrap();
                    prop_assert_eq!(
                        (probe.owners_hold(), probe.records()),
                        expected,
                        "view {} on {}",
                        i,
                        doc
                    );
                    let plain = if error { v.apply_error_bytes(&bytes) } else { v.apply_bytes(&bytes) }.unwrap();
                    prop_assert_eq!(
                        serde_json::from_slice::<Value>(&watched).unwrap(),
                        serde_json::from_slice::<Value>(&plain).unwrap(),
                        "view {} on {}",
                        i,
                        doc
                    );
                }
            }
        }
    }
}
