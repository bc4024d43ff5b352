//! Helpers for `benches/load.sh`: a fast fixed-answer order service, and the writer of a
//! benchmark policy with its certificates, keys and credentials.
//!
//! `bench_kit upstream --port P [--page-size N] [--search-size N]`
//! `bench_kit setup --dir D --upstream HOST:PORT --port P --admin-port A [--redis URL]
//!     [--token-cache on|off] [--cipher-suites A,B] [--workers N] [--threading per-core|shared]
//!     [--on-error reject|continue]
//!     [--signer --max-age SECONDS] [--principals N]`
//! `bench_kit signed --dir D --url URL --count N`
//! `bench_kit bare-proxy --dir D --upstream HOST:PORT --port P [--workers N] [--per-core]`
//!
//! The upstream answers `/api/orders/search` (what `GET /v1/orders?start_date=…&end_date=…&
//! page_size=20` is sent to) with a page of `--search-size` orders (4: 2,424 bytes, the
//! request the peers in `benches/load.sh` are measured with; `/v1/orders` too, for the proxies
//! that forward the path unchanged), `/api/orders` with a page of
//! `--page-size` orders and anything else with one order.
//!
//! `setup` writes, beside the policy: `api_key`; `token` (alice, a customer, ES256),
//! `erp_token` (ES256) and `erp_token_rs256` (an ERP service with the scopes of the search
//! route); `server.crt`, `server.key` and `server.pem` (both, for HAProxy); `jwt_es256.pub.pem`
//! and `jwt_rs256.pub.pem` (the token keys' public halves, for HAProxy's `jwt_verify`).
//!
//! `--signer` adds a second API key, `bench-partner` (role `erp`, like `erp-sync`), that must
//! sign every request with ed25519 (`partner.key.pem`, `partner_api_key`), and
//! `[auth.signatures]` with that `max_age`. `signed` then writes `signed.txt`: N header sets for
//! `GET URL` by that partner, one per line (tab-separated `Name: value`), each with a fresh nonce
//! and `created` = now, for `benches/peers/header_sets.lua` (wrk cannot sign).
//! `bare-proxy` is the floor of the gateway's stack: the same rustls server (setup's certificate,
//! `TLS_AES_128_GCM_SHA256` in the server's order), hyper's HTTP/1.1 server and pooled
//! client, tokio, mimalloc, and nothing else: it forwards every request unchecked to the
//! upstream and the answer back. `--workers N`: one multi-thread runtime (as the gateway);
//! `--per-core`: N single-thread runtimes, each accepting on its own `SO_REUSEPORT` listener and
//! using its own upstream pool (no request crosses a thread).
//! `--principals N` writes `tokens.txt`: N `Authorization` headers of distinct ERP principals
//! (`bench-0000`, ...), so a percentage canary sees many principals.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::Algorithm;
use ordergate::demo::pki::{Ca, JwtKey, jwks};
use ordergate::demo::policy_template::{ApiKeyEntry, Backend, PolicyTemplate, Rate};
use serde_json::json;

const ISSUER: &str = "https://idp.bench/";

fn order(n: usize) -> serde_json::Value {
    json!({
        "order_id": format!("O20250101{n:06}"), "customer_id": "C0000001", "status": "shipped",
        "created_at": "2025-03-01T10:00:00+08:00", "total": 377.0, "currency": "CNY",
        "items": [{"sku": "P1001", "name": "无线降噪耳机", "qty": 1, "price": 199.0}, {"sku": "P1002", "name": "保温杯", "qty": 2, "price": 89.0}],
        "customer": {"name": "张三", "phone": "13812345678", "email": "zhang.san@example.com", "id_number": "11010519491231002X"},
        "payment": {"method": "card", "card_number": "6222021234567890128", "amount": 377.0},
        "shipping": {"recipient": "张三", "phone": "13987654321", "address": "北京市朝阳区建国路88号", "carrier": "SF Express"}
    })
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("upstream") => upstream(&args),
        Some("setup") => setup(&args),
        Some("signed") => signed(&args),
        Some("bare-proxy") => bare_proxy(&args),
        _ => {
            eprintln!(
                "usage: bench_kit upstream --port P [--page-size N] | setup --dir D --upstream HOST:PORT --port P --admin-port A [--redis URL] [--signer --max-age SECONDS] [--principals N] | signed --dir D --url URL --count N"
            );
            std::process::exit(2);
        }
    }
}

