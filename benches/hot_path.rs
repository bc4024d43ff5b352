//! Micro-benchmarks of the request path's pieces: routing, header rewriting, parameter
//! validation, token verification (per algorithm, uncached and cached), the local limiter,
//! response views and audit record serialisation. `cargo bench --bench hot_path`.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method};
use jsonwebtoken::Algorithm;
use ordergate::demo::pki::{JwtKey, jwks};
use ordergate::policy::Policy;
use ordergate::stage::audit::Entry;
use ordergate::stage::authn::jwt::JwtVerifier;
use ordergate::stage::proxy::{HeaderFacts, upstream_headers};
use ordergate::stage::rate_limit::LocalBuckets;
use ordergate::stage::validate::validate;
use ordergate::token::{TokenSpec, mint};
use ordergate::vocab::query;
use serde_json::{Value, json};

/// The binary's allocator, so these figures are what the gateway pays.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ALGORITHMS: [Algorithm; 6] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::HS256,
];
const SECRET: &str = "bench-secret-bench-secret-bench-secret!!";

/// A policy like the reference one, written with its files into `dir`.
fn policy(dir: &Path, keys: &[&JwtKey], cache_size: u32) -> Policy {
    std::fs::write(dir.join("jwks.json"), jwks(keys)).unwrap();
    std::fs::write(dir.join("hs.secret"), SECRET).unwrap();
    let text = include_str!("../config/policy.example.toml")
        .replace("listen = \"0.0.0.0:8443\"", "listen = \"127.0.0.1:8443\"\ninsecure_plaintext = true")
        .replace("[server.tls]\ncert = \"certs/server.crt\"", "[unused]\ncert = \"certs/server.crt\"")
        .replace("algorithms = [\"RS256\", \"ES256\", \"EdDSA\"]", "algorithms = [\"RS256\", \"PS256\", \"ES256\", \"ES384\", \"EdDSA\", \"HS256\"]\nhs_secret_file = \"hs.secret\"")
        .replace("jwks_file = \"keys/jwks.json\"", &format!("jwks_file = \"jwks.json\"\ncache_size = {cache_size}"));
    // Drop the TLS table and the mTLS client (plain HTTP needs no certificates).
    let text: String = strip_table(&text, "[unused]");
    let text = text.replace("[[auth.mtls.clients]]                # partners may authenticate by client certificate instead\nsubject = \"CN=jd-marketplace,O=JD Partner\"\nroles = [\"marketplace_partner\"]\ntenant = \"acme\"\n", "");
    ordergate::policy::load_str(&dir.join("policy.toml"), &text)
        .unwrap_or_else(|p| panic!("{p:#?}"))
}

