//! The integration harness: per test, a CA and certificates, JWT keys and API keys made on the
//! spot, a recording fake order service, and the real gateway serving a policy written into a
//! temporary directory — all on ephemeral loopback ports. A client that trusts the test CA talks
//! real HTTPS to it.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use jsonwebtoken::Algorithm;
use ordergate::demo::pki::{Ca, Issued, JwtKey, jwks};
use ordergate::server::Running;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tempfile::TempDir;

pub const ISSUER: &str = "https://idp.test/";

/// What the fake order service answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A JSON body with this status.
    Json(u16, Value),
    /// A body with this status and content type.
    Raw(u16, &'static str, String),
    /// A body with this status and these headers.
    Headers(u16, Vec<(&'static str, &'static str)>, String),
    /// Never answers.
    Hang,
    /// Waits, then answers like `Orders`.
    Delay(u64),
    /// Sends headers, then breaks the connection mid-body.
    Abort,
    /// Sends headers and a first chunk, then goes silent (connection kept open).
    Stall,
    /// The default: a realistic orders page, or one order for `/api/orders/{id}`.
    Orders,
}

/// One request the fake order service received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query exactly as received.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// A recording, steerable stand-in for the order service.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    requests: Mutex<Vec<Recorded>>,
    queue: Mutex<VecDeque<Reply>>,
    default: Mutex<Reply>,
}

impl FakeUpstream {
    pub async fn start() -> Arc<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = Arc::new(Self {
            addr: listener.local_addr().unwrap(),
            requests: Mutex::new(Vec::new()),
            queue: Mutex::new(VecDeque::new()),
            default: Mutex::new(Reply::Orders),
        });
        let state = upstream.clone();
        let app = axum::Router::new().fallback(move |request: Request| {
            let state = state.clone();
            async move { state.answer(request).await }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        upstream
    }

    async fn answer(&self, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20)
            .await
            .unwrap_or_default()
            .to_vec();
        let target = parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default();
        self.requests.lock().push(Recorded {
            method: parts.method.to_string(),
            target: target.clone(),
            headers: parts.headers.clone(),
            body,
        });
        let reply = self
            .queue
            .lock()
            .pop_front()
            .unwrap_or_else(|| self.default.lock().clone());
        match reply {
            Reply::Json(status, value) => {
                (StatusCode::from_u16(status).unwrap(), axum::Json(value)).into_response()
            }
            Reply::Raw(status, content_type, body) => (
                StatusCode::from_u16(status).unwrap(),
                [("content-type", content_type)],
                body,
            )
                .into_response(),
            Reply::Headers(status, headers, body) => {
                let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
                for (name, value) in headers {
                    response.headers_mut().insert(name, value.parse().unwrap());
                }
                response
            }
            Reply::Hang => {
                std::future::pending::<()>().await;
                StatusCode::OK.into_response()
            }
            Reply::Delay(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                axum::Json(sample_page()).into_response()
            }
            Reply::Stall => Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Body::from_stream(stalling_stream()))
                .unwrap(),
            Reply::Abort => {
                let stream = futures_stream();
                Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .body(Body::from_stream(stream))
                    .unwrap()
            }
            Reply::Orders => {
                let body = if parts.uri.path().starts_with("/api/orders/") {
                    sample_order("O2025010100000001")
                } else {
                    sample_page()
                };
                let mut response = axum::Json(body).into_response();
                response
                    .headers_mut()
                    .insert("server", "OrderService/2.3 (Java)".parse().unwrap());
                response
                    .headers_mut()
                    .insert("x-powered-by", "Servlet/3.1".parse().unwrap());
                response
            }
        }
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().clone()
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.requests.lock().len()
    }

    /// Answers the next requests with these replies, then the default again.
    pub fn queue(&self, replies: impl IntoIterator<Item = Reply>) {
        self.queue.lock().extend(replies);
    }

    /// Changes the default answer.
    pub fn set_default(&self, reply: Reply) {
        *self.default.lock() = reply;
    }
}

/// One chunk, then nothing ever again.
fn stalling_stream() -> impl futures_core::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send
{
    struct Stalling(bool);
    impl futures_core::Stream for Stalling {
        type Item = Result<bytes::Bytes, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            if self.0 {
                return std::task::Poll::Pending;
            }
            self.0 = true;
            std::task::Poll::Ready(Some(Ok(bytes::Bytes::from_static(b"{\"orders\": ["))))
        }
    }
    Stalling(false)
}

