//! Raw policy → [`Policy`]. Every check reports its problem at the key it concerns and carries
//! on, so `ordergate check` lists everything wrong at once. Files the policy names are read and
//! parsed here, so a reload that would fail on them is refused before anything is swapped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Method};
use jsonwebtoken::{Algorithm, DecodingKey};
use rustls::server::WebPkiClientVerifier;

use crate::config::files;
use crate::config::problems::{KeyPath, Problems};
use crate::config::raw;
use crate::policy::{ClientAuth, Policy, Route, ServerSettings, TlsSettings};
use crate::stage::abuse::AbuseSettings;
use crate::stage::audit::{AuditSettings, AuditTarget, FsyncMode, OnError};
use crate::stage::authn::AuthSettings;
use crate::stage::authn::api_key::{self, ApiKeyEntry, ApiKeyTable};
use crate::stage::authn::jwks::{JwksSource, KeySet};
use crate::stage::authn::jwt::JwtSettings;
use crate::stage::authn::mtls::{MtlsClient, Subject};
use crate::stage::authn::principal::{Claims, Principal, scope_header};
use crate::stage::authz::{Access, OwnerBinding, OwnerParam};
use crate::stage::circuit::BreakerSettings;
use crate::stage::proxy::UpstreamSettings;
use crate::stage::rate_limit::{Backend, BucketRef, BucketSpec, OnBackendError, RateLimitSettings};
use crate::stage::route::{PathTemplate, RouteTable};
use crate::stage::validate::{Constraint, RouteParams};
use crate::stage::views::{CompiledView, FieldPath};
use crate::vocab::mask::Masker;
use crate::vocab::principal_kind::PrincipalKind;
use crate::vocab::scopes::ScopeRegistry;
use crate::vocab::scopes::{RoleScopes, Roles};
use crate::vocab::secret::Secret;
use crate::vocab::units::{parse_duration, parse_rate, parse_size};

/// Compiling context: where files are, and what is wrong so far.
struct Ctx<'a> {
    base: &'a Path,
    problems: &'a mut Problems,
}

impl Ctx<'_> {
    fn bad(&mut self, at: &KeyPath, message: impl Into<String>) {
        self.problems.at(at, message);
    }

    fn duration(&mut self, at: &KeyPath, value: Option<&str>, default: Duration) -> Duration {
        match value.map(parse_duration) {
            None => default,
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                self.bad(at, e);
                default
            }
        }
    }

    fn size(&mut self, at: &KeyPath, value: Option<&str>, default: u64) -> u64 {
        match value.map(parse_size) {
            None => default,
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                self.bad(at, e);
                default
            }
        }
    }

    fn positive(&mut self, at: &KeyPath, value: Option<u32>, default: u32) -> u32 {
        match value {
            Some(0) => {
                self.bad(at, "must be at least 1");
                default
            }
            Some(v) => v,
            None => default,
        }
    }

    fn bucket(&mut self, at: &KeyPath, id: String, raw: &raw::Bucket) -> Option<BucketRef> {
        let rate = match parse_rate(&raw.rate) {
            Ok(r) => r,
            Err(e) => {
                self.bad(&at.k("rate"), e);
                return None;
            }
        };
        let burst = match raw.burst {
            Some(b) => match NonZeroU32::new(b) {
                Some(b) => b,
                None => {
                    self.bad(&at.k("burst"), "must be at least 1");
                    return None;
                }
            },
            None => rate.count,
        };
        let spec = BucketSpec { rate, burst };
        Some(BucketRef {
            id: Arc::from(format!("{id}:{}", spec.fingerprint())),
            spec,
        })
    }
}

/// Compiles the raw policy. `None` when anything is wrong (see `problems`).
pub fn compile(raw: raw::Policy, source: &Path, problems: &mut Problems) -> Option<Policy> {
    let base = source.parent().unwrap_or(Path::new("."));
    let mut ctx = Ctx { base, problems };
    let root = KeyPath::root();
    let mut scopes = ScopeRegistry::default();

    let server = match &raw.server {
        Some(s) => server(&mut ctx, &root.k("server"), s),
        None => {
            ctx.bad(&root, "missing section [server]");
            None
        }
    };
    let upstream = match &raw.upstream {
        Some(u) => upstream(&mut ctx, &root.k("upstream"), u),
        None => {
            ctx.bad(&root, "missing section [upstream]");
            None
        }
    };
    let roles = roles(&mut ctx, &root.k("roles"), &raw.roles, &mut scopes);
    let client_auth = server
        .as_ref()
        .and_then(|s| s.tls.as_ref())
        .map(|t| t.client_auth);
    let auth = auth(
        &mut ctx,
        &root.k("auth"),
        &raw.auth,
        &roles,
        &mut scopes,
        client_auth,
    );
    let server_max = server.as_ref().map_or(64 * 1024, |s| s.max_request_body);
    let routes = routes(
        &mut ctx,
        &root.k("routes"),
        &raw.routes,
        &mut scopes,
        server_max,
    );
    let rate_limits = rate_limits(&mut ctx, &root.k("rate_limits"), raw.rate_limits.as_ref());
    let abuse = abuse(&mut ctx, &root.k("abuse"), raw.abuse.as_ref());
    let audit = match &raw.audit {
        Some(a) => Some(audit(&mut ctx, &root.k("audit"), a)),
        None => {
            ctx.bad(
                &root,
                "missing section [audit]: every request must leave a record",
            );
            None
        }
    };
    if raw.routes.is_empty() {
        ctx.bad(&root, "no [[routes]]: the gateway would refuse everything");
    }
    let table = {
        let shapes: Vec<(Method, PathTemplate)> = routes
            .iter()
            .map(|r| (r.method.clone(), r.path.clone()))
            .collect();
        match RouteTable::build(&shapes) {
            Ok(t) => Some(t),
            Err((index, message)) => {
                ctx.bad(&root.k("routes").i(index).k("path"), message);
                None
            }
        }
    };
    if !ctx.problems.is_empty() || routes.len() != raw.routes.len() {
        return None;
    }
    Some(Policy {
        source: source.to_path_buf(),
        server: server?,
        upstream: upstream?,
        auth,
        roles,
        scopes,
        routes,
        table: table?,
        rate_limits: rate_limits?,
        abuse,
        audit: audit?,
    })
}

