//! Micro-benchmarks of signed requests (CONTRACT §7.1): the stateless check of a signed GET
//! (parse, coverage, window, signature base, verify) for ed25519 and hmac-sha256, the base
//! alone, a 1 KiB body's Content-Digest, and the local nonce store.
//! `cargo bench --bench signature`.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method, Uri};
use ordergate::stage::signature::digest::{DigestAlg, DigestCheck, header_value};
use ordergate::stage::signature::nonce::{LocalNonces, NonceKey};
use ordergate::stage::signature::sign::{ToSign, sign};
use ordergate::stage::signature::verify::{SigningKey, VerifyKey};
use ordergate::stage::signature::{SignatureSettings, SignedRequest, base, verify_request};
use ordergate::vocab::principal_kind::PrincipalKind;

/// The binary's allocator, so these figures are what the gateway pays.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const URL: &str = "https://127.0.0.1:8443/v1/customers/C0000001/orders?start_date=2025-01-01&end_date=2025-01-31&page_size=20";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A signed GET as the gateway receives it.
fn signed(key: &SigningKey, uri: &Uri) -> HeaderMap {
    let lines = sign(
        key,
        "sf-logistics",
        ToSign {
            method: &Method::GET,
            url: uri,
            body: None,
            content_type: None,
            created: now(),
            nonce: "bench-nonce",
        },
    )
    .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("x-api-key", HeaderValue::from_static("ogk_bench"));
    for (name, value) in lines {
        headers.insert(name, HeaderValue::from_str(&value).unwrap());
    }
    headers
}

fn checks(c: &mut Criterion) {
    let uri: Uri = URL.parse().unwrap();
    let settings = SignatureSettings::default();
    let (private, public) = SigningKey::generate_ed25519().unwrap();
    let ed_signer = SigningKey::ed25519_from_pem(private.as_bytes()).unwrap();
    let ed_key = VerifyKey::ed25519_from_pem(public.as_bytes()).unwrap();
    let secret = [42u8; 32];
    let hmac_signer = SigningKey::hmac(&secret).unwrap();
    let hmac_key = VerifyKey::hmac(&secret).unwrap();
    for (name, signer, key) in [
        ("signature/base+ed25519 verify", &ed_signer, &ed_key),
        ("signature/base+hmac-sha256 verify", &hmac_signer, &hmac_key),
    ] {
        let headers = signed(signer, &uri);
        let request = SignedRequest {
            method: &Method::GET,
            uri: &uri,
            headers: &headers,
            tls: true,
            body: ordergate::stage::signature::BodyCoverage::NoBody,
        };
        assert!(
            verify_request(&settings, None, Some(key), "sf-logistics", &request, now()).is_ok()
        );
        c.bench_function(name, |b| {
            b.iter(|| {
                verify_request(
                    &settings,
                    None,
                    Some(black_box(key)),
                    "sf-logistics",
                    black_box(&request),
                    now(),
                )
            })
        });
    }
    let headers = signed(&ed_signer, &uri);
    let request = SignedRequest {
        method: &Method::GET,
        uri: &uri,
        headers: &headers,
        tls: true,
        body: ordergate::stage::signature::BodyCoverage::NoBody,
    };
    c.bench_function("signature/parse+base only", |b| {
        b.iter(|| {
            let chosen = base::choose(black_box(&headers), "sf-logistics").unwrap();
            base::signature_base(&chosen.components, &chosen.params, &request)
        })
    });
    let body = vec![b'a'; 1024];
    let mut digest_headers = HeaderMap::new();
    digest_headers.insert(
        "content-digest",
        HeaderValue::from_str(&header_value(&body, DigestAlg::Sha256)).unwrap(),
    );
    let check = DigestCheck::from_headers(&digest_headers).unwrap();
    c.bench_function("signature/content-digest sha-256 1KiB", |b| {
        b.iter(|| check.matches(black_box(&body)))
    });
}

fn nonces(c: &mut Criterion) {
    let store = LocalNonces::default();
    // A short ttl: at benchmark rates a real window would fill the store (then it refuses).
    let ttl = Duration::from_millis(10);
    let mut n: u64 = 0;
    c.bench_function("signature/nonce check (local)", |b| {
        b.iter(|| {
            n += 1;
            let key = NonceKey::new(PrincipalKind::ApiKey, "sf-logistics", &n.to_string());
            store.record(key, ttl, Instant::now())
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = checks, nonces
}
criterion_main!(benches);