fn futures_stream() -> impl futures_core::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send
{
    struct Broken(u8);
    impl futures_core::Stream for Broken {
        type Item = Result<bytes::Bytes, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            self.0 += 1;
            std::task::Poll::Ready(Some(if self.0 == 1 {
                Ok(bytes::Bytes::from_static(b"{\"orders\": ["))
            } else {
                Err(std::io::Error::other("upstream broke"))
            }))
        }
    }
    Broken(0)
}

/// One order with every kind of personal data.
pub fn sample_order(id: &str) -> Value {
    json!({
        "order_id": id,
        "customer_id": "C0000001",
        "status": "shipped",
        "created_at": "2025-03-01T10:00:00+08:00",
        "total": 199.0,
        "items": [{"sku": "P1", "name": "耳机", "qty": 1, "price": 199.0}],
        "customer": {"name": "张三", "phone": "13812345678", "email": "zhang.san@example.com", "id_number": "11010519491231002X"},
        "payment": {"method": "card", "card_number": "6222021234567890128", "amount": 199.0},
        "shipping": {"recipient": "张三", "phone": "13987654321", "address": "北京市朝阳区建国路88号", "carrier": "SF Express"},
        "internal": {"margin": 0.2}
    })
}

/// A page of two orders.
pub fn sample_page() -> Value {
    json!({"orders": [sample_order("O2025010100000001"), sample_order("O2025010100000002")], "next_cursor": "abc"})
}

/// Keys and certificates of one test.
pub struct Keys {
    pub ca: Ca,
    pub server: Issued,
    pub partners: Ca,
    pub jd: Issued,
    pub stranger: Issued,
    pub es256: JwtKey,
    pub erp_key: String,
    pub logistics_key: String,
    pub expired_key: String,
    pub future_key: String,
}

impl Keys {
    pub fn new() -> Self {
        let ca = Ca::new("test CA").unwrap();
        let server = ca.server(&["127.0.0.1", "localhost"]).unwrap();
        let partners = Ca::new("test partners CA").unwrap();
        let jd = partners
            .client("jd-marketplace", Some("JD Partner"))
            .unwrap();
        let stranger = partners.client("unknown-partner", Some("Nobody")).unwrap();
        let key = || ordergate::stage::authn::api_key::generate().0;
        Self {
            ca,
            server,
            partners,
            jd,
            stranger,
            es256: JwtKey::generate(Algorithm::ES256, "test-es256").unwrap(),
            erp_key: key(),
            logistics_key: key(),
            expired_key: key(),
            future_key: key(),
        }
    }
}

fn hash(key: &str) -> String {
    use sha2::Digest;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(key.as_bytes()))
    )
}

/// The test policy: the reference policy's routes and roles, small limits, test files.
pub fn base_policy(keys: &Keys, upstream: SocketAddr) -> String {
    POLICY
        .replace("{upstream}", &upstream.to_string())
        .replace("{issuer}", ISSUER)
        .replace("{erp_hash}", &hash(&keys.erp_key))
        .replace("{logistics_hash}", &hash(&keys.logistics_key))
        .replace("{expired_hash}", &hash(&keys.expired_key))
        .replace("{future_hash}", &hash(&keys.future_key))
}

const POLICY: &str = r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
max_connections = 200
# Every test client is 127.0.0.1.
max_connections_per_ip = 200
max_in_flight = 64
header_read_timeout = "2s"
request_timeout = "5s"
max_header_bytes = "8KiB"
max_request_body = "1KiB"
shutdown_grace = "3s"

[server.tls]
cert = "server.crt"
key = "server.key"
min_version = "1.2"
client_auth = "optional"
client_ca = "partners-ca.pem"

[upstream]
url = "http://{upstream}"
connect_timeout = "500ms"
timeout = "1s"
retries = 1
forward_identity = true
expose_errors = false

[upstream.circuit_breaker]
consecutive_failures = 5
failure_rate = 0.5
window = "10s"
min_requests = 20
open_for = "1s"
half_open_probes = 2
failure_statuses = [500, 502, 503, 504]

[auth.jwt]
issuer = "{issuer}"
audiences = ["ordergate"]
algorithms = ["ES256"]
jwks_file = "jwks.json"
leeway = "30s"
scope_claim = "scope"
roles_claim = "roles"
tenant_claim = "tenant"

