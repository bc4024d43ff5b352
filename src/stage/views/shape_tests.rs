//! Views fail closed on shape (issue 10, item 5): deny and mask follow their key where the answer
//! departs from the rule's path, in error answers anywhere, and whatever the key's case.

use super::tests::view;
use super::*;
use proptest::prelude::*;
use serde_json::json;

/// The customer-service view of the test policy.
fn contact() -> CompiledView {
    view(
        &["*"],
        &["orders[].payment"],
        &[
            ("orders[].customer.phone", "phone"),
            ("orders[].customer.email", "email"),
        ],
    )
}

/// The logistics view: an allowed subtree with a masked child.
fn shipping() -> CompiledView {
    view(
        &["orders[].order_id", "orders[].shipping"],
        &[],
        &[("orders[].shipping.phone", "phone")],
    )
}

const PHONE: &str = "13812345678";
const CARD: &str = "6222021234567890128";

fn run(view: &CompiledView, document: &Value) -> String {
    let bytes = serde_json::to_vec(document).unwrap();
    String::from_utf8(view.apply_bytes(&bytes).unwrap()).unwrap()
}

fn run_error(view: &CompiledView, document: &Value) -> String {
    let bytes = serde_json::to_vec(document).unwrap();
    String::from_utf8(view.apply_error_bytes(&bytes).unwrap()).unwrap()
}

