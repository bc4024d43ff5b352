use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::*;
use crate::vocab::event::Deliver;
use crate::vocab::principal_kind::PrincipalKind;

fn distinct(max: u32) -> VolumeSettings {
    VolumeSettings {
        distinct: Some(DistinctLimit {
            param: "customer_id".into(),
            max,
            window: Duration::from_secs(60),
        }),
        records: None,
        action: VolumeAction::Alert,
    }
}

fn records(max: u64) -> VolumeSettings {
    VolumeSettings {
        distinct: None,
        records: Some(RecordsLimit {
            max,
            window: Duration::from_secs(60),
        }),
        action: VolumeAction::Alert,
    }
}

fn answered(value: Option<&str>, records: Option<u64>) -> Answered {
    Answered {
        principal_key: "principal:jwt:alice".into(),
        client_ip: "127.0.0.1".parse().unwrap(),
        route: "customer-orders".into(),
        value: value.map(|v| value_hash("customer_id", v)),
        records,
    }
}

#[test]
fn distinct_fires_at_max_plus_one_and_not_at_max() {
    let guard = VolumeGuard::default();
    let settings = distinct(3);
    let t = 1_000_000;
    for (n, id) in ["C1", "C2", "C3", "C1", "C2", "C3"].iter().enumerate() {
        assert!(
            guard
                .count_local(&settings, t + n as u64, &answered(Some(id), None))
                .is_empty(),
            "{id}: repeating a value never counts twice"
        );
    }
    assert_eq!(
        guard.count_local(&settings, t + 10, &answered(Some("C4"), None)),
        [Crossed::Distinct]
    );
    assert!(
        guard
            .count_local(&settings, t + 11, &answered(Some("C5"), None))
            .is_empty(),
        "fires once per crossing"
    );
    let mut bob = answered(Some("C9"), None);
    bob.principal_key = "principal:jwt:bob".into();
    assert!(
        guard.count_local(&settings, t + 12, &bob).is_empty(),
        "per principal"
    );
}

#[test]
fn under_freeze_a_crossing_holds_the_next_back_only_as_long_as_the_freeze() {
    let guard = VolumeGuard::default();
    let freeze = Duration::from_secs(10);
    let mut settings = distinct(1);
    settings.action = VolumeAction::Freeze(freeze);
    let t = 1_000_000;
    let at = |ms: u64, id: &str| guard.count_local(&settings, t + ms, &answered(Some(id), None));
    assert!(at(0, "C1").is_empty());
    assert_eq!(at(1, "C2"), [Crossed::Distinct]);
    // Answers in flight while frozen do not fire again.
    assert!(at(2, "C3").is_empty());
    assert!(at(9_999, "C1").is_empty());
    // The freeze has run out; still over inside the 60 s window: it fires again, and holds.
    assert_eq!(at(10_001, "C4"), [Crossed::Distinct]);
    assert!(at(10_002, "C2").is_empty());
    assert_eq!(at(20_001, "C2"), [Crossed::Distinct]);

    let mut settings = records(10);
    settings.action = VolumeAction::Freeze(freeze);
    let at = |ms: u64, n: u64| guard.count_local(&settings, t + ms, &answered(None, Some(n)));
    assert!(at(0, 10).is_empty());
    assert_eq!(at(1, 1), [Crossed::Records]);
    assert!(at(2, 1).is_empty());
    assert_eq!(at(10_001, 1), [Crossed::Records]);
}

#[test]
fn distinct_values_leave_the_window_and_the_limit_fires_again() {
    let guard = VolumeGuard::default();
    let settings = distinct(2);
    let w = 60_000;
    for id in ["A", "B"] {
        assert!(
            guard
                .count_local(&settings, 0, &answered(Some(id), None))
                .is_empty()
        );
    }
    assert!(
        !guard
            .count_local(&settings, 1, &answered(Some("C"), None))
            .is_empty()
    );
    // A window later only the new value is inside it: under the limit again.
    assert!(
        guard
            .count_local(&settings, w + 2, &answered(Some("D"), None))
            .is_empty()
    );
    assert!(
        guard
            .count_local(&settings, w + 3, &answered(Some("E"), None))
            .is_empty()
    );
    assert_eq!(
        guard.count_local(&settings, w + 4, &answered(Some("F"), None)),
        [Crossed::Distinct],
        "a fresh crossing fires again"
    );
}

