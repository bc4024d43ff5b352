//! Helpers for `benches/load.sh`: a fast fixed-answer order service, and the writer of a
//! benchmark policy with its certificates, keys and credentials.
//!
//! `bench_kit upstream --port P [--page-size N]`
//! `bench_kit setup --dir D --upstream HOST:PORT --port P --admin-port A [--redis URL]`

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
use serde_json::json;

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
        _ => {
            eprintln!(
                "usage: bench_kit upstream --port P [--page-size N] | setup --dir D --upstream HOST:PORT --port P --admin-port A [--redis URL]"
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
    let one = Bytes::from(serde_json::to_vec(&order(1)).unwrap());
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
            let (one, page) = (one.clone(), page.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let body = if request.uri().path() == "/api/orders" {
                        page.clone()
                    } else {
                        one.clone()
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
    let ca = Ca::new("bench CA").unwrap();
    let server = ca.server(&["127.0.0.1", "localhost"]).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.crt"), &server.cert_pem).unwrap();
    std::fs::write(dir.join("server.key"), &server.key_pem).unwrap();
    let key = JwtKey::generate(Algorithm::ES256, "bench").unwrap();
    std::fs::write(dir.join("jwks.json"), jwks(&[&key])).unwrap();
    let (api_key, hash) = ordergate::stage::authn::api_key::generate();
    let token = key
        .token(
            "https://idp.bench/",
            "alice",
            &["customer"],
            &[("customer_id", json!("C0000001"))],
            Duration::from_secs(24 * 3600),
        )
        .unwrap();
    std::fs::write(dir.join("token"), &token).unwrap();
    // The same key's token for an ERP service: the same route as the API key, for comparison.
    let erp_token = key
        .token(
            "https://idp.bench/",
            "erp-service",
            &["erp"],
            &[],
            Duration::from_secs(24 * 3600),
        )
        .unwrap();
    std::fs::write(dir.join("erp_token"), &erp_token).unwrap();
    std::fs::write(dir.join("api_key"), &api_key).unwrap();
    let backend = match redis {
        Some(url) => {
            format!("backend = \"redis\"\nredis_url = \"{url}\"\non_backend_error = \"local\"")
        }
        None => "backend = \"local\"".to_owned(),
    };
    let policy = POLICY
        .replace("{port}", &port)
        .replace("{admin}", &admin)
        .replace("{upstream}", &upstream)
        .replace("{hash}", &hash)
        .replace("{backend}", &backend);
    std::fs::write(dir.join("policy.toml"), policy).unwrap();
    let _ = Arc::new(());
}

const POLICY: &str = r#"
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin}"
max_connections = 10000
max_in_flight = 4096
[server.tls]
cert = "server.crt"
key = "server.key"

[upstream]
url = "http://{upstream}"
pool_idle_per_host = 256

[auth.jwt]
issuer = "https://idp.bench/"
audiences = ["ordergate"]
algorithms = ["ES256"]
jwks_file = "jwks.json"

[auth.api_keys]
header = "X-Api-Key"
[[auth.api_keys.keys]]
id = "erp-sync"
hash = "{hash}"
roles = ["erp"]

[roles.customer]
scopes = ["orders:read"]
[roles.erp]
scopes = ["orders:read", "orders:read:any_customer", "orders:read:full"]

[[routes]]
id = "customer-orders"
method = "GET"
path = "/v1/customers/{customer_id}/orders"
upstream_path = "/api/orders"
require_scopes = ["orders:read"]
owner = { param = "customer_id", claim = "customer_id", bypass_scopes = ["orders:read:any_customer"] }
rate_limit = { rate = "10000000/min", burst = 1000000 }
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
[[routes.response.views]]
scope = "orders:read:full"
allow = ["*"]
[[routes.response.views]]
scope = "orders:read"
allow = ["orders[].order_id", "orders[].status", "orders[].created_at", "orders[].total", "orders[].items", "next_cursor"]

[[routes]]
id = "order-detail"
method = "GET"
path = "/v1/orders/{order_id}"
upstream_path = "/api/orders/{order_id}"
require_scopes = ["orders:read", "orders:read:any_customer"]
rate_limit = { rate = "10000000/min", burst = 1000000 }
[routes.params.order_id]
type = "string"
pattern = "^O[0-9]{8,16}$"

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

[rate_limits]
{backend}
per_principal = { rate = "10000000/min", burst = 1000000 }

[audit]
path = "audit/audit.jsonl"
fsync = "batch"
sensitive_params = ["phone"]
"#;