fn socket_addr(ctx: &mut Ctx<'_>, at: &KeyPath, text: &str) -> Option<SocketAddr> {
    match text.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            ctx.bad(
                at,
                format!("`{text}` is not IP:PORT (e.g. 127.0.0.1:8443 or [::1]:8443)"),
            );
            None
        }
    }
}

fn server(ctx: &mut Ctx<'_>, at: &KeyPath, raw: &raw::Server) -> Option<ServerSettings> {
    let listen = socket_addr(ctx, &at.k("listen"), &raw.listen);
    let admin_listen = raw
        .admin_listen
        .as_deref()
        .and_then(|a| socket_addr(ctx, &at.k("admin_listen"), a));
    let admin_token = admin_token(ctx, at, raw, admin_listen);
    let max_connections =
        ctx.positive(&at.k("max_connections"), raw.max_connections, 10_000) as usize;
    let max_in_flight = ctx.positive(&at.k("max_in_flight"), raw.max_in_flight, 2_048) as usize;
    let header_read_timeout = ctx.duration(
        &at.k("header_read_timeout"),
        raw.header_read_timeout.as_deref(),
        Duration::from_secs(5),
    );
    let request_timeout = ctx.duration(
        &at.k("request_timeout"),
        raw.request_timeout.as_deref(),
        Duration::from_secs(30),
    );
    let shutdown_grace = ctx.duration(
        &at.k("shutdown_grace"),
        raw.shutdown_grace.as_deref(),
        Duration::from_secs(30),
    );
    let max_connections_per_ip = ctx.positive(
        &at.k("max_connections_per_ip"),
        raw.max_connections_per_ip,
        64,
    ) as usize;
    let max_concurrent_streams = ctx.positive(
        &at.k("max_concurrent_streams"),
        raw.max_concurrent_streams,
        100,
    );
    let idle_timeout = ctx.duration(
        &at.k("idle_timeout"),
        raw.idle_timeout.as_deref(),
        Duration::from_secs(60),
    );
    let send_stall_timeout = ctx.duration(
        &at.k("send_stall_timeout"),
        raw.send_stall_timeout.as_deref(),
        Duration::from_secs(10),
    );
    let max_header_bytes = ctx.size(
        &at.k("max_header_bytes"),
        raw.max_header_bytes.as_deref(),
        16 * 1024,
    );
    if max_header_bytes < 1024 {
        ctx.bad(&at.k("max_header_bytes"), "must be at least 1KiB");
    }
    let max_request_body = ctx.size(
        &at.k("max_request_body"),
        raw.max_request_body.as_deref(),
        64 * 1024,
    );
    for (key, d) in [
        ("header_read_timeout", header_read_timeout),
        ("request_timeout", request_timeout),
        ("idle_timeout", idle_timeout),
        ("send_stall_timeout", send_stall_timeout),
    ] {
        if d.is_zero() {
            ctx.bad(&at.k(key), "must be longer than 0s");
        }
    }
    let mut trusted_proxies = Vec::new();
    for (i, cidr) in raw.trusted_proxies.iter().enumerate() {
        match cidr
            .parse::<ipnet::IpNet>()
            .or_else(|_| cidr.parse::<IpAddr>().map(ipnet::IpNet::from))
        {
            Ok(net) => trusted_proxies.push(net),
            Err(_) => ctx.bad(
                &at.k("trusted_proxies").i(i),
                format!("`{cidr}` is not a CIDR (e.g. 10.0.0.0/8) or an IP"),
            ),
        }
    }
    let tls = match (&raw.tls, raw.insecure_plaintext) {
        (_, true) => {
            if listen.is_some_and(|l| !l.ip().is_loopback()) {
                ctx.bad(
                    &at.k("insecure_plaintext"),
                    "plain HTTP is allowed only when `listen` is a loopback address",
                );
            }
            None
        }
        (Some(tls), false) => tls_settings(ctx, &at.k("tls"), tls),
        (None, false) => {
            ctx.bad(
                at,
                "missing [server.tls] (plain HTTP needs `insecure_plaintext = true` on loopback)",
            );
            None
        }
    };
    Some(ServerSettings {
        listen: listen?,
        admin_listen,
        admin_token,
        max_connections,
        max_in_flight,
        header_read_timeout,
        request_timeout,
        max_header_bytes: usize::try_from(max_header_bytes).unwrap_or(usize::MAX),
        max_request_body,
        shutdown_grace,
        max_connections_per_ip,
        max_concurrent_streams,
        idle_timeout,
        send_stall_timeout,
        trusted_proxies,
        tls,
    })
}