fn strip_table(text: &str, header: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.starts_with('[') {
            skipping = line.trim() == header;
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn token(key: &JwtKey) -> String {
    key.token(
        "https://idp.example.com/",
        "alice",
        &["customer"],
        &[("customer_id", json!("C0000001"))],
        Duration::from_secs(3600),
    )
    .unwrap()
}

fn hs_token() -> String {
    let spec = TokenSpec {
        sub: "alice".into(),
        iss: Some("https://idp.example.com/".into()),
        aud: Some("ordergate".into()),
        alg: Some(Algorithm::HS256),
        roles: vec!["customer".into()],
        ttl: Duration::from_secs(3600),
        ..Default::default()
    };
    mint(&spec, SECRET.as_bytes()).unwrap()
}

fn order(n: usize) -> Value {
    json!({
        "order_id": format!("O20250101{n:06}"), "customer_id": "C0000001", "status": "shipped",
        "created_at": "2025-03-01T10:00:00+08:00", "total": 199.0, "currency": "CNY",
        "items": [{"sku": "P1001", "name": "无线降噪耳机", "qty": 1, "price": 199.0}, {"sku": "P1002", "name": "保温杯", "qty": 2, "price": 89.0}],
        "customer": {"name": "张三", "phone": "13812345678", "email": "zhang.san@example.com", "id_number": "11010519491231002X"},
        "payment": {"method": "card", "card_number": "6222021234567890128", "amount": 377.0, "paid_at": "2025-03-01T10:01:00+08:00"},
        "shipping": {"recipient": "张三", "phone": "13987654321", "address": "北京市朝阳区建国路88号", "carrier": "SF Express", "tracking_no": "SF123456789012"}
    })
}

fn benches(c: &mut Criterion) {
    ordergate::cli::install_crypto().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<JwtKey> = ALGORITHMS
        .iter()
        .filter(|a| **a != Algorithm::HS256)
        .map(|a| JwtKey::generate(*a, &format!("k-{a:?}")).unwrap())
        .collect();
    let key_refs: Vec<&JwtKey> = keys.iter().collect();
    let uncached = policy(dir.path(), &key_refs, 0);
    let cached = policy(dir.path(), &key_refs, 10_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // Routing.
    let route_path = "/v1/customers/C0000001/orders";
    c.bench_function("route_match", |b| {
        b.iter(|| {
            black_box(
                uncached
                    .table
                    .lookup(&Method::GET, black_box(route_path))
                    .unwrap(),
            )
        })
    });

    // Header rewriting, both directions.
    let mut client = HeaderMap::new();
    for (k, v) in [
        ("authorization", "Bearer abc.def.ghi"),
        ("accept", "application/json"),
        ("user-agent", "partner-sdk/2.1"),
        ("x-request-id", "req-1"),
        ("cookie", "a=b"),
        ("accept-encoding", "gzip"),
    ] {
        client.insert(
            http::HeaderName::from_static(k),
            HeaderValue::from_static(v),
        );
    }
    let principal = rt.block_on(async {
        let verifier = JwtVerifier::new(cached.auth.jwt.clone().unwrap()).unwrap();
        verifier
            .verify(&token(&keys[0]), &cached.roles, &cached.scopes)
            .await
            .unwrap()
    });
    let mut upstream_response = HeaderMap::new();
    for (k, v) in [
        ("content-type", "application/json"),
        ("server", "OrderService"),
        ("x-powered-by", "Java"),
        ("connection", "keep-alive"),
        ("date", "x"),
    ] {
        upstream_response.insert(
            http::HeaderName::from_static(k),
            HeaderValue::from_static(v),
        );
    }
    c.bench_function("header_rewrite", |b| {
        b.iter(|| {
            let up = upstream_headers(&HeaderFacts {
                client_headers: &client,
                peer: "127.0.0.1".parse().unwrap(),
                peer_trusted: false,
                https: true,
                request_id: "req-1",
                principal: &principal,
                forward_identity: true,
                body: None,
                conditional: true,
                json_answer: false,
            });
            let down =
                ordergate::stage::response::forwarded_upstream_headers(&upstream_response, false);
            black_box((up, down))
        })
    });

    // Validation: a typical order-history query, and a worst case (every value long, many unknowns).
    let route = &uncached.routes[0];
    let path_params = vec![(Arc::from("customer_id"), "C0000001".to_owned())];
    let typical = "start_date=2025-01-01&end_date=2025-06-30&status=shipped&page_size=50&cursor=c2VjcmV0LWN1cnNvcg";
    c.bench_function("validate_typical_query", |b| {
        b.iter(|| {
            let raw = query::parse(black_box(typical));
            let v = validate(&route.params, &path_params, &raw).unwrap();
            black_box(v.upstream_query(&route.params))
        })
    });
    let worst: String = (0..40)
        .map(|i| format!("p{i}={}", "%E4%B8%AD".repeat(85)))
        .collect::<Vec<_>>()
        .join("&")
        + &format!(
            "&cursor={}&start_date=2025-01-01&end_date=2025-01-01",
            "a".repeat(256)
        );
    c.bench_function("validate_worst_case_query", |b| {
        b.iter(|| {
            black_box(
                validate(
                    &route.params,
                    &path_params,
                    &query::parse(black_box(&worst)),
                )
                .is_err(),
            )
        })
    });

    // Tokens: a signature check per algorithm, then the cached path.
    let mut group = c.benchmark_group("jwt_verify_uncached");
    let verifier = JwtVerifier::new(uncached.auth.jwt.clone().unwrap()).unwrap();
    for alg in ALGORITHMS {
        let t = match keys.iter().find(|k| k.alg == alg) {
            Some(k) => token(k),
            None => hs_token(),
        };
        group.bench_function(format!("{alg:?}"), |b| {
            b.iter(|| {
                rt.block_on(verifier.verify(black_box(&t), &uncached.roles, &uncached.scopes))
                    .unwrap()
            })
        });
    }
    group.finish();
    let hot = JwtVerifier::new(cached.auth.jwt.clone().unwrap()).unwrap();
    let t = token(&keys[0]);
    c.bench_function("jwt_verify_cached_ES256", |b| {
        b.iter(|| {
            rt.block_on(hot.verify(black_box(&t), &cached.roles, &cached.scopes))
                .unwrap()
        })
    });

    // The local limiter, route and principal buckets together.
    let local = LocalBuckets::default();
    let buckets = vec![
        route.rate_limit.clone().unwrap(),
        cached.rate_limits.per_principal.clone().unwrap(),
    ];
    let id: Arc<str> = Arc::from("alice");
    let mut now = 0u64;
    c.bench_function("rate_limit_local_check", |b| {
        b.iter(|| {
            now += 10_000_000_000; // far apart: always admitted, so the commit path is measured
            black_box(local.check(
                ordergate::vocab::principal_kind::PrincipalKind::Jwt,
                &id,
                &buckets,
                now,
            ))
        })
    });

    // A 20-order page through the customer-service view (parse, allow/deny/mask, serialise).
    let page = serde_json::to_vec(
        &json!({"orders": (0..20).map(order).collect::<Vec<_>>(), "next_cursor": "abc"}),
    )
    .unwrap();
    let contact_view = &route.views[1];
    c.bench_function("view_20_orders_contact", |b| {
        b.iter(|| black_box(contact_view.apply_bytes(black_box(&page)).unwrap()))
    });

    // One audit record: redaction, serialisation in contract order, and the chain hash.
    let entry = Entry {
        ts: SystemTime::now(),
        request_id: "og-1234abcd-42".into(),
        client_ip: "203.0.113.7".parse().unwrap(),
        tls_version: Some("TLSv1.3"),
        client_subject: None,
        principal: Some(principal.clone()),
        method: Method::GET,
        route: Some(route.id.clone()),
        path: "/v1/customers/C0000001/orders".into(),
        query: validate(&route.params, &path_params, &query::parse(typical))
            .unwrap()
            .query,
        reason: "ok",
        detail: None,
        status: 200,
        upstream_status: Some(200),
        duration: Duration::from_micros(850),
        upstream: Some(Duration::from_micros(400)),
        bytes_out: 4210,
        records: None,
        upstream_name: None,
        served: None,
        signed: false,
    };
    let sensitive = vec!["phone".to_owned()];
    let prev = "0".repeat(64);
    c.bench_function("audit_record_serialise_and_hash", |b| {
        b.iter(|| black_box(entry.to_line(42, Some(&prev), &sensitive)))
    });
}

criterion_group! {
    name = hot_path;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500)).sample_size(30);
    targets = benches
}
criterion_main!(hot_path);