#[test]
fn memory_per_principal_is_bounded_by_max_not_by_values() {
    let guard = VolumeGuard::default();
    let settings = distinct(5);
    for n in 0..10_000u64 {
        let id = format!("C{n}");
        guard.count_local(&settings, n, &answered(Some(&id), None));
    }
    let window = guard.distinct.get("principal:jwt:alice").unwrap();
    assert_eq!(
        window.by_value.len(),
        6,
        "max + 1 hashes, whatever the caller walks through"
    );
    assert_eq!(window.by_time.len(), 6);
}

/// A scraper that keeps going while over the limit stays over as older values leave the window:
/// the newest `max` + 1 values are kept, so the decision stays exact.
#[test]
fn a_window_over_its_limit_stays_exact_as_old_values_expire() {
    let guard = VolumeGuard::default();
    let settings = distinct(2);
    let w = 60_000;
    assert!(
        guard
            .count_local(&settings, 0, &answered(Some("A"), None))
            .is_empty()
    );
    assert!(
        guard
            .count_local(&settings, 0, &answered(Some("B"), None))
            .is_empty()
    );
    assert!(
        !guard
            .count_local(&settings, 10, &answered(Some("C"), None))
            .is_empty()
    );
    assert!(
        guard
            .count_local(&settings, 20, &answered(Some("D"), None))
            .is_empty()
    );
    // A and B have left the window; C, D and E are three distinct values within it: still over,
    // so nothing fires again — and under a model that lost C or D it would.
    assert!(
        guard
            .count_local(&settings, w + 5, &answered(Some("E"), None))
            .is_empty()
    );
    let held = || {
        guard
            .distinct
            .get("principal:jwt:alice")
            .unwrap()
            .held
            .until
    };
    assert!(held().is_some());
    // Once C and D have left too, E and F are two: back under; G crosses again.
    assert!(
        guard
            .count_local(&settings, w + 30, &answered(Some("F"), None))
            .is_empty()
    );
    assert!(held().is_none());
    assert_eq!(
        guard.count_local(&settings, w + 31, &answered(Some("G"), None)),
        [Crossed::Distinct]
    );
}

#[test]
fn records_fire_at_max_plus_one_and_not_at_max() {
    let guard = VolumeGuard::default();
    let settings = records(100);
    assert!(
        guard
            .count_local(&settings, 0, &answered(None, Some(60)))
            .is_empty()
    );
    assert!(
        guard
            .count_local(&settings, 1, &answered(None, Some(40)))
            .is_empty(),
        "100 = max"
    );
    assert!(
        guard
            .count_local(&settings, 2, &answered(None, Some(0)))
            .is_empty()
    );
    assert_eq!(
        guard.count_local(&settings, 3, &answered(None, Some(1))),
        [Crossed::Records]
    );
    assert!(
        guard
            .count_local(&settings, 4, &answered(None, None))
            .is_empty(),
        "no count, no change"
    );
}

#[test]
fn records_slide_out_of_the_window() {
    let guard = VolumeGuard::default();
    let settings = records(10);
    assert!(
        guard
            .count_local(&settings, 0, &answered(None, Some(10)))
            .is_empty()
    );
    // One window later the first sum has left it.
    assert!(
        guard
            .count_local(&settings, 60_000, &answered(None, Some(10)))
            .is_empty()
    );
    assert_eq!(
        guard.count_local(&settings, 60_001, &answered(None, Some(1))),
        [Crossed::Records]
    );
    guard.sweep_at(Some(&settings), 60_002);
    assert_eq!(
        guard.records.len(),
        1,
        "a principal with records in its window is kept"
    );
    guard.sweep_at(Some(&settings), 200_000);
    assert_eq!(guard.records.len(), 0, "an idle one is forgotten");
    guard.count_local(&settings, 0, &answered(None, Some(1)));
    guard.sweep(None);
    assert_eq!(guard.records.len(), 0);
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Event>>>);

