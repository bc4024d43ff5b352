//! The compiled policy: every value checked and turned into the type the request path uses
//! (durations, limits, compiled regexes, parsed keys, a route matcher). Built once by
//! `config::load`, shared as `Arc<Policy>`, replaced whole on reload.

mod abuse;
mod audit;
mod auth;
pub mod body;
pub mod compile;
mod events;
mod ip_lists;
pub mod params;
mod rate_limits;
mod release;
mod roles;
mod routes;
mod server;
mod signatures;
mod upstream;
mod volume;

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
use crate::stage::canary::{CanarySettings, UpstreamRef};
use crate::stage::events::EventsSettings;
use crate::stage::proxy::UpstreamSettings;
use crate::stage::rate_limit::{BucketRef, RateLimitSettings};
use crate::stage::route::{PathTemplate, RouteTable};
use crate::stage::signature::SignatureSettings;
use crate::stage::stale::StaleSettings;
use crate::stage::validate::RouteParams;
use crate::stage::validate::body::BodyRule;
use crate::stage::views::CompiledView;
use crate::stage::volume::VolumeSettings;
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
    /// The `notAfter` of the server certificate (the leaf), for the expiry gauge.
    pub cert_not_after: Option<i64>,
    /// The earliest `notAfter` in `client_ca`, for the expiry gauge.
    pub client_ca_not_after: Option<i64>,
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
    /// `allow_ips`: every client must come from it (§7.2), checked before authentication.
    pub allow_ips: Option<Arc<crate::vocab::ip_list::IpAllowList>>,
    /// Worker threads of the runtime serving requests (read at start only).
    pub workers: usize,
    /// How the workers share requests (read at start only).
    pub threading: crate::vocab::worker::Threading,
    /// `None` only with `insecure_plaintext = true` on a loopback address.
    pub tls: Option<TlsSettings>,
}

impl Policy {
    /// Takes `running`'s `workers` and `threading` (read at start only) and the upstream pool
    /// count that follows from them, for a reloaded policy.
    pub fn keep_threads_of(&mut self, running: &Policy) {
        self.server.workers = running.server.workers;
        self.server.threading = running.server.threading;
        let pools = self.server.upstream_pools();
        self.upstream.pools = pools;
        for (_, settings) in &mut self.upstreams {
            settings.pools = pools;
        }
    }
}

impl ServerSettings {
    /// Upstream connection pools: one per per-core worker plus one for every other thread
    /// (health probes, the control runtime); one under shared threading.
    pub fn upstream_pools(&self) -> usize {
        match self.threading {
            crate::vocab::worker::Threading::PerCore => self.workers.saturating_add(1),
            crate::vocab::worker::Threading::Shared => 1,
        }
    }
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
    /// `allow_ips`: every caller of the route must come from it (§7.2).
    pub allow_ips: Option<Arc<crate::vocab::ip_list::IpAllowList>>,
    /// `[routes.response]` `owners` and `count`: what the answer is checked and counted by.
    pub answer: crate::stage::owners::AnswerRules,
    /// The named upstream it forwards to (CONTRACT §10).
    pub upstream: UpstreamRef,
    /// Its sticky, guarded canary, if any.
    pub canary: Option<CanarySettings>,
    /// Its stale-if-error store settings, if any.
    pub stale: Option<StaleSettings>,
    /// A digest of its `[routes.response]` as written (views, owner rules, count): a reload
    /// that changes it drops the kept answers.
    pub response_digest: [u8; 32],
    /// Every caller must sign its requests (stage 5b).
    pub require_signature: bool,
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
    /// Every upstream by name: `[upstream]` as `"default"` first, then `[upstreams.NAME]` in
    /// file order; a route's [`UpstreamRef`] indexes it.
    pub upstreams: Vec<(Arc<str>, UpstreamSettings)>,
    /// `[auth]`.
    pub auth: AuthSettings,
    /// `[auth.signatures]` and every credential's `signature` key.
    pub signatures: SignatureSettings,
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
    /// What loads but deserves a second look, located like problems (`ordergate check` prints
    /// them; `serve` logs them).
    pub warnings: Vec<crate::config::PolicyProblem>,
    /// `[abuse.volume]`, if set.
    pub volume: Option<VolumeSettings>,
    /// `[events]`, if set.
    pub events: Option<EventsSettings>,
    /// Lowercase hex SHA-256 of the policy text, as security events report it.
    pub sha256: String,
}

impl Policy {
    /// The name and settings of a route's upstream (references are checked at load time).
    pub fn upstream_of(&self, upstream: UpstreamRef) -> (&Arc<str>, &UpstreamSettings) {
        let (name, settings) = &self.upstreams[upstream.0];
        (name, settings)
    }

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
        if !self.signatures.keys.is_empty() {
            auth.push(format!("{} signing", self.signatures.keys.len()));
        }
        let signed_routes = self.routes.iter().filter(|r| r.require_signature).count();
        if signed_routes > 0 {
            auth.push(format!("{signed_routes} route(s) demand signatures"));
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
        Some(mut policy) if problems.is_empty() => {
            policy.warnings = problems.take_warnings(path, text, Some(&doc));
            policy.sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()));
            Ok(policy)
        }
        _ => Err(problems.resolve(path, text, Some(&doc))),
    }
}