/// The admin token (at least 32 bytes, from the environment or a file). Without one the admin
/// API (unfreeze included) is unauthenticated, so `admin_listen` must then be a loopback address.
fn admin_token(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    raw: &raw::Server,
    admin_listen: Option<SocketAddr>,
) -> Option<Secret> {
    let key = if raw.admin_token_env.is_some() {
        "admin_token_env"
    } else {
        "admin_token_file"
    };
    let token = files::secret(
        ctx.base,
        raw.admin_token_env.as_deref(),
        raw.admin_token_file.as_deref(),
    )
    .map_err(|e| ctx.bad(&at.k(key), e))
    .ok()
    .flatten();
    if token.as_ref().is_some_and(|t| t.expose().len() < 32) {
        ctx.bad(&at.k(key), "the admin token must be at least 32 bytes");
        return None;
    }
    let configured = raw.admin_token_env.is_some() || raw.admin_token_file.is_some();
    if !configured && admin_listen.is_some_and(|a| !a.ip().is_loopback()) {
        ctx.bad(
            &at.k("admin_listen"),
            "a non-loopback `admin_listen` needs `admin_token_env` or `admin_token_file` (the admin API can unfreeze)",
        );
    }
    token
}

fn tls_settings(ctx: &mut Ctx<'_>, at: &KeyPath, raw: &raw::Tls) -> Option<TlsSettings> {
    let certs = files::certificates(&files::resolve(ctx.base, &raw.cert))
        .map_err(|e| ctx.bad(&at.k("cert"), e))
        .ok();
    let key = files::private_key(&files::resolve(ctx.base, &raw.key))
        .map_err(|e| ctx.bad(&at.k("key"), e))
        .ok();
    let versions: &[&rustls::SupportedProtocolVersion] =
        match raw.min_version.as_deref().unwrap_or("1.2") {
            "1.2" => &[&rustls::version::TLS13, &rustls::version::TLS12],
            "1.3" => &[&rustls::version::TLS13],
            other => {
                ctx.bad(
                    &at.k("min_version"),
                    format!("`{other}` is not a TLS version ordergate offers (\"1.2\" or \"1.3\")"),
                );
                &[&rustls::version::TLS13]
            }
        };
    let client_auth = match raw.client_auth.as_deref().unwrap_or("off") {
        "off" => ClientAuth::Off,
        "optional" => ClientAuth::Optional,
        "required" => ClientAuth::Required,
        other => {
            ctx.bad(
                &at.k("client_auth"),
                format!("`{other}` must be \"off\", \"optional\" or \"required\""),
            );
            ClientAuth::Off
        }
    };
    let provider = crate::vocab::tls_client::provider();
    let verifier = match (client_auth, raw.client_ca.as_deref()) {
        (ClientAuth::Off, _) => None,
        (_, None | Some("")) => {
            ctx.bad(&at.k("client_auth"), "mutual TLS needs `client_ca`");
            None
        }
        (mode, Some(ca)) => {
            let ca_certs = files::certificates(&files::resolve(ctx.base, ca))
                .map_err(|e| ctx.bad(&at.k("client_ca"), e))
                .ok()?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in ca_certs {
                if let Err(e) = roots.add(cert) {
                    ctx.bad(&at.k("client_ca"), format!("CA certificate rejected: {e}"));
                }
            }
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let builder = if mode == ClientAuth::Optional {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            match builder.build() {
                Ok(v) => Some(v),
                Err(e) => {
                    ctx.bad(
                        &at.k("client_ca"),
                        format!("cannot verify clients with this CA: {e}"),
                    );
                    None
                }
            }
        }
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| ctx.bad(&at.k("min_version"), e.to_string()))
        .ok()?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None if client_auth != ClientAuth::Off => return None,
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs?, key?)
        .map_err(|e| {
            ctx.bad(
                &at.k("key"),
                format!("certificate and key do not form a usable pair: {e}"),
            )
        })
        .ok()?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Some(TlsSettings {
        config: Arc::new(config),
        client_auth,
    })
}

fn upstream(ctx: &mut Ctx<'_>, at: &KeyPath, raw: &raw::Upstream) -> Option<UpstreamSettings> {
    let url: Option<http::Uri> = raw
        .url
        .parse()
        .map_err(|_| ctx.bad(&at.k("url"), format!("`{}` is not a URL", raw.url)))
        .ok();
    let parts = url.and_then(|u| {
        let scheme = u.scheme_str().unwrap_or("");
        if scheme != "http" && scheme != "https" {
            ctx.bad(&at.k("url"), "the upstream URL must be http:// or https://");
            return None;
        }
        if u.query().is_some() {
            ctx.bad(
                &at.k("url"),
                "the upstream URL must not have a query string",
            );
            return None;
        }
        let authority = u.authority()?.as_str().to_owned();
        if authority.contains('@') {
            ctx.bad(&at.k("url"), "the upstream URL must not carry credentials");
            return None;
        }
        Some((
            scheme == "https",
            format!("{scheme}://{authority}"),
            u.path().trim_end_matches('/').to_owned(),
        ))
    });
    let ca = if raw.ca.is_empty() {
        None
    } else {
        files::certificates(&files::resolve(ctx.base, &raw.ca))
            .map_err(|e| ctx.bad(&at.k("ca"), e))
            .ok()
    };
    let connect_timeout = ctx.duration(
        &at.k("connect_timeout"),
        raw.connect_timeout.as_deref(),
        Duration::from_secs(1),
    );
    let timeout = ctx.duration(
        &at.k("timeout"),
        raw.timeout.as_deref(),
        Duration::from_secs(5),
    );
    let pool_idle_timeout = ctx.duration(
        &at.k("pool_idle_timeout"),
        raw.pool_idle_timeout.as_deref(),
        Duration::from_secs(90),
    );
    let retries = raw.retries.unwrap_or(1);
    if retries > 5 {
        ctx.bad(
            &at.k("retries"),
            "at most 5 retries (more only adds load to a failing service)",
        );
    }
    let retry_budget = raw.retry_budget.unwrap_or(0.2);
    if !(0.0..=1.0).contains(&retry_budget) {
        ctx.bad(
            &at.k("retry_budget"),
            "must be between 0 and 1 (a share of requests)",
        );
    }
    let breaker = breaker(ctx, &at.k("circuit_breaker"), raw.circuit_breaker.as_ref());
    let (https, origin, base_path) = parts?;
    Some(UpstreamSettings {
        origin,
        base_path,
        https,
        ca,
        connect_timeout,
        timeout,
        retries: retries.min(5),
        retry_budget,
        pool_idle_per_host: raw.pool_idle_per_host.unwrap_or(64) as usize,
        pool_idle_timeout,
        forward_identity: raw.forward_identity,
        expose_errors: raw.expose_errors,
        breaker,
    })
}

