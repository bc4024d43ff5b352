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
    /// No client certificate is asked for.
    Off,
    /// A certificate is asked for and verified when sent.
    Optional,
    /// A verified certificate is required for the handshake.
    Required,
}

/// `[server.tls]`, compiled: a ready rustls configuration.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// The rustls configuration, certificates and ALPN set.
    pub config: Arc<rustls::ServerConfig>,
    /// Whether client certificates are asked for.
    pub client_auth: ClientAuth,
}

/// `[server]`, compiled.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// The address of the gateway's listener.
    pub listen: SocketAddr,
    /// The address of the admin listener, if any.
    pub admin_listen: Option<SocketAddr>,
    /// When set, `/admin/*` requires `Authorization: Bearer <token>`; required for an
    /// `admin_listen` that is not a loopback address.
    pub admin_token: Option<crate::vocab::secret::Secret>,
    /// Open client connections, in total.
    pub max_connections: usize,
    /// Requests being served at once; more are refused with 503.
    pub max_in_flight: usize,
    /// Time for the TLS handshake and each request's headers; also the keep-alive idle limit.
    pub header_read_timeout: Duration,
    /// Time for the whole request, gateway side (then 504).
    pub request_timeout: Duration,
    /// Largest request head accepted.
    pub max_header_bytes: usize,
    /// Largest request body accepted, in bytes.
    pub max_request_body: u64,
    /// How long shutdown drains the requests in flight.
    pub shutdown_grace: Duration,
    /// Open connections one client address may hold (peers in `trusted_proxies` are exempt).
    pub max_connections_per_ip: usize,
    /// Concurrent streams per HTTP/2 connection.
    pub max_concurrent_streams: u32,
    /// A connection with no request in progress for this long is closed (HTTP/2: GOAWAY).
    pub idle_timeout: Duration,
    /// A response that makes no progress towards the client for this long is aborted.
    pub send_stall_timeout: Duration,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Worker threads of the runtime serving requests (read at start only).
    pub workers: usize,
    /// `None` only with `insecure_plaintext = true` on a loopback address.
    pub tls: Option<TlsSettings>,
}

/// One route, compiled.
#[derive(Debug, Clone)]
pub struct Route {
    /// The route's id, as in the audit record and metrics.
    pub id: Arc<str>,
    /// The method it serves.
    pub method: Method,
    /// The public path template.
    pub path: PathTemplate,
    /// The upstream path template it is rewritten to.
    pub upstream_path: PathTemplate,
    /// What stage 6 demands of a caller.
    pub access: Access,
    /// The scope names as written, for documentation.
    pub require_scope_names: Vec<String>,
    /// The route's own bucket, if any.
    pub rate_limit: Option<BucketRef>,
    /// What the path and query parameters must be.
    pub params: RouteParams,
    /// The request body it accepts (none: no body at all).
    pub body: Option<BodyRule>,
    /// Response views, in order: the first the caller's scopes allow applies.
    pub views: Vec<CompiledView>,
    /// For the OpenAPI document.
    pub summary: Option<String>,
}

/// The whole policy.
#[derive(Debug)]
pub struct Policy {
    /// The file it was read from.
    pub source: PathBuf,
    /// `[server]`.
    pub server: ServerSettings,
    /// `[upstream]`.
    pub upstream: UpstreamSettings,
    /// `[auth]`.
    pub auth: AuthSettings,
    /// `[roles]`: role name to scopes.
    pub roles: Roles,
    /// Every scope the policy names.
    pub scopes: ScopeRegistry,
    /// `[[routes]]`, in file order.
    pub routes: Vec<Route>,
    /// The routes, indexed by path, for matching.
    pub table: RouteTable,
    /// `[rate_limits]`.
    pub rate_limits: RateLimitSettings,
    /// `[abuse]`.
    pub abuse: AbuseSettings,
    /// `[audit]`.
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