[auth.api_keys]
header = "X-Api-Key"

[[auth.api_keys.keys]]
id = "erp-sync"
hash = "{erp_hash}"
roles = ["erp"]
tenant = "acme"
not_before = "2026-01-01T00:00:00Z"

[[auth.api_keys.keys]]
id = "sf-logistics"
hash = "{logistics_hash}"
roles = ["logistics_partner"]
tenant = "acme"

[[auth.api_keys.keys]]
id = "old-key"
hash = "{expired_hash}"
roles = ["erp"]
not_after = "2020-01-01T00:00:00Z"

[[auth.api_keys.keys]]
id = "next-key"
hash = "{future_hash}"
roles = ["erp"]
not_before = "2099-01-01T00:00:00Z"

[[auth.mtls.clients]]
subject = "CN=jd-marketplace,O=JD Partner"
roles = ["marketplace_partner"]
tenant = "acme"

[roles.customer]
scopes = ["orders:read"]
[roles.customer_service]
scopes = ["orders:read", "orders:read:any_customer", "orders:read:contact"]
[roles.erp]
scopes = ["orders:read", "orders:read:any_customer", "orders:read:full", "orders:write"]
[roles.logistics_partner]
scopes = ["orders:read", "orders:read:any_customer", "orders:read:shipping"]
[roles.marketplace_partner]
scopes = ["orders:read", "orders:read:any_customer"]

[[routes]]
id = "customer-orders"
method = "GET"
path = "/v1/customers/{customer_id}/orders"
upstream_path = "/api/orders"
require_scopes = ["orders:read"]
owner = { param = "customer_id", claim = "customer_id", bypass_scopes = ["orders:read:any_customer"] }
rate_limit = { rate = "120/min", burst = 20 }
forward_params = { customer_id = "customer_id" }
[routes.params.customer_id]
type = "string"
pattern = "^C[0-9]{6,12}$"
[routes.query.start_date]
type = "date"
required = true
[routes.query.end_date]
type = "date"
required = true
[routes.query.status]
type = "enum"
values = ["pending", "paid", "shipped", "delivered", "refunded", "cancelled"]
[routes.query.page_size]
type = "integer"
min = 1
max = 100
default = 20
[routes.query.cursor]
type = "string"
pattern = "^[A-Za-z0-9_-]{1,64}$"
[routes.query.phone]
type = "string"
pattern = "^1[0-9]{10}$"
[[routes.constraints]]
kind = "date_range"
from = "start_date"
to = "end_date"
max_days = 366
[[routes.response.views]]
scope = "orders:read:full"
allow = ["*"]
[[routes.response.views]]
scope = "orders:read:contact"
allow = ["*"]
deny = ["orders[].payment"]
mask = { "orders[].customer.phone" = "phone", "orders[].customer.email" = "email", "orders[].customer.id_number" = "id_number" }
[[routes.response.views]]
scope = "orders:read:shipping"
allow = ["orders[].order_id", "orders[].status", "orders[].created_at", "orders[].shipping", "next_cursor"]
mask = { "orders[].shipping.phone" = "phone" }
[[routes.response.views]]
scope = "orders:read"
allow = ["orders[].order_id", "orders[].status", "orders[].created_at", "orders[].total", "orders[].items", "next_cursor"]

[[routes]]
id = "order-detail"
method = "GET"
path = "/v1/orders/{order_id}"
upstream_path = "/api/orders/{order_id}"
require_scopes = ["orders:read", "orders:read:any_customer"]
rate_limit = { rate = "300/min", burst = 50 }
[routes.params.order_id]
type = "string"
pattern = "^O[0-9]{8,16}$"
[[routes.response.views]]
scope = "orders:read:full"
allow = ["*"]
[[routes.response.views]]
scope = "orders:read:shipping"
allow = ["order_id", "status", "shipping"]
mask = { "shipping.phone" = "phone" }
[[routes.response.views]]
scope = "orders:read"
allow = ["order_id", "status", "created_at", "total", "items"]

[[routes]]
id = "order-notes"
method = "POST"
path = "/v1/orders/{order_id}/notes"
upstream_path = "/api/orders/{order_id}/notes"
require_scopes = ["orders:write"]
[routes.params.order_id]
type = "string"
pattern = "^O[0-9]{8,16}$"
[routes.body]
content_types = ["text/plain"]