fn breaker(ctx: &mut Ctx<'_>, at: &KeyPath, raw: Option<&raw::CircuitBreaker>) -> BreakerSettings {
    let d = BreakerSettings::default();
    let Some(raw) = raw else { return d };
    let failure_rate = raw.failure_rate.unwrap_or(d.failure_rate);
    if !(failure_rate > 0.0 && failure_rate <= 1.0) {
        ctx.bad(
            &at.k("failure_rate"),
            "must be greater than 0 and at most 1",
        );
    }
    let failure_statuses = raw.failure_statuses.clone().unwrap_or(d.failure_statuses);
    for (i, s) in failure_statuses.iter().enumerate() {
        if !(100..=599).contains(s) {
            ctx.bad(
                &at.k("failure_statuses").i(i),
                format!("{s} is not an HTTP status"),
            );
        }
    }
    BreakerSettings {
        consecutive_failures: ctx.positive(
            &at.k("consecutive_failures"),
            raw.consecutive_failures,
            d.consecutive_failures,
        ),
        failure_rate,
        window: ctx.duration(&at.k("window"), raw.window.as_deref(), d.window),
        min_requests: ctx.positive(&at.k("min_requests"), raw.min_requests, d.min_requests),
        open_for: ctx.duration(&at.k("open_for"), raw.open_for.as_deref(), d.open_for),
        half_open_probes: ctx.positive(
            &at.k("half_open_probes"),
            raw.half_open_probes,
            d.half_open_probes,
        ),
        failure_statuses,
    }
}

fn roles(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    raw: &BTreeMap<String, Option<raw::Role>>,
    scopes: &mut ScopeRegistry,
) -> Roles {
    let mut roles = HashMap::new();
    for (name, role) in raw {
        let Some(role) = role else { continue };
        if role
            .scopes
            .iter()
            .any(|s| s.is_empty() || s.contains(char::is_whitespace))
        {
            ctx.bad(
                &at.k(name).k("scopes"),
                "scopes must be non-empty and contain no spaces",
            );
        }
        let set = scopes.set_of(role.scopes.iter().map(String::as_str));
        let names = role.scopes.iter().map(|s| Arc::from(s.as_str())).collect();
        roles.insert(name.clone(), RoleScopes { names, set });
    }
    roles
}

/// A principal for an API key or mTLS client: its roles' scopes plus its own.
fn fixed_principal(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    id: &str,
    kind: PrincipalKind,
    parts: (
        &[String],
        &[String],
        Option<&String>,
        &BTreeMap<String, String>,
    ),
    roles: &Roles,
    scopes: &mut ScopeRegistry,
) -> Principal {
    let (role_names, own_scopes, tenant, attributes) = parts;
    let mut set = scopes.set_of(own_scopes.iter().map(String::as_str));
    let mut names: Vec<&str> = own_scopes.iter().map(String::as_str).collect();
    for (i, role) in role_names.iter().enumerate() {
        match roles.get(role) {
            Some(r) => {
                set.extend(&r.set);
                names.extend(r.names.iter().map(|s| &**s));
            }
            None => ctx.bad(
                &at.k("roles").i(i),
                format!("unknown role `{role}` (define it under [roles.{role}])"),
            ),
        }
    }
    Principal {
        id: Arc::from(id),
        kind,
        tenant: tenant.map(|t| Arc::from(t.as_str())),
        scopes: set,
        scope_header: scope_header(names),
        claims: Claims::Attributes(Arc::new(attributes.clone())),
        expires_at: None,
    }
}

