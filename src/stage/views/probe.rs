//! What a view does to one field, found by running the view itself: a document holding a probe
//! value at the field's path goes through [`CompiledView::apply_bytes`] (the filter the gateway
//! runs on answers), and what comes out at that path says whether the field is shown, masked
//! (the masker is recognised by its output) or removed. `ordergate explain` and `diff` use this,
//! so they cannot disagree with the gateway about a field.

use serde_json::{Map, Value};

use super::{CompiledView, FieldPath, Step};
use crate::vocab::mask::Masker;

/// The probe value: every masker turns it into a different text (pinned by a test).
const PROBE: &str = "13812345678";

/// The key that stands for "a field the view does not name" when the path is `*`.
const OTHER_FIELD: &str = "ordergate_probe_unnamed_field";

/// Every masker, in the order they are recognised.
const MASKERS: [Masker; 6] = [
    Masker::Hide,
    Masker::Phone,
    Masker::Email,
    Masker::IdNumber,
    Masker::BankCard,
    Masker::Name,
];

/// What a view does to a field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The value goes out as it is.
    Shown,
    /// The value goes out through this masker.
    Masked(Masker),
    /// The value is changed in a way no single masker explains.
    Altered,
    /// The value does not go out.
    Removed,
}

/// Runs `view` on a document that holds the probe at `field`, and reads what came out there.
pub fn probe(view: &CompiledView, field: &FieldPath) -> Seen {
    let steps: Vec<Step> = if field.0.is_empty() {
        vec![Step::Key(OTHER_FIELD.to_owned())]
    } else {
        field.0.clone()
    };
    let mut document = Value::String(PROBE.to_owned());
    for step in steps.iter().rev() {
        document = match step {
            Step::Key(k) => {
                let mut map = Map::new();
                map.insert(k.clone(), document);
                Value::Object(map)
            }
            Step::Each => Value::Array(vec![document]),
        };
    }
    let Ok(bytes) = serde_json::to_vec(&document) else {
        return Seen::Removed;
    };
    let Some(out) = view
        .apply_bytes(&bytes)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    else {
        return Seen::Removed;
    };
    let mut at = &out;
    for step in &steps {
        let next = match step {
            Step::Key(k) => at.get(k.as_str()),
            Step::Each => at.get(0),
        };
        match next {
            Some(v) => at = v,
            None => return Seen::Removed,
        }
    }
    if *at == Value::String(PROBE.to_owned()) {
        return Seen::Shown;
    }
    MASKERS
        .into_iter()
        .find(|m| {
            let mut expected = Value::String(PROBE.to_owned());
            m.apply(&mut expected);
            expected == *at
        })
        .map_or(Seen::Altered, Seen::Masked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::views::tests::view;

    #[test]
    fn every_masker_is_told_apart_by_the_probe() {
        let outputs: Vec<Value> = MASKERS
            .iter()
            .map(|m| {
                let mut v = Value::String(PROBE.to_owned());
                m.apply(&mut v);
                v
            })
            .collect();
        for (i, a) in outputs.iter().enumerate() {
            assert_ne!(*a, Value::String(PROBE.to_owned()), "{:?}", MASKERS[i]);
            for b in &outputs[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn the_probe_reads_what_the_filter_does() {
        let path = |p: &str| FieldPath::parse(p).unwrap();
        let v = view(
            &["orders[].customer", "orders[].status"],
            &["orders[].customer.id_number"],
            &[
                ("orders[].customer.phone", "phone"),
                ("orders[].customer.name", "hide"),
            ],
        );
        assert_eq!(probe(&v, &path("orders[].status")), Seen::Shown);
        assert_eq!(
            probe(&v, &path("orders[].customer.phone")),
            Seen::Masked(Masker::Phone)
        );
        assert_eq!(
            probe(&v, &path("orders[].customer.name")),
            Seen::Masked(Masker::Hide)
        );
        assert_eq!(
            probe(&v, &path("orders[].customer.id_number")),
            Seen::Removed
        );
        assert_eq!(probe(&v, &path("orders[].payment")), Seen::Removed);
        assert_eq!(probe(&v, &path("*")), Seen::Removed);
        assert_eq!(probe(&view(&["*"], &[], &[]), &path("*")), Seen::Shown);
        assert_eq!(
            probe(&view(&["*"], &[], &[("Phone", "email")]), &path("phone")),
            Seen::Masked(Masker::Email),
            "keys match folded, as on answers"
        );
    }

    proptest::proptest! {
        /// `explain` and `diff` print paths with `Display`: what they print parses back.
        #[test]
        fn field_paths_print_as_they_parse(text in "[a-z_]{1,5}(\\[\\])?(\\.[a-z_]{1,5}(\\[\\])?){0,3}|\\*") {
            let path = FieldPath::parse(&text).unwrap();
            proptest::prop_assert_eq!(path.to_string(), text.clone());
            proptest::prop_assert_eq!(FieldPath::parse(&path.to_string()).unwrap(), path);
        }
    }
}
