//! The compiled policy: every value checked and turned into the type the request path uses
//! (durations, limits, compiled regexes, parsed keys, a route matcher). Built once by
//! `config::load`, shared as `Arc<Policy>`, replaced whole on reload.

mod abuse;
mod audit;
mod auth;
pub mod body;
pub mod compile;
pub mod params;
mod rate_limits;
mod roles;
mod routes;
mod server;
mod upstream;

#[cfg(test)]
mod fixtures;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::Method;

use crate::stage::abuse::AbuseSettings;
use crate::stage::audit::AuditSettings;
use crate::stage::authn::AuthSettings;
use crate::stage::authz::Access;
use crate::stage::proxy::UpstreamSettings;
use crate::stage::rate_limit::{BucketRef, RateLimitSettings};
use crate::stage::route::{PathTemplate, RouteTable};
use crate::stage::validate::RouteParams;
use crate::stage::validate::body::BodyRule;
use crate::stage::views::CompiledView;
use crate::vocab::scopes::{Roles, ScopeRegistry};

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
    /// When set, `/admin/*` requires `Authorization: Bearer <token>`; required for an
    /// `admin_listen` that is not a loopback address.
    pub admin_token: Option<crate::vocab::secret::Secret>,
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

/// One route, compiled.
#[derive(Debug, Clone)]
pub struct Route {
    pub id: Arc<str>,
    pub method: Method,
    pub path: PathTemplate,
    pub upstream_path: PathTemplate,
    /// What stage 6 demands of a caller.
    pub access: Access,
    /// The scope names as written, for documentation.
    pub require_scope_names: Vec<String>,
    pub rate_limit: Option<BucketRef>,
    pub params: RouteParams,
    /// The request body it accepts (none: no body at all).
    pub body: Option<BodyRule>,
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

/// Loads and validates the policy at `path`, and every file it names.
pub fn load(path: &Path) -> Result<Policy, Vec<crate::config::PolicyProblem>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![crate::config::PolicyProblem {
            file: path.to_path_buf(),
            line: 1,
            col: 1,
            message: format!("cannot read the policy: {e}"),
        }]
    })?;
    load_str(path, &text)
}

/// Validates policy text as if it were the file at `path` (relative file names resolve there).
pub fn load_str(path: &Path, text: &str) -> Result<Policy, Vec<crate::config::PolicyProblem>> {
    let mut problems = crate::config::problems::Problems::default();
    let Some((raw, doc)) = crate::config::read::read(text, &mut problems) else {
        return Err(problems.resolve(path, text, None));
    };
    let policy = compile::compile(raw, path, &mut problems);
    match policy {
        Some(policy) if problems.is_empty() => Ok(policy),
        _ => Err(problems.resolve(path, text, Some(&doc))),
    }
}
