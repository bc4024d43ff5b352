use super::*;
use crate::stage::authn::principal::Claims;
use crate::vocab::principal_kind::PrincipalKind;
use crate::vocab::scopes::ScopeSet;

fn principal(kind: PrincipalKind, id: &str) -> Principal {
    Principal {
        id: Arc::from(id),
        kind,
        tenant: None,
        scopes: ScopeSet::default(),
        scope_header: HeaderValue::from_static("orders:read"),
        claims: Claims::Attributes(Default::default()),
        expires_at: None,
        allow_ips: Vec::new(),
    }
}

fn json(body: &'static str) -> Response<GatewayBody> {
    let mut r = Response::new(GatewayBody::full(Bytes::from_static(body.as_bytes())));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn store(max_entries: u32, max_bytes: u64) -> StaleStore {
    StaleStore::new(
        Arc::from("orders"),
        StaleSettings {
            max_age: Duration::from_secs(60),
            max_entries,
            max_bytes,
        },
    )
}

fn get(p: &Principal, view: Option<usize>, query: &str) -> StaleKey {
    key(p, view, &Method::GET, "/api/orders", query).unwrap()
}

const T: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn an_answer_is_served_only_to_its_principal_and_view() {
    let s = store(100, 1 << 20);
    let alice = principal(PrincipalKind::Jwt, "alice");
    s.keep(get(&alice, Some(0), "a=1"), json("{\"n\":1}"), T)
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(7)).await;
    let hit = s.serve(&get(&alice, Some(0), "a=1")).unwrap();
    assert_eq!(hit.headers()["age"], "7");
    assert_eq!(hit.headers()["cache-status"], STALE_HIT);
    assert_eq!(hit.headers()["content-type"], "application/json");
    assert_eq!(hit.body().as_full().unwrap(), "{\"n\":1}");
    assert!(
        s.serve(&get(&alice, Some(1), "a=1")).is_none(),
        "other view"
    );
    assert!(
        s.serve(&get(&alice, Some(0), "a=2")).is_none(),
        "other request"
    );
    let bob = principal(PrincipalKind::Jwt, "bob");
    assert!(
        s.serve(&get(&bob, Some(0), "a=1")).is_none(),
        "other principal"
    );
    let key_alice = principal(PrincipalKind::ApiKey, "alice");
    assert!(
        s.serve(&get(&key_alice, Some(0), "a=1")).is_none(),
        "same id, other kind"
    );
    let mut tenant = alice.clone();
    tenant.tenant = Some(Arc::from("acme"));
    assert!(
        s.serve(&get(&tenant, Some(0), "a=1")).is_none(),
        "other tenant"
    );
}

#[tokio::test(start_paused = true)]
async fn old_answers_writes_and_errors_are_not_served() {
    let s = store(100, 1 << 20);
    let alice = principal(PrincipalKind::Jwt, "alice");
    assert!(key(&alice, None, &Method::POST, "/api/orders", "").is_none());
    s.keep(get(&alice, None, ""), json("{}"), T).await.unwrap();
    let mut error = json("{}");
    *error.status_mut() = StatusCode::NOT_FOUND;
    s.keep(get(&alice, None, "x"), error, T).await.unwrap();
    let mut text = json("hi");
    text.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    s.keep(get(&alice, None, "y"), text, T).await.unwrap();
    let mut gzip = json("{}");
    gzip.headers_mut()
        .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    s.keep(get(&alice, None, "z"), gzip, T).await.unwrap();
    assert_eq!(s.len(), 1, "only the 200 JSON answer in plain form is kept");
    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(
        s.serve(&get(&alice, None, "")).is_none(),
        "older than max_age"
    );
    assert!(s.is_empty());
}

