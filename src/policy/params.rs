//! `[routes.params.*]` and `[routes.query.*]`: one parameter's schema compiled from the file,
//! every problem reported at its key.

use crate::config::problems::{KeyPath, Problems};
use std::sync::Arc;

use crate::config::raw;
use crate::stage::validate::schema::*;

/// Compiles one parameter's schema, reporting every problem at `at`.
pub fn compile(
    name: &str,
    raw: &raw::Param,
    at: &KeyPath,
    problems: &mut Problems,
) -> Option<ParamSchema> {
    let before = problems.len();
    let bad =
        |problems: &mut Problems, key: &str, message: String| problems.at(&at.k(key), message);
    use raw::ParamType as T;
    let only_for =
        |problems: &mut Problems, key: &str, present: bool, allowed: bool, types: &str| {
            if present && !allowed {
                bad(
                    problems,
                    key,
                    format!("`{key}` applies only to {types} parameters"),
                );
            }
        };
    only_for(
        problems,
        "pattern",
        raw.pattern.is_some(),
        raw.kind == T::String,
        "string",
    );
    only_for(
        problems,
        "min",
        raw.min.is_some(),
        matches!(raw.kind, T::Integer | T::Number),
        "integer and number",
    );
    only_for(
        problems,
        "max",
        raw.max.is_some(),
        matches!(raw.kind, T::Integer | T::Number),
        "integer and number",
    );
    only_for(
        problems,
        "values",
        raw.values.is_some(),
        raw.kind == T::Enum,
        "enum",
    );
    let int_bound = |problems: &mut Problems, key: &str, n: Option<raw::Number>| match n {
        Some(raw::Number::Integer(i)) => Some(i),
        Some(raw::Number::Float(_)) => {
            bad(
                problems,
                key,
                format!("`{key}` of an integer parameter must be a whole number"),
            );
            None
        }
        None => None,
    };
    let kind = match raw.kind {
        T::String => {
            let pattern = match &raw.pattern {
                // Patterns must match the whole value: an unanchored `[0-9]+` would accept
                // `1; DROP TABLE orders`.
                Some(p) => match regex::RegexBuilder::new(&format!("^(?:{p})$"))
                    .size_limit(1 << 20)
                    .build()
                {
                    Ok(r) => Some(r),
                    Err(e) => {
                        let first = e
                            .to_string()
                            .lines()
                            .last()
                            .unwrap_or("invalid")
                            .trim()
                            .to_owned();
                        bad(
                            problems,
                            "pattern",
                            format!("invalid regular expression: {first}"),
                        );
                        None
                    }
                },
                None => None,
            };
            Kind::String { pattern }
        }
        T::Integer => Kind::Integer {
            min: int_bound(problems, "min", raw.min),
            max: int_bound(problems, "max", raw.max),
        },
        T::Number => Kind::Number {
            min: raw.min.map(raw::Number::as_f64),
            max: raw.max.map(raw::Number::as_f64),
        },
        T::Boolean => Kind::Boolean,
        T::Date => Kind::Date,
        T::Datetime => Kind::Datetime,
        T::Enum => match &raw.values {
            Some(values) if !values.is_empty() => Kind::Enum {
                values: values.clone(),
            },
            _ => {
                bad(
                    problems,
                    "type",
                    "an enum parameter needs a non-empty `values` list".to_owned(),
                );
                Kind::Enum { values: Vec::new() }
            }
        },
    };
    if let (Some(min), Some(max)) = (raw.min, raw.max)
        && min.as_f64() > max.as_f64()
    {
        bad(
            problems,
            "min",
            format!(
                "`min` ({}) is greater than `max` ({})",
                min.as_f64(),
                max.as_f64()
            ),
        );
    }
    let min_length = raw.min_length.unwrap_or(0) as usize;
    let max_length = raw
        .max_length
        .map(|m| m as usize)
        .unwrap_or(DEFAULT_MAX_LENGTH);
    if min_length > max_length {
        bad(
            problems,
            "min_length",
            format!("`min_length` ({min_length}) is greater than `max_length` ({max_length})"),
        );
    }
    let mut schema = ParamSchema {
        name: Arc::from(name),
        kind,
        required: raw.required,
        default: None,
        min_length,
        max_length,
        description: raw.description.clone(),
        pattern_source: raw.pattern.clone(),
    };
    if let Some(default) = &raw.default {
        if raw.required {
            bad(
                problems,
                "default",
                "a required parameter cannot have a `default`".to_owned(),
            );
        }
        let text = match default {
            toml::Value::String(s) => Some(s.clone()),
            toml::Value::Integer(i) => Some(i.to_string()),
            toml::Value::Float(f) => Some(f.to_string()),
            toml::Value::Boolean(b) => Some(b.to_string()),
            _ => None,
        };
        match text.map(|t| schema.check(&t)) {
            Some(Ok(value)) => schema.default = Some(value),
            Some(Err(reason)) => bad(
                problems,
                "default",
                format!("`default` fails its own schema: it {reason}"),
            ),
            None => bad(
                problems,
                "default",
                "`default` must be a string, number or boolean".to_owned(),
            ),
        }
    }
    (problems.len() == before).then_some(schema)
}