fn auth(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    raw: &raw::Auth,
    roles: &Roles,
    scopes: &mut ScopeRegistry,
    client_auth: Option<ClientAuth>,
) -> AuthSettings {
    let jwt = raw.jwt.as_ref().and_then(|j| jwt(ctx, &at.k("jwt"), j));
    let api_keys = raw.api_keys.as_ref().map(|keys| {
        let at = at.k("api_keys");
        let header_name = keys.header.as_deref().unwrap_or("X-Api-Key");
        let header = match HeaderName::from_bytes(header_name.as_bytes()) {
            Ok(h) if !matches!(h.as_str(), "authorization" | "cookie" | "host") => h,
            _ => {
                ctx.bad(
                    &at.k("header"),
                    format!("`{header_name}` cannot carry API keys"),
                );
                HeaderName::from_static("x-api-key")
            }
        };
        let mut entries = Vec::new();
        let mut ids = HashSet::new();
        for (i, key) in keys.keys.iter().enumerate() {
            let Some(key) = key else { continue };
            let at = at.k("keys").i(i);
            if key.id.is_empty() || !ids.insert(key.id.clone()) {
                ctx.bad(
                    &at.k("id"),
                    format!("API key id `{}` is empty or used twice", key.id),
                );
            }
            let digest = api_key::parse_hash(&key.hash)
                .map_err(|e| ctx.bad(&at.k("hash"), e))
                .ok();
            let not_before = key
                .not_before
                .as_ref()
                .and_then(|d| timestamp(ctx, &at.k("not_before"), d));
            let not_after = key
                .not_after
                .as_ref()
                .and_then(|d| timestamp(ctx, &at.k("not_after"), d));
            if let (Some(a), Some(b)) = (not_before, not_after)
                && a >= b
            {
                ctx.bad(
                    &at.k("not_after"),
                    "`not_after` must be later than `not_before`",
                );
            }
            let principal = fixed_principal(
                ctx,
                &at,
                &key.id,
                PrincipalKind::ApiKey,
                (
                    &key.roles,
                    &key.scopes,
                    key.tenant.as_ref(),
                    &key.attributes,
                ),
                roles,
                scopes,
            );
            if let Some(digest) = digest {
                if entries.iter().any(|e: &ApiKeyEntry| e.digest == digest) {
                    ctx.bad(&at.k("hash"), "two keys have the same hash");
                }
                entries.push(ApiKeyEntry {
                    digest,
                    not_before,
                    not_after,
                    principal: Arc::new(principal),
                });
            }
        }
        ApiKeyTable::new(header, entries)
    });
    let mut mtls = Vec::new();
    for (i, client) in raw.mtls_clients.iter().enumerate() {
        let Some(client) = client else { continue };
        let at = at.k("mtls").k("clients").i(i);
        if client_auth.is_none_or(|c| c == ClientAuth::Off) {
            ctx.bad(
                &at.k("subject"),
                "mTLS clients need [server.tls] client_auth = \"optional\" or \"required\"",
            );
        }
        let subject = match Subject::parse(&client.subject) {
            Ok(s) => s,
            Err(e) => {
                ctx.bad(&at.k("subject"), e);
                continue;
            }
        };
        let Some(cn) = subject.common_name().map(str::to_owned) else {
            ctx.bad(
                &at.k("subject"),
                "the subject needs a CN (it becomes the principal id)",
            );
            continue;
        };
        if mtls.iter().any(|c: &MtlsClient| c.subject == subject) {
            ctx.bad(&at.k("subject"), "this subject is configured twice");
        }
        let principal = fixed_principal(
            ctx,
            &at,
            &cn,
            PrincipalKind::Mtls,
            (
                &client.roles,
                &client.scopes,
                client.tenant.as_ref(),
                &client.attributes,
            ),
            roles,
            scopes,
        );
        mtls.push(MtlsClient {
            subject,
            principal: Arc::new(principal),
        });
    }
    AuthSettings {
        jwt,
        api_keys,
        mtls,
    }
}

/// A policy instant as seconds since the epoch; a bare date means midnight UTC.
fn timestamp(ctx: &mut Ctx<'_>, at: &KeyPath, value: &raw::Instant) -> Option<i64> {
    let text = match value {
        raw::Instant::Text(t) => t.clone(),
        raw::Instant::Toml(d) => d.to_string(),
    };
    if let Ok(date) = chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
        return date.and_hms_opt(0, 0, 0).map(|d| d.and_utc().timestamp());
    }
    match chrono::DateTime::parse_from_rfc3339(&text) {
        Ok(d) => Some(d.timestamp()),
        Err(_) => {
            ctx.bad(at, format!("`{text}` is not an RFC 3339 date-time with a time zone (e.g. 2026-01-01T00:00:00Z) or a date"));
            None
        }
    }
}

