//! Stage 7, validation: the route's parameters, typed and whitelisted. Refuses with 400
//! `invalid_parameter`, listing every violation in `errors`: unknown or repeated parameters,
//! malformed encoding or UTF-8, control characters, values over `max_length` or failing their
//! type, `pattern`, `min`/`max` or `values`, missing required ones, failed constraints.
//!
//! Adds to the context: the validated values. The upstream query string is **rebuilt** from them
//! (`forward_params` first, then declared parameters in declared order, defaults filled in,
//! canonical encoding), never copied from the client. The owner binding is confirmed on those
//! values (`owner.rs`): 403 `owner_mismatch` when the id sent would differ from the one checked.

pub mod body;
mod owner;
pub mod schema;

use std::sync::Arc;

use crate::vocab::cause::ParamFailure;
use crate::vocab::error::{GatewayError, ParamError};
use crate::vocab::percent;
use crate::vocab::query::{self, RawQuery};
pub use owner::confirm_owner;
pub use schema::{ParamSchema, Value};

/// A cross-parameter rule.
#[derive(Debug, Clone)]
pub enum Constraint {
    /// `from` ≤ `to`, and `to − from` ≤ `max_days` days.
    DateRange {
        /// The earlier date parameter.
        from: Arc<str>,
        /// The later date parameter.
        to: Arc<str>,
        /// The longest span allowed, if bounded.
        max_days: Option<u32>,
    },
}

/// A route's parameter rules, compiled once.
#[derive(Debug, Clone, Default)]
pub struct RouteParams {
    /// Path parameters, in template order.
    pub path: Vec<ParamSchema>,
    /// Query parameters, in declared order.
    pub query: Vec<ParamSchema>,
    /// Cross-parameter rules, checked after each parameter passed.
    pub constraints: Vec<Constraint>,
    /// `(path parameter, upstream query name)`, sent before the query parameters.
    pub forward_params: Vec<(Arc<str>, Arc<str>)>,
}

/// The values that passed validation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Validated {
    /// Path parameters, in template order.
    pub path: Vec<(Arc<str>, Value)>,
    /// Query parameters, defaults included, in declared order.
    pub query: Vec<(Arc<str>, Value)>,
}

impl Validated {
    /// A validated value by name, path parameters first.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.path
            .iter()
            .chain(&self.query)
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| v)
    }

    /// The upstream query string (without `?`), rebuilt from validated values.
    pub fn upstream_query(&self, params: &RouteParams) -> String {
        let mut out = String::new();
        let mut text = String::new();
        let forwarded = params.forward_params.iter().filter_map(|(from, to)| {
            self.path
                .iter()
                .find(|(n, _)| n == from)
                .map(|(_, v)| (to, v))
        });
        for (name, value) in forwarded.chain(self.query.iter().map(|(n, v)| (n, v))) {
            if !out.is_empty() {
                out.push('&');
            }
            percent::encode_into(name, &mut out);
            out.push('=');
            text.clear();
            value.write_canonical(&mut text);
            percent::encode_into(&text, &mut out);
        }
        out
    }
}

/// Validates the path parameters and the query of one request.
pub fn validate(
    params: &RouteParams,
    path_values: &[(Arc<str>, String)],
    raw: &RawQuery,
) -> Result<Validated, GatewayError> {
    let mut errors: Vec<ParamError> = raw.errors.clone();
    let mut validated = Validated::default();
    for schema in &params.path {
        let value = path_values.iter().find(|(n, _)| *n == schema.name);
        match value.map(|(_, v)| schema.check(v)) {
            Some(Ok(v)) => validated.path.push((schema.name.clone(), v)),
            Some(Err(reason)) => errors.push(ParamError {
                param: schema.name.to_string(),
                reason,
            }),
            None => errors.push(ParamError {
                param: schema.name.to_string(),
                reason: "is required".into(),
            }),
        }
    }
    for (name, _) in &raw.pairs {
        if !params.query.iter().any(|s| *s.name == **name) {
            errors.push(ParamError {
                param: query::echo_name(name),
                reason: "unknown parameter".into(),
            });
        }
    }
    for schema in &params.query {
        let repeated_or_malformed = raw.errors.iter().any(|e| *e.param == *schema.name);
        match raw.get(&schema.name) {
            Some(text) => match schema.check(text) {
                Ok(v) => validated.query.push((schema.name.clone(), v)),
                Err(reason) => errors.push(ParamError {
                    param: schema.name.to_string(),
                    reason,
                }),
            },
            None if repeated_or_malformed => {}
            None => match &schema.default {
                Some(default) => validated.query.push((schema.name.clone(), default.clone())),
                None if schema.required => errors.push(ParamError {
                    param: schema.name.to_string(),
                    reason: "is required".into(),
                }),
                None => {}
            },
        }
    }
    for constraint in &params.constraints {
        match constraint {
            Constraint::DateRange { from, to, max_days } => {
                let (Some(start), Some(end)) = (
                    validated.get(from).and_then(Value::as_date),
                    validated.get(to).and_then(Value::as_date),
                ) else {
                    continue;
                };
                if start > end {
                    errors.push(ParamError {
                        param: to.to_string(),
                        reason: format!("must not be before {from}"),
                    });
                } else if let Some(max) = max_days
                    && (end - start).num_days() > i64::from(*max)
                {
                    errors.push(ParamError {
                        param: to.to_string(),
                        reason: format!("range exceeds {max} days"),
                    });
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(validated)
    } else {
        let cause = classify(&errors);
        bound_listing(&mut errors);
        Err(GatewayError::InvalidParameter { errors, cause })
    }
}

/// At most this many violations are listed in a 400; the rest are counted in a last entry. A
/// query of 3,000 unknown parameters would otherwise buy a 140 KB answer for a 16 KB request.
pub const MAX_LISTED_ERRORS: usize = 20;

/// Keeps the first violations and replaces the rest by one `{"param": "*", "reason": "N more
/// violations not listed"}`.
fn bound_listing(errors: &mut Vec<ParamError>) {
    if errors.len() > MAX_LISTED_ERRORS {
        let more = errors.len() - (MAX_LISTED_ERRORS - 1);
        errors.truncate(MAX_LISTED_ERRORS - 1);
        errors.push(ParamError {
            param: "*".to_owned(),
            reason: format!("{more} more violations not listed"),
        });
    }
}

/// One machine code for the audit record, the most telling violation first.
fn classify(errors: &[ParamError]) -> ParamFailure {
    let any = |needle: &str| errors.iter().any(|e| e.reason.contains(needle));
    if any("unknown parameter") {
        ParamFailure::UnknownParameter
    } else if any("repeated parameter") {
        ParamFailure::RepeatedParameter
    } else if any("percent-encoding")
        || any("UTF-8")
        || any("control character")
        || any("`=`")
        || any("empty parameter")
    {
        ParamFailure::MalformedQuery
    } else if any("is required") {
        ParamFailure::MissingParameter
    } else if any("range exceeds") || any("must not be before") {
        ParamFailure::ConstraintFailed
    } else {
        ParamFailure::InvalidValue
    }
}

#[cfg(test)]
mod tests;