fn upstream(args: &[String]) {
    let port: u16 = arg(args, "--port")
        .and_then(|p| p.parse().ok())
        .unwrap_or(9000);
    let page_size: usize = arg(args, "--page-size")
        .and_then(|p| p.parse().ok())
        .unwrap_or(20);
    let search_size: usize = arg(args, "--search-size")
        .and_then(|p| p.parse().ok())
        .unwrap_or(4);
    let one = Bytes::from(serde_json::to_vec(&order(1)).unwrap());
    let search = Bytes::from(
        serde_json::to_vec(
            &json!({"orders": (0..search_size).map(order).collect::<Vec<_>>(), "next_cursor": "abc"}),
        )
        .unwrap(),
    );
    eprintln!(
        "bench_kit upstream: the search page is {} bytes",
        search.len()
    );
    let page = Bytes::from(
        serde_json::to_vec(
            &json!({"orders": (0..page_size).map(order).collect::<Vec<_>>(), "next_cursor": "abc"}),
        )
        .unwrap(),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .unwrap();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = stream.set_nodelay(true);
            let (one, page, search) = (one.clone(), page.clone(), search.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let body = match request.uri().path() {
                        "/api/orders" => page.clone(),
                        // The plain TLS proxies forward the public path as it is.
                        "/api/orders/search" | "/v1/orders" => search.clone(),
                        _ => one.clone(),
                    };
                    async move {
                        Ok::<_, Infallible>(
                            hyper::Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(body))
                                .unwrap(),
                        )
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

fn setup(args: &[String]) {
    ordergate::cli::install_crypto().unwrap();
    let dir = arg(args, "--dir").expect("--dir");
    let dir = Path::new(&dir);
    let upstream = arg(args, "--upstream").expect("--upstream");
    let port = arg(args, "--port").expect("--port");
    let admin = arg(args, "--admin-port").expect("--admin-port");
    let redis = arg(args, "--redis");
    let token_cache = arg(args, "--token-cache").unwrap_or_else(|| "on".into());
    let cipher_suites = arg(args, "--cipher-suites");
    let workers = arg(args, "--workers");
    let threading = arg(args, "--threading");
    let on_error = arg(args, "--on-error").unwrap_or_else(|| "reject".into());
    let ca = Ca::new("bench CA").unwrap();
    let server = ca.server(&["127.0.0.1", "localhost"]).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.crt"), &server.cert_pem).unwrap();
    std::fs::write(dir.join("server.key"), &server.key_pem).unwrap();
    std::fs::write(
        dir.join("server.pem"),
        format!("{}{}", server.cert_pem, server.key_pem),
    )
    .unwrap();
    let key = JwtKey::generate(Algorithm::ES256, "bench").unwrap();
    let rsa = JwtKey::generate(Algorithm::RS256, "bench-rs").unwrap();
    std::fs::write(dir.join("jwks.json"), jwks(&[&key, &rsa])).unwrap();
    for (file, k) in [("jwt_es256.pub.pem", &key), ("jwt_rs256.pub.pem", &rsa)] {
        let pair = rcgen::KeyPair::from_pem(&k.private_pem).unwrap();
        std::fs::write(dir.join(file), pair.public_key_pem()).unwrap();
    }
    let (api_key, hash) = ordergate::stage::authn::api_key::generate();
    let token = key
        .token(
            ISSUER,
            "alice",
            &["customer"],
            &[("customer_id", json!("C0000001"))],
            Duration::from_secs(24 * 3600),
        )
        .unwrap();
    std::fs::write(dir.join("token"), &token).unwrap();
    // The same keys' tokens for an ERP service: the same routes as the API key, for comparison.
    // The scope claim is what HAProxy checks (ordergate adds the role's scopes to it).
    let erp_claims = [("scope", json!("orders:read orders:read:any_customer"))];
    for (file, k) in [("erp_token", &key), ("erp_token_rs256", &rsa)] {
        let erp_token = k
            .token(
                ISSUER,
                "erp-service",
                &["erp"],
                &erp_claims,
                Duration::from_secs(24 * 3600),
            )
            .unwrap();
        std::fs::write(dir.join(file), &erp_token).unwrap();
    }
    std::fs::write(dir.join("api_key"), &api_key).unwrap();
    if let Some(n) = arg(args, "--principals").and_then(|n| n.parse::<usize>().ok()) {
        write_principals(dir, &key, n);
    }
    let listen = format!("127.0.0.1:{port}");
    let admin_listen = format!("127.0.0.1:{admin}");
    let mut api_keys = vec![ApiKeyEntry::new("erp-sync", &hash, &["erp"])];
    let signer = args.iter().any(|a| a == "--signer");
    let partner_hash = signer.then(|| write_partner(dir));
    if let Some(partner_hash) = &partner_hash {
        api_keys.push(ApiKeyEntry {
            signature: Some(PARTNER_SIGNATURE),
            ..ApiKeyEntry::new(PARTNER_ID, partner_hash, &["erp"])
        });
    }
    let policy = bench_policy(
        &listen,
        &admin_listen,
        &upstream,
        &api_keys,
        redis.as_deref(),
    )
    .render();
    let mut policy = tune(
        &policy,
        token_cache == "off",
        cipher_suites.as_deref(),
        workers.as_deref(),
        threading.as_deref(),
        &on_error,
    );
    if signer {
        let max_age = arg(args, "--max-age").unwrap_or_else(|| "300".into());
        policy.push_str(&format!(
            "\n[auth.signatures]\nmax_age = \"{max_age}s\"\nclock_skew = \"5s\"\n"
        ));
    }
    std::fs::write(dir.join("policy.toml"), policy).unwrap();
    let _ = Arc::new(());
}

/// The template's text with the benchmark's knobs: both token algorithms, the token cache,
/// the cipher suites, the worker threads, the threading and `on_error`.
fn tune(
    policy: &str,
    cache_off: bool,
    cipher_suites: Option<&str>,
    workers: Option<&str>,
    threading: Option<&str>,
    on_error: &str,
) -> String {
    let mut jwt = String::from("algorithms = [\"ES256\", \"RS256\"]");
    if cache_off {
        jwt.push_str("\ncache_size = 0");
    }
    let mut tls = String::from("[server.tls]");
    if let Some(list) = cipher_suites {
        let quoted: Vec<String> = list.split(',').map(|s| format!("\"{s}\"")).collect();
        tls.push_str(&format!("\ncipher_suites = [{}]", quoted.join(", ")));
    }
    let mut server = String::from("[server]");
    if let Some(n) = workers {
        server.push_str(&format!("\nworkers = {n}"));
    }
    if let Some(mode) = threading {
        server.push_str(&format!("\nthreading = \"{mode}\""));
    }
    let replaced = policy
        .replacen("algorithms = [\"ES256\"]", &jwt, 1)
        .replacen("[server.tls]", &tls, 1)
        .replacen("[server]", &server, 1)
        .replacen(
            "on_error = \"reject\"",
            &format!("on_error = \"{on_error}\""),
            1,
        );
    assert!(replaced.contains(&jwt) && replaced.contains(&tls) && replaced.contains(&server));
    replaced
}

/// Limits that never stop the load (the limiters still run on every request), no client
/// certificates asked for, and one more route that masks the whole order.
fn bench_policy<'a>(
    listen: &'a str,
    admin_listen: &'a str,
    upstream: &'a str,
    api_keys: &'a [ApiKeyEntry<'a>],
    redis: Option<&'a str>,
) -> PolicyTemplate<'a> {
    let unlimited = Rate::new("10000000/min", 1_000_000);
    PolicyTemplate {
        header: "",
        listen,
        admin_listen,
        max_connections: 10_000,
        max_connections_per_ip: None,
        max_in_flight: 4096,
        // The gateway's defaults, here and below where not said otherwise.
        header_read_timeout: "5s",
        request_timeout: "30s",
        max_header_bytes: "16KiB",
        max_request_body: "64KiB",
        shutdown_grace: "30s",
        cert: "server.crt",
        key: "server.key",
        client_ca: None,
        upstream,
        connect_timeout: "1s",
        upstream_timeout: "5s",
        pool_idle_per_host: Some(256),
        open_for: "10s",
        issuer: ISSUER,
        jwks_file: "jwks.json",
        api_keys,
        summaries: false,
        customer_orders_rate: unlimited,
        phone_query: false,
        contact_deny: &["orders[].payment"],
        contact_mask: &[("orders[].customer.phone", "phone")],
        order_detail_rate: unlimited,
        order_detail_views: false,
        extra_routes: MASKED_ROUTE,
        backend: redis.map_or(Backend::Local, Backend::Redis),
        on_backend_error: redis.map(|_| "local"),
        per_principal_rate: unlimited,
        max_denials: 50,
        freeze_for: "15m",
        rotate_bytes: "100MiB",
    }
}

