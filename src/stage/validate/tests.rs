use super::*;
use crate::config::problems::{KeyPath, Problems};
use crate::config::raw;
use crate::vocab::query;
use proptest::prelude::*;

/// The reference policy's `customer-orders` parameters.
fn orders() -> RouteParams {
    let text = r#"
        [customer_id]
        type = "string"
        pattern = "^C[0-9]{6,12}$"
        [start_date]
        type = "date"
        required = true
        [end_date]
        type = "date"
        required = true
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
    "#;
    let raw: indexmap::IndexMap<String, raw::Param> = toml::from_str(text).unwrap();
    let mut problems = Problems::default();
    let mut schemas: Vec<ParamSchema> = raw
        .iter()
        .map(|(name, p)| {
            crate::policy::params::compile(name, p, &KeyPath::root(), &mut problems).unwrap()
        })
        .collect();
    assert!(problems.is_empty());
    let path = vec![schemas.remove(0)];
    RouteParams {
        path,
        query: schemas,
        constraints: vec![Constraint::DateRange {
            from: Arc::from("start_date"),
            to: Arc::from("end_date"),
            max_days: Some(366),
        }],
        forward_params: vec![(Arc::from("customer_id"), Arc::from("customer_id"))],
    }
}

fn path(id: &str) -> Vec<(Arc<str>, String)> {
    vec![(Arc::from("customer_id"), id.to_owned())]
}