#[tokio::test]
async fn a_freeze_drops_the_principals_entries_only() {
    let s = store(100, 1 << 20);
    let alice = principal(PrincipalKind::Jwt, "alice");
    let bob = principal(PrincipalKind::Jwt, "bob");
    for q in ["a", "b"] {
        s.keep(get(&alice, None, q), json("{}"), T).await.unwrap();
        s.keep(get(&bob, None, q), json("{}"), T).await.unwrap();
    }
    s.drop_principal("principal:jwt:alice");
    assert!(s.serve(&get(&alice, None, "a")).is_none());
    assert!(s.serve(&get(&bob, None, "a")).is_some());
    assert_eq!(s.len(), 2);
}

#[tokio::test]
async fn memory_stays_within_entries_and_bytes() {
    let s = store(50, 64 * 1024);
    let alice = principal(PrincipalKind::Jwt, "alice");
    let body: &'static str =
        Box::leak(format!("{{\"pad\":\"{}\"}}", "x".repeat(3000)).into_boxed_str());
    for i in 0..5000 {
        s.keep(get(&alice, None, &format!("page={i}")), json(body), T)
            .await
            .unwrap();
        assert!(s.len() <= 51, "{} entries", s.len());
        assert!(s.weight() <= 64 * 1024 + 1024, "{} bytes", s.weight());
    }
    let small = store(20, 1 << 20);
    for i in 0..5000 {
        small
            .keep(get(&alice, None, &format!("page={i}")), json("{}"), T)
            .await
            .unwrap();
        assert!(small.len() <= 21, "{} entries", small.len());
    }
    assert!(small.entry_floor() >= (1 << 20) / 20);
}

#[test]
fn no_store_is_honoured_and_failures_are_named() {
    let mut h = HeaderMap::new();
    assert!(storable(&h));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=60, private"),
    );
    assert!(storable(&h));
    h.append(header::CACHE_CONTROL, HeaderValue::from_static("No-Store"));
    assert!(!storable(&h));
    let mut odd = HeaderMap::new();
    odd.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_bytes(b"\xff").unwrap(),
    );
    assert!(!storable(&odd), "unreadable: not kept");

    let covered = [
        GatewayError::CircuitOpen {
            retry_after_secs: 1,
        },
        GatewayError::BadGateway {
            cause: UpstreamFailure::UpstreamUnreachable,
        },
        GatewayError::GatewayTimeout {
            cause: UpstreamFailure::UpstreamTimeout,
        },
        GatewayError::UpstreamError {
            status: StatusCode::SERVICE_UNAVAILABLE,
        },
    ];
    for e in covered {
        assert!(covers(&Err(e)));
    }
    let not = [
        GatewayError::BadGateway {
            cause: UpstreamFailure::ViewNonJson,
        },
        GatewayError::GatewayTimeout {
            cause: UpstreamFailure::RequestTimeout,
        },
        GatewayError::UpstreamError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
        },
        GatewayError::NotFound,
    ];
    for e in not {
        assert!(!covers(&Err(e)));
    }
    let mut exposed = json("{}");
    *exposed.status_mut() = StatusCode::BAD_GATEWAY;
    assert!(covers(&Ok(exposed)));
    assert!(!covers(&Ok(json("{}"))));
}

#[test]
fn a_principal_whose_owner_claims_changed_never_gets_the_old_answers() {
    let with = |claims: serde_json::Value| {
        let mut p = principal(PrincipalKind::Jwt, "rep-7");
        p.claims = Claims::Token(claims.as_object().unwrap().clone());
        p
    };
    let before = with(serde_json::json!({"sub": "rep-7", "customer_id": ["C1", "C2"], "exp": 1}));
    let renewed =
        with(serde_json::json!({"sub": "rep-7", "customer_id": ["C1", "C2"], "exp": 2, "iat": 1}));
    let narrowed = with(serde_json::json!({"sub": "rep-7", "customer_id": ["C1"], "exp": 2}));
    let k = |p: &Principal| key(p, None, &Method::GET, "/api/orders/O1", "").unwrap();
    assert!(
        k(&before) == k(&renewed),
        "a renewed token keeps its kept answers"
    );
    assert!(k(&before) != k(&narrowed), "a changed owner claim does not");
}