fn jwt(ctx: &mut Ctx<'_>, at: &KeyPath, raw: &raw::Jwt) -> Option<JwtSettings> {
    if raw.issuer.is_empty() {
        ctx.bad(&at.k("issuer"), "`issuer` must not be empty");
    }
    if raw.audiences.is_empty() {
        ctx.bad(&at.k("audiences"), "list at least one audience");
    }
    let mut algorithms = Vec::new();
    for (i, name) in raw.algorithms.iter().enumerate() {
        match name.parse::<Algorithm>() {
            Ok(a) if !algorithms.contains(&a) => algorithms.push(a),
            Ok(_) => ctx.bad(&at.k("algorithms").i(i), format!("`{name}` is listed twice")),
            Err(_) => ctx.bad(
                &at.k("algorithms").i(i),
                format!("`{name}` is not supported (RS256/384/512, PS256/384/512, ES256/384, EdDSA, HS256/384/512; never none)"),
            ),
        }
    }
    if algorithms.is_empty() {
        ctx.bad(&at.k("algorithms"), "list at least one algorithm");
    }
    let hmac_wanted = algorithms
        .iter()
        .any(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512));
    let asymmetric_wanted = algorithms
        .iter()
        .any(|a| !matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512));
    let secret = files::secret(
        ctx.base,
        raw.hs_secret_env.as_deref(),
        raw.hs_secret_file.as_deref(),
    )
    .map_err(|e| {
        ctx.bad(
            &at.k(if raw.hs_secret_env.is_some() {
                "hs_secret_env"
            } else {
                "hs_secret_file"
            }),
            e,
        )
    })
    .ok()
    .flatten();
    let hmac = match (hmac_wanted, secret) {
        (true, Some(s)) if s.expose().len() < 32 => {
            ctx.bad(
                &at.k("algorithms"),
                "the HMAC secret must be at least 32 bytes",
            );
            None
        }
        (true, Some(s)) => Some(DecodingKey::from_secret(s.expose().as_bytes())),
        (true, None) => {
            ctx.bad(&at.k("algorithms"), "HS* algorithms need `hs_secret_env` or `hs_secret_file` (secrets are never inline)");
            None
        }
        (false, Some(_)) => {
            ctx.bad(
                &at.k("algorithms"),
                "an HMAC secret is configured but no HS* algorithm is listed",
            );
            None
        }
        (false, None) => None,
    };
    let jwks_ca = raw.jwks_ca.as_deref().and_then(|ca| {
        files::certificates(&files::resolve(ctx.base, ca))
            .map_err(|e| ctx.bad(&at.k("jwks_ca"), e))
            .ok()
    });
    let jwks = match (&raw.jwks_file, &raw.jwks_url) {
        (Some(_), Some(_)) => {
            ctx.bad(
                &at.k("jwks_url"),
                "give `jwks_file` or `jwks_url`, not both",
            );
            None
        }
        (Some(file), None) => {
            let path = files::resolve(ctx.base, file);
            let keys = std::fs::read(&path)
                .map_err(|e| format!("{}: {e}", path.display()))
                .and_then(|bytes| {
                    KeySet::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))
                });
            match keys {
                Ok(keys) => Some((JwksSource::File(path), keys)),
                Err(e) => {
                    ctx.bad(&at.k("jwks_file"), e);
                    None
                }
            }
        }
        (None, Some(url)) => match url.parse::<http::Uri>() {
            Ok(uri) if uri.scheme_str() == Some("https") => Some((
                JwksSource::Url {
                    url: uri,
                    ca: jwks_ca,
                },
                KeySet::default(),
            )),
            _ => {
                ctx.bad(&at.k("jwks_url"), "`jwks_url` must be an https:// URL");
                None
            }
        },
        (None, None) => {
            if asymmetric_wanted {
                ctx.bad(at, "asymmetric algorithms need `jwks_file` or `jwks_url`");
            }
            None
        }
    };
    let claim =
        |value: &Option<String>, default: &str| value.clone().unwrap_or_else(|| default.to_owned());
    Some(JwtSettings {
        issuer: raw.issuer.clone(),
        audiences: raw.audiences.clone(),
        algorithms,
        jwks,
        jwks_refresh: ctx
            .duration(
                &at.k("jwks_refresh"),
                raw.jwks_refresh.as_deref(),
                Duration::from_secs(300),
            )
            .max(Duration::from_secs(1)),
        leeway_secs: ctx
            .duration(
                &at.k("leeway"),
                raw.leeway.as_deref(),
                Duration::from_secs(30),
            )
            .as_secs() as i64,
        max_token_bytes: ctx.positive(&at.k("max_token_bytes"), raw.max_token_bytes, 8192) as usize,
        scope_claim: claim(&raw.scope_claim, "scope"),
        roles_claim: claim(&raw.roles_claim, "roles"),
        tenant_claim: claim(&raw.tenant_claim, "tenant"),
        hmac,
        cache_size: raw.cache_size.unwrap_or(10_000) as usize,
    })
}

fn routes(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    raw: &[Option<raw::Route>],
    scopes: &mut ScopeRegistry,
    server_max: u64,
) -> Vec<Route> {
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    for (i, route) in raw.iter().enumerate() {
        let Some(route) = route else { continue };
        let at = at.i(i);
        if route.id.is_empty() || route.id.starts_with("admin.") || !ids.insert(route.id.clone()) {
            ctx.bad(
                &at.k("id"),
                format!("route id `{}` is empty, reserved or used twice", route.id),
            );
        }
        if let Some(r) = self::route(ctx, &at, route, scopes, server_max) {
            out.push(r);
        }
    }
    out
}