[[routes]]
id = "order-raw"
method = "GET"
path = "/v1/raw/orders/{order_id}"
upstream_path = "/api/orders/{order_id}"
require_scopes = ["orders:read:full"]
[routes.params.order_id]
type = "string"
pattern = "^O[0-9]{8,16}$"

[rate_limits]
backend = "local"
on_backend_error = "local"
per_principal = { rate = "1000/min", burst = 100 }
per_ip_unauthenticated = { rate = "30/min", burst = 10 }

[abuse]
window = "1m"
max_denials = 1000
freeze_for = "15m"

[audit]
path = "audit/audit.jsonl"
rotate_bytes = "100MiB"
keep_files = 5
fsync = "batch"
on_error = "reject"
sensitive_params = ["phone", "email", "id_number"]
"#;

/// A gateway under test with its fake order service.
pub struct Harness {
    pub dir: TempDir,
    pub keys: Arc<Keys>,
    pub upstream: Arc<FakeUpstream>,
    pub running: Option<Running>,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub client: reqwest::Client,
}

/// Text edits applied to the base policy; each must match, so a typo fails the test.
pub fn edit(policy: &str, edits: &[(&str, &str)]) -> String {
    let mut text = policy.to_owned();
    for (from, to) in edits {
        assert!(text.contains(from), "the test policy has no `{from}`");
        text = text.replacen(from, to, 1);
    }
    text
}

pub fn install() {
    ordergate::cli::install_crypto().unwrap();
}

impl Harness {
    /// The base policy as is.
    pub async fn start() -> Self {
        Self::with(|p| p.to_owned()).await
    }

    /// The base policy changed by `change`.
    pub async fn with(change: impl FnOnce(&str) -> String) -> Self {
        install();
        let keys = Arc::new(Keys::new());
        let upstream = FakeUpstream::start().await;
        Self::with_parts(keys, upstream, change).await
    }

    pub async fn with_parts(
        keys: Arc<Keys>,
        upstream: Arc<FakeUpstream>,
        change: impl FnOnce(&str) -> String,
    ) -> Self {
        Self::with_files(keys, upstream, change, &[]).await
    }

    /// Like `with_parts`, writing `files` (name, contents) next to the policy first.
    pub async fn with_files(
        keys: Arc<Keys>,
        upstream: Arc<FakeUpstream>,
        change: impl FnOnce(&str) -> String,
        files: &[(&str, String)],
    ) -> Self {
        install();
        let dir = tempfile::tempdir().unwrap();
        write_files(dir.path(), &keys);
        for (name, contents) in files {
            std::fs::write(dir.path().join(name), contents).unwrap();
        }
        let policy = change(&base_policy(&keys, upstream.addr));
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, &policy).unwrap();
        let loaded = ordergate::policy::load(&path)
            .unwrap_or_else(|p| panic!("test policy invalid: {p:#?}"));
        let running = ordergate::server::start(loaded, &path).await.unwrap();
        let addr = running.addr;
        let admin = running.admin_addr.unwrap();
        let client = client(&keys, None, true);
        Self {
            dir,
            keys,
            upstream,
            running: Some(running),
            addr,
            admin,
            client,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub fn policy_path(&self) -> PathBuf {
        self.dir.path().join("policy.toml")
    }

    pub fn audit_path(&self) -> PathBuf {
        self.dir.path().join("audit/audit.jsonl")
    }

    /// A token signed with the test ES256 key.
    pub fn token(&self, sub: &str, roles: &[&str], claims: &[(&str, Value)]) -> String {
        token_with(&self.keys.es256, sub, roles, claims)
    }

    /// Alice, customer C0000001.
    pub fn alice(&self) -> String {
        format!(
            "Bearer {}",
            self.token(
                "alice",
                &["customer"],
                &[("customer_id", json!("C0000001"))]
            )
        )
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.send().await.unwrap()
    }

    /// Stops the gateway (drains, flushes the audit log).
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }

    /// Audit records written so far (after `stop`, all of them).
    pub fn audit_records(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.audit_path()).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits until the record of `request_id` is written (bounded) and returns it.
    pub async fn record_of(&self, request_id: &str) -> Value {
        for _ in 0..500 {
            if let Some(r) = self
                .audit_records()
                .into_iter()
                .find(|r| r["request_id"] == request_id)
            {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no audit record for {request_id}");
    }

    /// Waits until the writer has written `n` records (bounded).
    pub async fn wait_for_records(&self, n: usize) -> Vec<Value> {
        for _ in 0..500 {
            let records = self.audit_records();
            if records.len() >= n {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "expected {n} audit records, found {}",
            self.audit_records().len()
        );
    }
}

pub fn token_with(key: &JwtKey, sub: &str, roles: &[&str], claims: &[(&str, Value)]) -> String {
    key.token(ISSUER, sub, roles, claims, Duration::from_secs(600))
        .unwrap()
}

pub fn write_files(dir: &Path, keys: &Keys) {
    std::fs::write(dir.join("server.crt"), &keys.server.cert_pem).unwrap();
    std::fs::write(dir.join("server.key"), &keys.server.key_pem).unwrap();
    std::fs::write(dir.join("ca.pem"), keys.ca.pem()).unwrap();
    std::fs::write(dir.join("partners-ca.pem"), keys.partners.pem()).unwrap();
    std::fs::write(dir.join("jwks.json"), jwks(&[&keys.es256])).unwrap();
}

/// A client trusting the test CA, optionally presenting a client certificate.
pub fn client(keys: &Keys, identity: Option<&Issued>, h2: bool) -> reqwest::Client {
    install();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(keys.ca.pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match identity {
        Some(id) => {
            let certs = rustls_pki_types::CertificateDer::pem_slice_iter(id.cert_pem.as_bytes())
                .map(|c| c.unwrap())
                .collect();
            let key =
                rustls_pki_types::PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = if h2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

use rustls_pki_types::pem::PemObject as _;

/// A TLS connection to the gateway for writing raw requests (paths a URL library would
/// normalise, oversized headers, slow clients).
pub async fn raw_tls(h: &Harness) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(h.keys.ca.pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    connector.connect(name, tcp).await.unwrap()
}

/// Sends one raw HTTP/1.1 request (`Connection: close` is added) and returns status and body.
pub async fn raw_request(
    h: &Harness,
    request_line: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = raw_tls(h).await;
    let mut text = format!("{request_line}\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str("\r\n");
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// An HTTPS server (certificate from the test CA) answering every request with `body()`;
/// returns its address and a request counter.
pub async fn serve_https(
    keys: &Keys,
    body: Arc<Mutex<String>>,
) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(keys.server.cert_pem.as_bytes())
        .map(|c| c.unwrap())
        .collect();
    let key =
        rustls_pki_types::PrivateKeyDer::from_pem_slice(keys.server.key_pem.as_bytes()).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let body = body.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |_req| {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let text = body.lock().clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .header("content-type", "application/json")
                                .body(http_body_util::Full::new(bytes::Bytes::from(text)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, hits)
}

/// A real `redis-server` on a free loopback port, stopped on drop.
pub struct RedisServer {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    /// Starts one on a free port. Without `redis-server` installed the test is skipped with a
    /// note — unless `ORDERGATE_REQUIRE_REDIS` is set (CI sets it), then it fails.
    pub async fn start() -> Option<Self> {
        let installed = std::process::Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok();
        if !installed {
            assert!(
                std::env::var_os("ORDERGATE_REQUIRE_REDIS").is_none(),
                "redis-server is required (ORDERGATE_REQUIRE_REDIS is set): apt-get install redis-server"
            );
            eprintln!("SKIPPED: redis-server is not installed (apt-get install redis-server)");
            return None;
        }
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        Some(Self::start_on(port).await)
    }

    /// Starts one on `port` (to bring a stopped server back).
    pub async fn start_on(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is needed for these tests (apt-get install redis-server)");
        let server = Self {
            port,
            child: Some(child),
        };
        for _ in 0..500 {
            if server.ping() {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("redis-server did not come up on port {port}");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn ping(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(mut con) = client.get_connection_with_timeout(Duration::from_millis(200)) else {
            return false;
        };
        redis::cmd("PING").query::<String>(&mut con).is_ok()
    }

    /// Keys matching `pattern`.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let client = redis::Client::open(self.url()).unwrap();
        let mut con = client.get_connection().unwrap();
        redis::cmd("KEYS").arg(pattern).query(&mut con).unwrap()
    }

    /// Stops the server and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