/// The peers' request: a date-bounded order search (typed, whitelisted query) for a service
/// that may read any customer's orders; then the same search with every personal field masked
/// and the payment removed (what masking costs); then the order detail masked likewise.
const MASKED_ROUTE: &str = r#"[[routes]]
id = "orders-search"
method = "GET"
path = "/v1/orders"
upstream_path = "/api/orders/search"
require_scopes = ["orders:read", "orders:read:any_customer"]
rate_limit = { rate = "10000000/min", burst = 1000000 }
[routes.query.start_date]
type = "date"
required = true
[routes.query.end_date]
type = "date"
required = true
[routes.query.page_size]
type = "integer"
min = 1
max = 100
default = 20
[[routes.constraints]]
kind = "date_range"
from = "start_date"
to = "end_date"
max_days = 366

[[routes]]
id = "orders-search-masked"
method = "GET"
path = "/v1/masked/orders"
upstream_path = "/api/orders/search"
require_scopes = ["orders:read", "orders:read:any_customer"]
rate_limit = { rate = "10000000/min", burst = 1000000 }
[routes.query.start_date]
type = "date"
required = true
[routes.query.end_date]
type = "date"
required = true
[routes.query.page_size]
type = "integer"
min = 1
max = 100
default = 20
[[routes.response.views]]
scope = "orders:read"
allow = ["*"]
deny = ["orders[].payment"]
mask = { "orders[].customer.phone" = "phone", "orders[].customer.email" = "email", "orders[].customer.id_number" = "id_number", "orders[].shipping.phone" = "phone" }