impl Deliver for Recorder {
    fn deliver(&self, event: Event) {
        self.0.lock().push(event);
    }
}

#[tokio::test]
async fn crossing_with_freeze_reports_and_freezes_the_principal() {
    let events = Events::default();
    let seen = Recorder::default();
    events.set_deliverer(Some(Box::new(seen.clone())));
    let mut guard = VolumeGuard::default();
    guard.report_to(events.clone());
    let mut abuse = AbuseGuard::default();
    abuse.report_to(events);
    let abuse_settings = AbuseSettings::default();
    let mut settings = distinct(1);
    settings.action = VolumeAction::Freeze(Duration::from_secs(900));
    guard
        .observe(
            &settings,
            &abuse,
            &abuse_settings,
            None,
            &answered(Some("C1"), None),
        )
        .await;
    assert!(!abuse.is_principal_frozen(PrincipalKind::Jwt, "alice"));
    assert!(seen.0.lock().is_empty());
    guard
        .observe(
            &settings,
            &abuse,
            &abuse_settings,
            None,
            &answered(Some("C2"), None),
        )
        .await;
    assert!(abuse.is_principal_frozen(PrincipalKind::Jwt, "alice"));
    let seen = seen.0.lock();
    let kinds: Vec<_> = seen.iter().map(|e| (e.kind, e.detail)).collect();
    assert_eq!(
        kinds,
        [
            (EventKind::VolumeExceeded, Some("volume_distinct")),
            (EventKind::Freeze, Some("volume_distinct"))
        ]
    );
    assert_eq!(seen[0].principal.as_deref(), Some("jwt:alice"));
    assert_eq!(seen[0].route.as_deref(), Some("customer-orders"));
}

#[tokio::test]
async fn alert_only_never_freezes() {
    let guard = VolumeGuard::default();
    let abuse = AbuseGuard::default();
    let settings = distinct(1);
    for id in ["C1", "C2", "C3"] {
        guard
            .observe(
                &settings,
                &abuse,
                &AbuseSettings::default(),
                None,
                &answered(Some(id), None),
            )
            .await;
    }
    assert!(!abuse.is_principal_frozen(PrincipalKind::Jwt, "alice"));
}

#[test]
fn a_request_counts_only_what_the_guard_limits() {
    use crate::stage::authn::principal::Claims;
    use crate::stage::validate::{Validated, Value};
    use crate::vocab::scopes::ScopeSet;
    let principal = crate::stage::authn::Principal {
        id: Arc::from("erp-sync"),
        kind: PrincipalKind::ApiKey,
        tenant: None,
        scopes: ScopeSet::default(),
        scope_header: http::HeaderValue::from_static(""),
        claims: Claims::Attributes(Default::default()),
        expires_at: None,
        allow_ips: Vec::new(),
    };
    let validated = Validated {
        path: vec![("customer_id".into(), Value::String("C0000001".into()))],
        query: Vec::new(),
    };
    let ip = "127.0.0.1".parse().unwrap();
    let route: Arc<str> = "customer-orders".into();
    let both = VolumeSettings {
        records: records(10).records,
        ..distinct(3)
    };
    let counted = Answered::of(&both, &principal, ip, &route, Some(&validated), Some(7)).unwrap();
    assert_eq!(counted.principal_key, "principal:api_key:erp-sync");
    assert_eq!(counted.value, Some(value_hash("customer_id", "C0000001")));
    assert_eq!(counted.records, Some(7));
    let only_records = Answered::of(
        &records(10),
        &principal,
        ip,
        &route,
        Some(&validated),
        Some(7),
    )
    .unwrap();
    assert_eq!((only_records.value, only_records.records), (None, Some(7)));
    assert!(
        Answered::of(&distinct(3), &principal, ip, &route, None, Some(7)).is_none(),
        "no parameter, and records are not limited: nothing to count"
    );
    assert_ne!(
        value_hash("customer_id", "C1"),
        value_hash("order_id", "C1"),
        "the parameter name is part of the hash"
    );
}