fn route(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    raw: &raw::Route,
    scopes: &mut ScopeRegistry,
    server_max: u64,
) -> Option<Route> {
    let before = ctx.problems.len();
    let method = match Method::from_bytes(raw.method.as_bytes()) {
        Ok(m) if raw.method.bytes().all(|b| b.is_ascii_uppercase()) => Some(m),
        _ => {
            ctx.bad(
                &at.k("method"),
                format!(
                    "`{}` is not an HTTP method in capitals (e.g. GET)",
                    raw.method
                ),
            );
            None
        }
    };
    let body = super::body::compile(
        raw.body.as_ref(),
        method.as_ref(),
        server_max,
        at,
        ctx.problems,
    );
    let path = PathTemplate::parse(&raw.path)
        .map_err(|e| ctx.bad(&at.k("path"), e))
        .ok();
    let upstream_path = PathTemplate::parse(raw.upstream_path.as_deref().unwrap_or(&raw.path))
        .map_err(|e| ctx.bad(&at.k("upstream_path"), e))
        .ok();
    let path_names: Vec<Arc<str>> = path
        .as_ref()
        .map(|p| p.params().cloned().collect())
        .unwrap_or_default();
    if let Some(up) = &upstream_path {
        for name in up.params() {
            if !path_names.contains(name) {
                ctx.bad(
                    &at.k("upstream_path"),
                    format!("`{{{name}}}` is not a parameter of `path`"),
                );
            }
        }
    }
    // Parameters.
    let mut params = RouteParams::default();
    for name in &path_names {
        match raw.params.get(&**name) {
            Some(p) => {
                if let Some(s) =
                    crate::policy::params::compile(name, p, &at.k("params").k(name), ctx.problems)
                {
                    params.path.push(s);
                }
            }
            None => ctx.bad(
                &at.k("path"),
                format!("path parameter `{name}` has no schema under [routes.params.{name}]"),
            ),
        }
    }
    for name in raw.params.keys() {
        if !path_names.iter().any(|n| **n == **name) {
            ctx.bad(
                &at.k("params").k(name),
                format!("`{name}` is not a parameter of `path`"),
            );
        }
    }
    for (name, p) in &raw.query {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        {
            ctx.bad(
                &at.k("query").k(name),
                "query parameter names may hold only letters, digits, `_`, `-` and `.`",
            );
        }
        if let Some(s) =
            crate::policy::params::compile(name, p, &at.k("query").k(name), ctx.problems)
        {
            params.query.push(s);
        }
    }
    for (from, to) in &raw.forward_params {
        if !path_names.iter().any(|n| **n == **from) {
            ctx.bad(
                &at.k("forward_params").k(from),
                format!("`{from}` is not a parameter of `path`"),
            );
        }
        if to.is_empty() || raw.query.contains_key(to) {
            ctx.bad(
                &at.k("forward_params").k(from),
                format!("`{to}` is empty or clashes with a query parameter"),
            );
        }
        params
            .forward_params
            .push((Arc::from(from.as_str()), Arc::from(to.as_str())));
    }
    for (i, c) in raw.constraints.iter().enumerate() {
        let at = at.k("constraints").i(i);
        if c.kind != "date_range" {
            ctx.bad(
                &at.k("kind"),
                format!("unknown constraint kind `{}` (known: date_range)", c.kind),
            );
            continue;
        }
        for (key, name) in [("from", &c.from), ("to", &c.to)] {
            let kind = raw
                .query
                .get(name)
                .or_else(|| raw.params.get(name))
                .map(|p| p.kind);
            match kind {
                Some(raw::ParamType::Date | raw::ParamType::Datetime) => {}
                Some(_) => ctx.bad(
                    &at.k(key),
                    format!("`{name}` must be a date or datetime parameter"),
                ),
                None => ctx.bad(
                    &at.k(key),
                    format!("`{name}` is not a parameter of this route"),
                ),
            }
        }
        params.constraints.push(Constraint::DateRange {
            from: Arc::from(c.from.as_str()),
            to: Arc::from(c.to.as_str()),
            max_days: c.max_days,
        });
    }
    // Authorisation.
    let require_scopes = scopes.set_of(raw.require_scopes.iter().map(String::as_str));
    if raw.require_scopes.is_empty() {
        ctx.bad(
            &at.k("require_scopes"),
            "list at least one scope: routes are denied by default",
        );
    }
    let owner = raw.owner.as_ref().map(|o| {
        let param = if path_names.iter().any(|n| **n == *o.param) {
            OwnerParam::Path(Arc::from(o.param.as_str()))
        } else if raw.query.contains_key(&o.param) {
            if !raw.query[&o.param].required {
                ctx.bad(
                    &at.k("owner").k("param"),
                    format!("owner query parameter `{}` must be `required`", o.param),
                );
            }
            OwnerParam::Query(Arc::from(o.param.as_str()))
        } else {
            ctx.bad(
                &at.k("owner").k("param"),
                format!("`{}` is neither a path nor a query parameter", o.param),
            );
            OwnerParam::Path(Arc::from(o.param.as_str()))
        };
        if o.claim.is_empty() {
            ctx.bad(&at.k("owner").k("claim"), "`claim` must not be empty");
        }
        OwnerBinding {
            param,
            claim: Arc::from(o.claim.as_str()),
            bypass: scopes.set_of(o.bypass_scopes.iter().map(String::as_str)),
        }
    });
    let rate_limit = raw
        .rate_limit
        .as_ref()
        .and_then(|b| ctx.bucket(&at.k("rate_limit"), format!("route:{}", raw.id), b));
    // Views.
    let mut views = Vec::new();
    for (i, v) in raw.response.iter().flat_map(|r| &r.views).enumerate() {
        let at = at.k("response").k("views").i(i);
        let mut paths = |key: &str, list: &[String]| -> Vec<FieldPath> {
            list.iter()
                .enumerate()
                .filter_map(|(j, p)| {
                    FieldPath::parse(p)
                        .map_err(|e| ctx.bad(&at.k(key).i(j), e))
                        .ok()
                })
                .collect()
        };
        let allow = paths("allow", &v.allow);
        let deny = paths("deny", &v.deny);
        let mut mask = Vec::new();
        for (path, masker) in &v.mask {
            match (FieldPath::parse(path), Masker::parse(masker)) {
                (Ok(p), Ok(m)) => mask.push((p, m)),
                (Err(e), _) | (_, Err(e)) => ctx.bad(&at.k("mask").k(path), e),
            }
        }
        if v.allow.is_empty() {
            ctx.bad(
                &at.k("allow"),
                "a view must `allow` something (`[\"*\"]` for everything)",
            );
        }
        let scope = scopes.set_of([v.scope.as_str()]);
        views.push(CompiledView::new(
            Arc::from(v.scope.as_str()),
            scope,
            &allow,
            deny,
            mask,
        ));
    }
    if ctx.problems.len() != before {
        return None;
    }
    Some(Route {
        id: Arc::from(raw.id.as_str()),
        method: method?,
        path: path?,
        upstream_path: upstream_path?,
        access: Access {
            require_scopes,
            owner,
            view_scopes: views.iter().map(|v| v.scope.clone()).collect(),
        },
        require_scope_names: raw.require_scopes.clone(),
        body,
        rate_limit,
        params,
        views,
        summary: raw.summary.clone(),
    })
}