[[routes]]
id = "order-detail-masked"
method = "GET"
path = "/v1/masked/orders/{order_id}"
upstream_path = "/api/orders/{order_id}"
require_scopes = ["orders:read"]
rate_limit = { rate = "10000000/min", burst = 1000000 }
[routes.params.order_id]
type = "string"
pattern = "^O[0-9]{8,16}$"
[[routes.response.views]]
scope = "orders:read"
allow = ["*"]
deny = ["payment"]
mask = { "customer.phone" = "phone", "customer.email" = "email", "customer.id_number" = "id_number", "shipping.phone" = "phone" }

"#;

/// The API key that signs its requests (`--signer`).
const PARTNER_ID: &str = "bench-partner";
const PARTNER_SIGNATURE: &str = r#"{ alg = "ed25519", public_key = "partner.pub.pem" }"#;

/// Writes the partner's ed25519 key pair and API key; returns the key's hash for the policy.
fn write_partner(dir: &Path) -> String {
    let (private, public) = ordergate::stage::signature::verify::SigningKey::generate_ed25519()
        .expect("an ed25519 key");
    std::fs::write(dir.join("partner.key.pem"), private).unwrap();
    std::fs::write(dir.join("partner.pub.pem"), public).unwrap();
    let (api_key, hash) = ordergate::stage::authn::api_key::generate();
    std::fs::write(dir.join("partner_api_key"), api_key).unwrap();
    hash
}

/// `tokens.txt`: `n` distinct ERP principals' `Authorization` headers, one per line.
fn write_principals(dir: &Path, key: &JwtKey, n: usize) {
    use std::io::Write as _;
    let file = std::fs::File::create(dir.join("tokens.txt")).unwrap();
    let mut out = std::io::BufWriter::new(file);
    for i in 0..n {
        let token = key
            .token(
                ISSUER,
                &format!("bench-{i:04}"),
                &["erp"],
                &[],
                Duration::from_secs(24 * 3600),
            )
            .unwrap();
        writeln!(out, "Authorization: Bearer {token}").unwrap();
    }
    out.flush().unwrap();
}

