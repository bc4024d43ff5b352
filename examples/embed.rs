//! Mounting ordergate inside your own axum application: `/v1/*` goes through the gateway's
//! pipeline (authentication, owner binding, parameters, limits, views, audit), `/hello` is the
//! host's own route, and one host-wide tower-http layer stamps every response.
//!
//! `cargo run --example embed -- path/to/policy.toml` then `curl http://127.0.0.1:<port>/hello`.
//!
//! The host terminates TLS (or sits behind something that does): the gateway learns the peer
//! from axum's `ConnectInfo`, so serve with `into_make_service_with_connect_info`. Without it
//! the gateway refuses every request (500): it will not run limits or write audit records
//! without a client address.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use http::{HeaderName, HeaderValue};
use ordergate::gateway::Gateway;
use ordergate::pipeline::service::{GatewayService, layered};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_http::set_header::SetResponseHeaderLayer;

/// The header the host application adds to every response, its own and the gateway's.
pub const SERVED_BY: &str = "x-served-by";

/// The host's router: its own `/hello`, and the gateway for everything under `/v1/`.
pub fn router(gateway: Arc<Gateway>) -> Router {
    // `layered` adds the request span and the panic guard (a 500 problem, recorded).
    let orders = layered(GatewayService::embedded(gateway));
    Router::new()
        .route(
            "/hello",
            get(|| async { "hello from the host application\n" }),
        )
        .route_service("/v1/{*rest}", orders)
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static(SERVED_BY),
            HeaderValue::from_static("host-app"),
        ))
}

/// Loads the policy at `policy_path`, starts the gateway's state (audit writer, JWKS, limiter)
/// and serves the host router on 127.0.0.1 on a free port.
pub async fn serve(policy_path: &Path) -> Result<(SocketAddr, JoinHandle<()>), String> {
    let policy = ordergate::policy::load(policy_path).map_err(|problems| {
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let gateway = Gateway::start(policy, policy_path)
        .await
        .map_err(|e| e.to_string())?;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let app = router(gateway).into_make_service_with_connect_info::<SocketAddr>();
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("server ended: {e}");
        }
    });
    Ok((addr, task))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    ordergate::cli::install_crypto()?;
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: embed <policy.toml>")?;
    let (addr, _task) = serve(Path::new(&path)).await?;
    println!("serving on http://{addr} (/hello, /v1/...)");
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
    Ok(())
}
