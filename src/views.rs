//! Response views (stage 11): what each caller may see of a JSON answer. Compiled once from
//! `[[routes.response.views]]`; applied as `allow` (keep only these paths), then `deny` (remove
//! these), then `mask` (rewrite these values with a masker). Paths: `a.b`, `list[].field`, `*`.
//! A path that does not fit the document's shape selects nothing: allow keeps nothing there,
//! deny and mask have nothing to do.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::scopes::ScopeSet;

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
}

/// The allowed paths as a tree.
#[derive(Debug, Clone, Default)]
struct AllowTree {
    all: bool,
    keys: HashMap<String, AllowTree>,
    each: Option<Box<AllowTree>>,
}

impl AllowTree {
    fn insert(&mut self, steps: &[Step]) {
        let Some((first, rest)) = steps.split_first() else {
            self.all = true;
            return;
        };
        let child = match first {
            Step::Key(k) => self.keys.entry(k.clone()).or_default(),
            Step::Each => self.each.get_or_insert_with(Default::default),
        };
        child.insert(rest);
    }

    /// Keeps only what the tree allows; `None` drops the value.
    fn filter(&self, value: Value) -> Option<Value> {
        if self.all {
            return Some(value);
        }
        match value {
            Value::Object(map) if !self.keys.is_empty() => {
                // Walk the document's own keys so the answer keeps the upstream's field order.
                let mut out = Map::with_capacity(self.keys.len());
                for (key, value) in map {
                    if let Some(v) = self.keys.get(&key).and_then(|child| child.filter(value)) {
                        out.insert(key, v);
                    }
                }
                Some(Value::Object(out))
            }
            Value::Array(items) => {
                let each = self.each.as_ref()?;
                Some(Value::Array(
                    items.into_iter().filter_map(|v| each.filter(v)).collect(),
                ))
            }
            _ => None,
        }
    }
}

/// A masker (CONTRACT.md §2.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Masker {
    /// 138****5678: first 3 and last 4 digits.
    Phone,
    /// a***@example.com
    Email,
    /// First 6 and last 4 characters.
    IdNumber,
    /// Last 4 digits.
    BankCard,
    /// First character.
    Name,
    /// The value becomes null; the key stays.
    Hide,
}

impl Masker {
    /// Parses a masker name.
    pub fn parse(name: &str) -> Result<Self, String> {
        Ok(match name {
            "phone" => Masker::Phone,
            "email" => Masker::Email,
            "id_number" => Masker::IdNumber,
            "bank_card" => Masker::BankCard,
            "name" => Masker::Name,
            "hide" => Masker::Hide,
            other => {
                return Err(format!(
                    "unknown masker `{other}` (use phone, email, id_number, bank_card, name, hide)"
                ));
            }
        })
    }

    /// Masks a text value.
    pub fn mask(self, text: &str) -> String {
        match self {
            Masker::Phone => mask_phone(text),
            Masker::Email => mask_email(text),
            Masker::IdNumber => {
                let chars: Vec<char> = text.chars().collect();
                if chars.len() < 11 {
                    return "*".repeat(chars.len().max(4));
                }
                let n = chars.len();
                chars[..6]
                    .iter()
                    .chain(std::iter::repeat_n(&'*', n - 10))
                    .chain(&chars[n - 4..])
                    .collect()
            }
            Masker::BankCard => {
                let digits: Vec<char> = text.chars().filter(char::is_ascii_digit).collect();
                if digits.len() < 8 {
                    return "****".into();
                }
                let n = digits.len();
                std::iter::repeat_n('*', n - 4)
                    .chain(digits[n - 4..].iter().copied())
                    .collect()
            }
            Masker::Name => {
                let mut chars = text.chars();
                match chars.next() {
                    Some(first) => std::iter::once(first).chain(chars.map(|_| '*')).collect(),
                    None => String::new(),
                }
            }
            Masker::Hide => String::new(),
        }
    }

    fn apply(self, value: &mut Value) {
        *value = match (self, &*value) {
            (_, Value::Null) => Value::Null,
            (Masker::Hide, _) => Value::Null,
            (_, Value::String(s)) => Value::String(self.mask(s)),
            (_, Value::Number(n)) => Value::String(self.mask(&n.to_string())),
            // A structure cannot be masked character by character: hide it (fail closed).
            _ => Value::Null,
        };
    }
}

/// First 3 and last 4 digits, e.g. `138****5678`; shorter numbers are fully hidden.
pub fn mask_phone(text: &str) -> String {
    let digits: Vec<char> = text.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 8 {
        return "****".into();
    }
    let n = digits.len();
    digits[..3]
        .iter()
        .chain(&['*'; 4])
        .chain(&digits[n - 4..])
        .collect()
}

/// First character of the local part, then `***@` and the domain.
pub fn mask_email(text: &str) -> String {
    match text.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() => {
            let first = local.chars().next().unwrap_or('*');
            format!("{first}***@{domain}")
        }
        _ => "***".into(),
    }
}

/// A view, compiled.
#[derive(Debug, Clone)]
pub struct CompiledView {
    /// The scope as written, for metrics and documentation.
    pub scope_name: Arc<str>,
    /// The one scope this view is for.
    pub scope: ScopeSet,
    allow: AllowTree,
    deny: Vec<FieldPath>,
    mask: Vec<(FieldPath, Masker)>,
}

impl CompiledView {
    /// Builds a view from parsed parts.
    pub fn new(
        scope_name: Arc<str>,
        scope: ScopeSet,
        allow: &[FieldPath],
        deny: Vec<FieldPath>,
        mask: Vec<(FieldPath, Masker)>,
    ) -> Self {
        let mut tree = AllowTree::default();
        for path in allow {
            tree.insert(&path.0);
        }
        Self {
            scope_name,
            scope,
            allow: tree,
            deny,
            mask,
        }
    }

    /// Applies allow, deny and mask to a document.
    pub fn apply(&self, document: Value) -> Value {
        let mut out = self
            .allow
            .filter(document)
            .unwrap_or_else(|| Value::Object(Map::new()));
        for path in &self.deny {
            if path.0.is_empty() {
                out = Value::Object(Map::new());
            } else {
                visit(&mut out, &path.0, &mut |parent, key| {
                    parent.remove(key);
                });
            }
        }
        for (path, masker) in &self.mask {
            visit(&mut out, &path.0, &mut |parent, key| {
                if let Some(v) = parent.get_mut(key) {
                    masker.apply(v);
                }
            });
        }
        out
    }
}

/// Calls `f(parent, last_key)` for every place `steps` reaches.
fn visit(value: &mut Value, steps: &[Step], f: &mut dyn FnMut(&mut Map<String, Value>, &str)) {
    match steps {
        [] => {}
        [Step::Key(last)] => {
            if let Value::Object(map) = value {
                f(map, last);
            }
        }
        [Step::Key(k), rest @ ..] => {
            if let Some(child) = value.as_object_mut().and_then(|m| m.get_mut(k)) {
                visit(child, rest, f);
            }
        }
        [Step::Each, rest @ ..] => {
            if let Value::Array(items) = value {
                for item in items {
                    visit(item, rest, f);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn view(allow: &[&str], deny: &[&str], mask: &[(&str, &str)]) -> CompiledView {
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