/// `signed.txt`: `--count` signed header sets for `GET --url` by the partner of `--dir`, each
/// with its own nonce and `created` = now (so `max_age` must cover the run that sends them).
fn signed(args: &[String]) {
    use ordergate::stage::signature::sign::{ToSign, fresh_nonce, sign};
    use ordergate::stage::signature::verify::SigningKey;
    use std::io::Write as _;
    ordergate::cli::install_crypto().unwrap();
    let dir = arg(args, "--dir").expect("--dir");
    let dir = Path::new(&dir);
    let url: http::Uri = arg(args, "--url")
        .expect("--url")
        .parse()
        .expect("an absolute URL");
    let count: usize = arg(args, "--count")
        .and_then(|n| n.parse().ok())
        .expect("--count N");
    let pem = std::fs::read(dir.join("partner.key.pem")).unwrap();
    let key = SigningKey::ed25519_from_pem(&pem).unwrap();
    let api_key = std::fs::read_to_string(dir.join("partner_api_key")).unwrap();
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let file = std::fs::File::create(dir.join("signed.txt")).unwrap();
    let mut out = std::io::BufWriter::new(file);
    for _ in 0..count {
        let nonce = fresh_nonce();
        let headers = sign(
            &key,
            PARTNER_ID,
            ToSign {
                method: &http::Method::GET,
                url: &url,
                body: None,
                content_type: None,
                created,
                nonce: &nonce,
            },
        )
        .unwrap();
        write!(out, "X-Api-Key: {}", api_key.trim()).unwrap();
        for (name, value) in headers {
            write!(out, "\t{name}: {value}").unwrap();
        }
        writeln!(out).unwrap();
    }
    out.flush().unwrap();
}

/// mimalloc, as in the gateway's binary, so `bare-proxy` allocates as the gateway does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Pool = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    hyper::body::Incoming,
>;

fn bare_proxy(args: &[String]) {
    use rustls_pki_types::pem::PemObject as _;
    ordergate::cli::install_crypto().unwrap();
    let dir = arg(args, "--dir").expect("--dir");
    let dir = Path::new(&dir);
    let upstream: SocketAddr = arg(args, "--upstream")
        .expect("--upstream")
        .parse()
        .unwrap();
    let port: u16 = arg(args, "--port").expect("--port").parse().unwrap();
    let workers: usize = arg(args, "--workers")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let per_core = args.iter().any(|a| a == "--per-core");
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(dir.join("server.crt"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider
        .cipher_suites
        .retain(|s| s.suite() == rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.ignore_client_order = true;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let bind = || {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.set_reuseport(true).unwrap();
        socket.bind(addr).unwrap();
        socket.listen(1024).unwrap()
    };
    let pool = || -> Pool {
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http()
    };
    if !per_core {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async { accept_loop(bind(), acceptor, pool(), upstream).await });
        return;
    }
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            let acceptor = acceptor.clone();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let listener = runtime.block_on(async { bind() });
            std::thread::spawn(move || {
                runtime.block_on(accept_loop(listener, acceptor, pool(), upstream));
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    pool: Pool,
    upstream: SocketAddr,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (acceptor, pool) = (acceptor.clone(), pool.clone());
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(stream).await else {
                return;
            };
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let pool = pool.clone();
                async move {
                    let (mut parts, body) = request.into_parts();
                    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                    // A target that does not make a URI (the path is the client's) is a 400.
                    let status = match format!("http://{upstream}{path}").parse() {
                        Ok(uri) => {
                            parts.uri = uri;
                            match pool.request(hyper::Request::from_parts(parts, body)).await {
                                Ok(answer) => {
                                    return Ok::<_, Infallible>(
                                        answer.map(http_body_util::Either::Left),
                                    );
                                }
                                Err(_) => hyper::StatusCode::BAD_GATEWAY,
                            }
                        }
                        Err(_) => hyper::StatusCode::BAD_REQUEST,
                    };
                    let empty = http_body_util::Empty::<Bytes>::new();
                    let mut refused = hyper::Response::new(http_body_util::Either::Right(empty));
                    *refused.status_mut() = status;
                    Ok(refused)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
