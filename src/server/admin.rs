//! The admin listener (plain HTTP, for loopback or a private interface): `/healthz`, `/readyz`,
//! `/metrics` and the abuse guard's `/admin/frozen`. Unfreezing is audited; health, readiness
//! and metrics requests are not.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::gateway::Gateway;
use crate::stage::audit::{Entry, record::format_ts};

/// The admin routes.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/admin/frozen", get(list_frozen))
        .route("/admin/frozen/{key}", delete(unfreeze))
        .with_state(gateway)
}

/// Serves the admin routes until `stop` turns true.
pub async fn serve(gateway: Arc<Gateway>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let app = router(gateway).into_make_service_with_connect_info::<SocketAddr>();
    let shutdown = async move {
        let _ = stop.changed().await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "admin listener failed");
    }
}

async fn readyz(State(gateway): State<Arc<Gateway>>) -> Response {
    if gateway.ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::vocab::metrics::render(),
    )
        .into_response()
}

async fn list_frozen(State(gateway): State<Arc<Gateway>>) -> Response {
    let list: Vec<serde_json::Value> = gateway
        .abuse
        .list()
        .into_iter()
        .map(|(key, until)| serde_json::json!({"key": key, "until": format_ts(until)}))
        .collect();
    axum::Json(list).into_response()
}

async fn unfreeze(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(key): Path<String>,
) -> Response {
    let started = Instant::now();
    let redis = gateway.limiter.redis();
    let found = gateway.abuse.unfreeze(&key, redis.as_deref()).await;
    let status = if found {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    };
    let entry = Entry {
        ts: SystemTime::now(),
        request_id: crate::stage::request_id::generate(),
        client_ip: peer.ip(),
        tls_version: None,
        client_subject: None,
        principal: None,
        method: http::Method::DELETE,
        route: Some(Arc::from("admin.unfreeze")),
        path: format!("/admin/frozen/{key}"),
        query: Vec::new(),
        reason: if found { "ok" } else { "not_found" },
        detail: None,
        status: status.as_u16(),
        upstream_status: None,
        duration: started.elapsed(),
        upstream: None,
        bytes_out: 0,
    };
    if !gateway.audit.record(entry).await {
        return (StatusCode::SERVICE_UNAVAILABLE, "audit unavailable\n").into_response();
    }
    if found {
        tracing::info!(key = %key, "unfrozen by an operator");
    }
    status.into_response()
}