#[test]
fn an_object_where_the_path_expects_an_array_is_still_filtered() {
    let out = run(
        &contact(),
        &json!({"orders": {"O1": {"status": "paid", "payment": {"card": CARD},
                                  "customer": {"phone": PHONE}}}}),
    );
    assert_eq!(
        out,
        r#"{"orders":{"O1":{"status":"paid","customer":{"phone":"138****5678"}}}}"#
    );
    let single = run(
        &contact(),
        &json!({"orders": {"payment": {"card": CARD}, "customer": {"phone": PHONE}}}),
    );
    assert_eq!(single, r#"{"orders":{"customer":{"phone":"138****5678"}}}"#);
}

#[test]
fn an_array_where_the_path_expects_an_object_is_still_filtered() {
    let out = run(
        &contact(),
        &json!({"orders": [{"customer": [{"phone": PHONE}, {"email": "zhang@example.com"}]},
                           [{"payment": {"card": CARD}, "id": 1}]]}),
    );
    assert_eq!(
        out,
        r#"{"orders":[{"customer":[{"phone":"138****5678"},{"email":"z***@example.com"}]},[{"id":1}]]}"#
    );
}

#[test]
fn an_allowed_subtree_arriving_as_an_array_still_masks_its_child() {
    let out = run(
        &shipping(),
        &json!({"orders": [{"order_id": "O1",
                            "shipping": [{"phone": "13987654321", "carrier": "SF"}]}]}),
    );
    assert_eq!(
        out,
        r#"{"orders":[{"order_id":"O1","shipping":[{"phone":"139****4321","carrier":"SF"}]}]}"#
    );
}

#[test]
fn well_shaped_answers_are_filtered_as_before() {
    let out = run(
        &contact(),
        &json!({"orders": [{"customer": {"phone": PHONE}, "shipping": {"phone": "13987654321"},
                            "payment": {"card": CARD}}]}),
    );
    assert_eq!(
        out,
        r#"{"orders":[{"customer":{"phone":"138****5678"},"shipping":{"phone":"13987654321"}}]}"#,
        "a sibling the view does not name is another field"
    );
}

#[test]
fn error_answers_apply_every_rule_by_key_anywhere() {
    let problem = json!({"type": "about:blank", "title": "conflict", "status": 409,
                         "customer": {"phone": PHONE}, "payment": {"card": CARD},
                         "errors": [{"order": {"Payment": CARD, "phone": PHONE}}]});
    assert_eq!(
        run_error(&contact(), &problem),
        r#"{"type":"about:blank","title":"conflict","status":409,"customer":{"phone":"138****5678"},"errors":[{"order":{"phone":"138****5678"}}]}"#
    );
    let plain = view(&["*"], &[], &[]);
    assert_eq!(
        run_error(&plain, &problem),
        serde_json::to_string(&problem).unwrap(),
        "a view without rules has nothing to apply"
    );
}

#[test]
fn rule_keys_match_whatever_their_case() {
    let out = run(
        &contact(),
        &json!({"Orders": [{"PAYMENT": {"card": CARD}, "Customer": {"Phone": PHONE, "pHoNe": PHONE}}]}),
    );
    assert_eq!(
        out,
        r#"{"Orders":[{"Customer":{"Phone":"138****5678","pHoNe":"138****5678"}}]}"#
    );
    let allow = view(&["orders[].order_id"], &[], &[]);
    assert_eq!(
        run(&allow, &json!({"ORDERS": [{"Order_ID": "O1", "x": 1}]})),
        r#"{"ORDERS":[{"Order_ID":"O1"}]}"#,
        "allow matches case variants too"
    );
    let upper = view(&["*"], &["Orders[].Payment"], &[]);
    assert_eq!(
        run(&upper, &json!({"orders": [{"payment": 1, "id": 2}]})),
        r#"{"orders":[{"id":2}]}"#,
        "rule keys are folded as well"
    );
}

#[test]
fn look_alike_keys_fold_to_the_rule_key() {
    assert_eq!(fold_key("phone"), "phone");
    assert!(matches!(fold_key("phone"), Cow::Borrowed(_)));
    assert_eq!(fold_key("PHONE"), "phone");
    assert_eq!(fold_key("addreſſ"), "address", "long s, as Go folds it");
    assert_eq!(fold_key("\u{212A}ey"), "key", "Kelvin sign");
    assert_eq!(fold_key("ｐｈｏｎｅ"), "phone", "full-width");
    assert_eq!(fold_key("ＰＨＯＮＥ"), "phone");
    assert_eq!(fold_key("ΦΩΝΗ"), "φωνη");
    let out = run(
        &view(&["*"], &["shipping.address"], &[]),
        &json!({"shipping": {"addreſſ": "1 Road", "ａｄｄｒｅｓｓ": "2 Road", "city": "x"}}),
    );
    assert_eq!(out, r#"{"shipping":{"city":"x"}}"#);
}

#[test]
fn a_rule_on_elements_applies_to_a_value_that_is_not_an_array() {
    let v = view(&["*"], &["tags[]"], &[("codes[]", "phone")]);
    assert_eq!(
        run(
            &v,
            &json!({"tags": {"a": "secret"}, "codes": PHONE, "other": [1]})
        ),
        r#"{"codes":"138****5678","other":[1]}"#
    );
    assert_eq!(
        run(&v, &json!({"tags": "secret", "codes": {"x": PHONE}})),
        r#"{"codes":null}"#
    );
    assert_eq!(
        run(&v, &json!({"tags": ["a", "b"], "codes": [PHONE]})),
        r#"{"tags":[],"codes":["138****5678"]}"#
    );
}

#[test]
fn a_mask_on_the_whole_document_hides_it() {
    let v = view(&["*"], &[], &[("*", "phone")]);
    assert_eq!(run(&v, &json!({"phone": PHONE})), "{}");
    assert_eq!(run_error(&v, &json!({"phone": PHONE})), "{}");
}

/// Random bytes steering how a document is built.
struct Choices(std::vec::IntoIter<u8>);

impl Choices {
    fn next(&mut self) -> u8 {
        self.0.next().unwrap_or(0)
    }
}

/// `key` in a random spelling: case flipped per character, sometimes full-width.
fn spell(key: &str, c: &mut Choices) -> String {
    let wide = c.next().is_multiple_of(5);
    key.chars()
        .map(|ch| {
            let ch = if c.next().is_multiple_of(2) {
                ch.to_ascii_uppercase()
            } else {
                ch
            };
            match (wide, ch.is_ascii_alphabetic()) {
                (true, true) => char::from_u32(u32::from(ch) + 0xFEE0).unwrap_or(ch),
                _ => ch,
            }
        })
        .collect()
}

/// Some noise beside the interesting member.
fn noise(c: &mut Choices) -> Value {
    match c.next() % 4 {
        0 => json!(1),
        1 => json!("x"),
        2 => json!({"n": null}),
        _ => json!([true]),
    }
}

/// Any nesting at all, ending in `{key: secret}`.
fn anywhere(key: &str, secret: &Value, depth: u8, c: &mut Choices) -> Value {
    if depth == 0 || c.next().is_multiple_of(3) {
        return json!({ spell(key, c): secret, "z": noise(c) });
    }
    let inner = anywhere(key, secret, depth - 1, c);
    match c.next() % 3 {
        0 => json!([noise(c), inner]),
        1 => json!({ "w": inner }),
        _ => json!({ "orders": inner, "a": noise(c) }),
    }
}

/// A document holding `secret` under the rule's key along `steps`, at each step either in the
/// shape the path expects or departing from it (after which anything goes).
fn along(steps: &[Step], secret: &Value, c: &mut Choices) -> Value {
    let key = match steps.iter().rev().find_map(|s| match s {
        Step::Key(k) => Some(k.as_str()),
        Step::Each => None,
    }) {
        Some(k) => k,
        None => return secret.clone(),
    };
    match steps.split_first() {
        None => secret.clone(),
        Some(_) if c.next().is_multiple_of(4) => {
            // Depart here: the other kind of container, then any nesting.
            let inner = anywhere(key, secret, 3, c);
            match steps.first() {
                Some(Step::Each) => json!({ "k": inner }),
                _ => json!([inner]),
            }
        }
        Some((Step::Key(k), rest)) => {
            json!({ "s": noise(c), spell(k, c): along(rest, secret, c) })
        }
        Some((Step::Each, rest)) => json!([noise(c), along(rest, secret, c)]),
    }
}

fn secret_value(c: &mut Choices) -> Value {
    match c.next() % 3 {
        0 => json!(PHONE),
        1 => json!(13812345678u64),
        _ => json!({ "card": CARD, "phone": PHONE }),
    }
}

fn leaks(out: &str) -> bool {
    out.contains(PHONE) || out.contains(CARD)
}

proptest! {
    #[test]
    fn a_denied_or_masked_key_along_its_path_never_shows_its_value(
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
        rule in 0usize..3,
    ) {
        let mut c = Choices(bytes.into_iter());
        let (view, path) = match rule {
            0 => (contact(), "orders[].customer.phone"),
            1 => (contact(), "orders[].payment"),
            _ => (shipping(), "orders[].shipping.phone"),
        };
        let steps = FieldPath::parse(path).unwrap().0;
        let secret = secret_value(&mut c);
        let document = along(&steps, &secret, &mut c);
        let out = run(&view, &document);
        prop_assert!(!leaks(&out), "{document} -> {out}");
        prop_assert!(serde_json::from_str::<Value>(&out).is_ok());
    }

    #[test]
    fn in_an_error_answer_a_rule_key_anywhere_never_shows_its_value(
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
        phone in any::<bool>(),
    ) {
        let mut c = Choices(bytes.into_iter());
        let secret = secret_value(&mut c);
        let key = if phone { "phone" } else { "payment" };
        let document = anywhere(key, &secret, 4, &mut c);
        let out = run_error(&contact(), &document);
        prop_assert!(!leaks(&out), "{document} -> {out}");
    }
}