fn errors(query: &str) -> Vec<(String, String)> {
    match validate(&orders(), &path("C1234567"), &query::parse(query)) {
        Err(GatewayError::InvalidParameter { errors, .. }) => {
            errors.into_iter().map(|e| (e.param, e.reason)).collect()
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn rebuilds_the_upstream_query_canonically() {
    let params = orders();
    let q = query::parse("status=paid&end_date=2024-02-01&start_date=2024-01-01");
    let v = validate(&params, &path("C1234567"), &q).unwrap();
    assert_eq!(
        v.upstream_query(&params),
        "customer_id=C1234567&start_date=2024-01-01&end_date=2024-02-01&status=paid&page_size=20"
    );
    let q = query::parse("start_date=2024-01-01&end_date=2024-01-01&page_size=007&cursor=a-b_c");
    let v = validate(&params, &path("C1234567"), &q).unwrap();
    assert_eq!(
        v.upstream_query(&params),
        "customer_id=C1234567&start_date=2024-01-01&end_date=2024-01-01&page_size=7&cursor=a-b_c"
    );
}

#[test]
fn lists_every_violation() {
    let e = errors("start_date=2024-02-30&page_size=500&status=lost&debug=1&cursor=x'--");
    assert!(
        e.contains(&("start_date".into(), "is not a real calendar date".into())),
        "{e:?}"
    );
    assert!(
        e.contains(&("end_date".into(), "is required".into())),
        "{e:?}"
    );
    assert!(
        e.contains(&("page_size".into(), "must be <= 100".into())),
        "{e:?}"
    );
    assert!(
        e.contains(&(
            "status".into(),
            "must be one of: pending, paid, shipped".into()
        )),
        "{e:?}"
    );
    assert!(
        e.contains(&("debug".into(), "unknown parameter".into())),
        "{e:?}"
    );
    assert!(
        e.contains(&(
            "cursor".into(),
            "does not match the required pattern".into()
        )),
        "{e:?}"
    );
    assert_eq!(e.len(), 6);
}

#[test]
fn refuses_injection_and_shape_attacks() {
    let base = "start_date=2024-01-01&end_date=2024-01-02";
    for attack in [
        "status=paid'%20OR%20'1'%3D'1",
        "status=paid%3B%20DROP%20TABLE%20orders",
        "status=$(rm%20-rf%20/)",
        "page_size=1%20OR%201=1",
        "cursor=..%2F..%2Fetc%2Fpasswd",
    ] {
        let e = errors(&format!("{base}&{attack}"));
        assert_eq!(e.len(), 1, "{attack}: {e:?}");
    }
    assert_eq!(
        errors(&format!("{base}&status=paid&status=shipped"))[0].1,
        "repeated parameter (send each parameter once)"
    );
    assert_eq!(
        errors(&format!("{base}&cursor=a%00b"))[0].1,
        "contains a control character"
    );
    assert_eq!(
        errors(&format!("{base}&cursor=a%0D%0ASet-Cookie:x"))[0].1,
        "contains a control character"
    );
    assert_eq!(
        errors(&format!("{base}&cursor=%C0%AF"))[0].1,
        "not valid UTF-8"
    );
    assert_eq!(
        errors(&format!("{base}&cursor=%G1"))[0].1,
        "malformed percent-encoding"
    );
    assert_eq!(
        errors(&format!("{base}&cursor={}", "a".repeat(300)))[0].1,
        "must be at most 256 characters"
    );
}

#[test]
fn date_range_constraint() {
    assert_eq!(
        errors("start_date=2024-03-01&end_date=2024-01-01"),
        vec![(
            "end_date".to_owned(),
            "must not be before start_date".to_owned()
        )]
    );
    assert_eq!(
        errors("start_date=2023-01-01&end_date=2024-01-03"),
        vec![("end_date".to_owned(), "range exceeds 366 days".to_owned())]
    );
    let ok = validate(
        &orders(),
        &path("C1234567"),
        &query::parse("start_date=2023-01-01&end_date=2024-01-02"),
    );
    assert!(ok.is_ok(), "366 days is allowed");
}

#[test]
fn path_parameters_use_the_same_rules() {
    let r = validate(
        &orders(),
        &path("C12' OR 1=1"),
        &query::parse("start_date=2024-01-01&end_date=2024-01-01"),
    );
    match r {
        Err(GatewayError::InvalidParameter { errors, .. }) => {
            assert_eq!(errors[0].param, "customer_id");
            assert_eq!(errors[0].reason, "does not match the required pattern");
        }
        other => panic!("{other:?}"),
    }
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = validate(&orders(), &path(&text), &query::parse(&text));
    }

    #[test]
    fn accepted_queries_reparse_from_their_canonical_form(
        start in 0i64..3000,
        span in 0i64..366,
        status in proptest::option::of(prop_oneof![Just("pending"), Just("paid"), Just("shipped")]),
        page_size in proptest::option::of(1i64..=100),
        cursor in proptest::option::of("[A-Za-z0-9_-]{1,64}"),
        plus in any::<bool>(),
    ) {
        let day = |n: i64| (chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap() + chrono::Duration::days(n)).format("%Y-%m-%d").to_string();
        let mut q = format!("start_date={}&end_date={}", day(start), day(start + span));
        if let Some(s) = status { q.push_str(&format!("&status={s}")); }
        if let Some(p) = page_size { q.push_str(&format!("&page_size={p}")); }
        if let Some(c) = &cursor { q.push_str(&format!("&cursor={}", if plus { c.replace('-', "%2D") } else { c.clone() })); }
        let params = orders();
        let first = validate(&params, &path("C1234567"), &query::parse(&q)).unwrap();
        let canonical = first.upstream_query(&params);
        // The upstream sees customer_id first; strip it to re-validate as a client query.
        let rest = canonical.split_once('&').map(|(_, r)| r).unwrap_or("");
        let second = validate(&params, &path("C1234567"), &query::parse(rest)).unwrap();
        prop_assert_eq!(&first, &second);
        prop_assert_eq!(second.upstream_query(&params), canonical);
    }
}

#[test]
fn a_400_lists_at_most_twenty_violations() {
    // 60 unknown parameters (a query has at most 64 pieces, see `query::MAX_PARAMS`).
    let q: String = (0..60).map(|i| format!("u{i}=1&")).collect();
    let q = format!("{q}start_date=2024-01-01&end_date=2024-01-02");
    match validate(&orders(), &path("C1234567"), &query::parse(&q)) {
        Err(GatewayError::InvalidParameter { errors, cause }) => {
            assert_eq!(errors.len(), super::MAX_LISTED_ERRORS);
            assert_eq!(errors[19].param, "*");
            assert_eq!(errors[19].reason, "41 more violations not listed");
            assert_eq!(cause.as_str(), "unknown_parameter");
        }
        other => panic!("{other:?}"),
    }
}
