//! The compiled policy: every value checked and turned into the type the request path uses
//! (durations, limits, compiled regexes, parsed keys, a route matcher). Built once by
//! `config::load`, shared as `Arc<Policy>`, replaced whole on reload.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::Method;

use crate::abuse::AbuseSettings;
use crate::audit::AuditSettings;
use crate::authn::AuthSettings;
use crate::authz::OwnerBinding;
use crate::circuit::BreakerSettings;
use crate::rate_limit::{BucketRef, RateLimitSettings};
use crate::route::{PathTemplate, RouteTable};
use crate::scopes::{ScopeRegistry, ScopeSet};
use crate::validate::RouteParams;
use crate::views::CompiledView;

/// A role's scopes.
#[derive(Debug, Clone, Default)]
pub struct RoleScopes {
    pub names: Vec<Arc<str>>,
    pub set: ScopeSet,
}

/// `[roles]`, compiled.
pub type Roles = HashMap<String, RoleScopes>;

/// `client_auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    Off,
    Optional,
    Required,
}

/// `[server.tls]`, compiled: a ready rustls configuration.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub config: Arc<rustls::ServerConfig>,
    pub client_auth: ClientAuth,
}

/// `[server]`, compiled.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    pub max_connections: usize,
    pub max_in_flight: usize,
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_request_body: u64,
    pub shutdown_grace: Duration,
    /// Open connections one client address may hold (peers in `trusted_proxies` are exempt).
    pub max_connections_per_ip: usize,
    /// Concurrent streams per HTTP/2 connection.
    pub max_concurrent_streams: u32,
    /// A connection with no request in progress for this long is closed (HTTP/2: GOAWAY).
    pub idle_timeout: Duration,
    /// A response that makes no progress towards the client for this long is aborted.
    pub send_stall_timeout: Duration,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `None` only with `insecure_plaintext = true` on a loopback address.
    pub tls: Option<TlsSettings>,
}

/// `[upstream]`, compiled.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// `scheme://authority`, without a trailing slash.
    pub origin: String,
    /// A path prefix from the URL (e.g. `/erp`), without a trailing slash.
    pub base_path: String,
    pub https: bool,
    pub ca: Option<Vec<rustls_pki_types::CertificateDer<'static>>>,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub retry_budget: f64,
    pub pool_idle_per_host: usize,
    pub pool_idle_timeout: Duration,
    pub forward_identity: bool,
    pub expose_errors: bool,
    pub breaker: BreakerSettings,
}

/// One route, compiled.
#[derive(Debug, Clone)]
pub struct Route {
    pub id: Arc<str>,
    pub method: Method,
    pub path: PathTemplate,
    pub upstream_path: PathTemplate,
    pub require_scopes: ScopeSet,
    /// The scope names as written, for documentation.
    pub require_scope_names: Vec<String>,
    pub owner: Option<OwnerBinding>,
    pub rate_limit: Option<BucketRef>,
    pub params: RouteParams,
    pub views: Vec<CompiledView>,
    pub summary: Option<String>,
}

/// The whole policy.
#[derive(Debug)]
pub struct Policy {
    /// The file it was read from.
    pub source: PathBuf,
    pub server: ServerSettings,
    pub upstream: UpstreamSettings,
    pub auth: AuthSettings,
    pub roles: Roles,
    pub scopes: ScopeRegistry,
    pub routes: Vec<Route>,
    pub table: RouteTable,
    pub rate_limits: RateLimitSettings,
    pub abuse: AbuseSettings,
    pub audit: AuditSettings,
}

impl Policy {
    /// A one-line summary for `ordergate check`.
    pub fn summary(&self) -> String {
        let mut auth = Vec::new();
        if self.auth.jwt.is_some() {
            auth.push("jwt".to_owned());
        }
        if let Some(keys) = &self.auth.api_keys {
            auth.push(format!("{} api key(s)", keys.len()));
        }
        if !self.auth.mtls.is_empty() {
            auth.push(format!("{} mtls client(s)", self.auth.mtls.len()));
        }
        format!(
            "{}: ok — {} route(s), {} role(s), auth: {}, listen {}{}",
            self.source.display(),
            self.routes.len(),
            self.roles.len(),
            if auth.is_empty() {
                "none".to_owned()
            } else {
                auth.join(", ")
            },
            if self.server.tls.is_some() {
                "https://"
            } else {
                "http://"
            },
            self.server.listen,
        )
    }
}