fn rate_limits(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    raw: Option<&raw::RateLimits>,
) -> Option<RateLimitSettings> {
    let Some(raw) = raw else {
        return Some(RateLimitSettings {
            backend: Backend::Local,
            on_backend_error: OnBackendError::Local,
            per_principal: None,
            per_ip_unauthenticated: None,
        });
    };
    let on_backend_error = match raw.on_backend_error.as_deref().unwrap_or("local") {
        "local" => OnBackendError::Local,
        "reject" => OnBackendError::Reject,
        other => {
            ctx.bad(
                &at.k("on_backend_error"),
                format!("`{other}` must be \"local\" or \"reject\""),
            );
            OnBackendError::Local
        }
    };
    let backend = match raw.backend.as_deref().unwrap_or("local") {
        "local" => Backend::Local,
        "redis" => {
            let timeout = ctx.duration(
                &at.k("redis_timeout"),
                raw.redis_timeout.as_deref(),
                Duration::from_millis(100),
            );
            let password = files::secret(
                ctx.base,
                raw.redis_password_env.as_deref(),
                raw.redis_password_file.as_deref(),
            )
            .map_err(|e| ctx.bad(&at.k("redis_password_env"), e))
            .ok()
            .flatten();
            match raw
                .redis_url
                .as_deref()
                .map(|u| redis_url(u, password.as_ref()))
            {
                Some(Ok(url)) => Backend::Redis {
                    url,
                    timeout,
                    prefix: raw
                        .redis_key_prefix
                        .clone()
                        .unwrap_or_else(|| "ordergate:".into()),
                },
                Some(Err(e)) => {
                    ctx.bad(&at.k("redis_url"), e);
                    Backend::Local
                }
                None => {
                    ctx.bad(&at.k("backend"), "the redis backend needs `redis_url`");
                    Backend::Local
                }
            }
        }
        other => {
            ctx.bad(
                &at.k("backend"),
                format!("`{other}` must be \"local\" or \"redis\""),
            );
            Backend::Local
        }
    };
    let per_principal = raw
        .per_principal
        .as_ref()
        .and_then(|b| ctx.bucket(&at.k("per_principal"), "principal".into(), b));
    let per_ip_unauthenticated = raw
        .per_ip_unauthenticated
        .as_ref()
        .and_then(|b| ctx.bucket(&at.k("per_ip_unauthenticated"), "failed-auth".into(), b));
    Some(RateLimitSettings {
        backend,
        on_backend_error,
        per_principal,
        per_ip_unauthenticated,
    })
}

/// Checks a Redis URL (no inline password) and fills the password in.
fn redis_url(url: &str, password: Option<&Secret>) -> Result<Secret, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("`redis_url` must look like redis://host:port/db")?;
    if !matches!(scheme, "redis" | "rediss" | "valkey" | "valkeys") {
        return Err("`redis_url` must start with redis:// or rediss://".into());
    }
    let (userinfo, host) = match rest.split_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    if userinfo.is_some_and(|u| u.contains(':')) {
        return Err("`redis_url` must not contain a password: use `redis_password_env` or `redis_password_file`".into());
    }
    let user = userinfo.unwrap_or("");
    let full = match password {
        Some(p) => {
            let mut encoded = String::new();
            crate::vocab::percent::encode_into(p.expose(), &mut encoded);
            format!("{scheme}://{user}:{encoded}@{host}")
        }
        None => url.to_owned(),
    };
    redis::Client::open(full.as_str()).map_err(|e| format!("`redis_url` is not usable: {e}"))?;
    Ok(Secret::new(full))
}

fn abuse(ctx: &mut Ctx<'_>, at: &KeyPath, raw: Option<&raw::Abuse>) -> AbuseSettings {
    let d = AbuseSettings::default();
    let Some(raw) = raw else { return d };
    AbuseSettings {
        window: ctx.duration(&at.k("window"), raw.window.as_deref(), d.window),
        max_denials: ctx.positive(&at.k("max_denials"), raw.max_denials, d.max_denials),
        freeze_for: ctx.duration(&at.k("freeze_for"), raw.freeze_for.as_deref(), d.freeze_for),
    }
}

fn audit(ctx: &mut Ctx<'_>, at: &KeyPath, raw: &raw::Audit) -> AuditSettings {
    let target = match raw.path.as_str() {
        "" => {
            ctx.bad(
                &at.k("path"),
                "`path` must name a file, or \"-\" for stdout",
            );
            AuditTarget::Stdout
        }
        "-" => AuditTarget::Stdout,
        p => {
            let path = files::resolve(ctx.base, p);
            if path.is_dir() {
                ctx.bad(&at.k("path"), format!("{} is a directory", path.display()));
            }
            AuditTarget::File(path)
        }
    };
    let rotate_bytes = ctx.size(
        &at.k("rotate_bytes"),
        raw.rotate_bytes.as_deref(),
        100 * 1024 * 1024,
    );
    let fsync = match raw.fsync.as_deref().unwrap_or("batch") {
        "always" => FsyncMode::Always,
        "batch" => FsyncMode::Batch,
        "never" => FsyncMode::Never,
        other => {
            ctx.bad(
                &at.k("fsync"),
                format!("`{other}` must be \"always\", \"batch\" or \"never\""),
            );
            FsyncMode::Batch
        }
    };
    let on_error = match raw.on_error.as_deref().unwrap_or("reject") {
        "reject" => OnError::Reject,
        "continue" => OnError::Continue,
        other => {
            ctx.bad(
                &at.k("on_error"),
                format!("`{other}` must be \"reject\" or \"continue\""),
            );
            OnError::Reject
        }
    };
    AuditSettings {
        target,
        rotate_bytes: (rotate_bytes > 0).then_some(rotate_bytes),
        keep_files: raw.keep_files.unwrap_or(30) as usize,
        hash_chain: raw.hash_chain,
        fsync,
        on_error,
        sensitive_params: raw.sensitive_params.clone(),
        queue_capacity: ctx.positive(&at.k("queue_capacity"), raw.queue_capacity, 65_536) as usize,
    }
}
