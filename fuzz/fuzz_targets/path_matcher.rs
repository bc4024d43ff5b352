//! The strict path rules and the route matcher on arbitrary paths: never panics, and a match
//! never carries a parameter with a separator, a dot segment or a control character.
#![no_main]

use std::sync::LazyLock;

use http::Method;
use libfuzzer_sys::fuzz_target;
use ordergate::stage::route::{PathTemplate, RouteTable};

static TABLE: LazyLock<RouteTable> = LazyLock::new(|| {
    let routes = [
        (Method::GET, "/v1/customers/{customer_id}/orders"),
        (Method::GET, "/v1/orders/{order_id}"),
        (Method::POST, "/v1/orders/{order_id}/notes"),
        (Method::GET, "/"),
    ];
    let shapes: Vec<(Method, PathTemplate)> =
        routes.iter().map(|(m, p)| (m.clone(), PathTemplate::parse(p).expect("fixture"))).collect();
    RouteTable::build(&shapes).expect("fixture")
});

fuzz_target!(|data: &[u8]| {
    let path = String::from_utf8_lossy(data);
    if let Ok(matched) = TABLE.lookup(&Method::GET, &path) {
        for (_, value) in &matched.params {
            assert!(!value.contains(['/', '\\']));
            assert!(value != "." && value != "..");
            assert!(!value.chars().any(char::is_control));
        }
    }
});
