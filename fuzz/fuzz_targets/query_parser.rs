//! The strict query parser and validator on arbitrary bytes: never panics, and whatever it
//! accepts re-validates to the same values from the canonical query it writes.
#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use ordergate::config::problems::{KeyPath, Problems};
use ordergate::config::raw;
use ordergate::stage::validate::{RouteParams, schema, validate};
use ordergate::vocab::query;

static PARAMS: LazyLock<RouteParams> = LazyLock::new(|| {
    let text = r#"
        [start_date]
        type = "date"
        required = true
        [end_date]
        type = "date"
        [status]
        type = "enum"
        values = ["pending", "paid", "shipped"]
        [page_size]
        type = "integer"
        min = 1
        max = 100
        default = 20
        [cursor]
        type = "string"
        pattern = "^[A-Za-z0-9_-]{1,64}$"
        [amount]
        type = "number"
        [since]
        type = "datetime"
        [flag]
        type = "boolean"
    "#;
    let raw: indexmap::IndexMap<String, raw::Param> = toml::from_str(text).expect("fixture");
    let mut problems = Problems::default();
    let query = raw
        .iter()
        .filter_map(|(name, p)| ordergate::policy::params::compile(name, p, &KeyPath::root(), &mut problems))
        .collect();
    RouteParams {
        path: Vec::new(),
        query,
        constraints: vec![ordergate::stage::validate::Constraint::DateRange {
            from: Arc::from("start_date"),
            to: Arc::from("end_date"),
            max_days: Some(366),
        }],
        forward_params: Vec::new(),
    }
});

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(first) = validate(&PARAMS, &[], &query::parse(&text)) {
        let canonical = first.upstream_query(&PARAMS);
        let second = validate(&PARAMS, &[], &query::parse(&canonical)).expect("canonical queries validate");
        assert_eq!(first, second);
    }
});
