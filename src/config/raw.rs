//! The policy file as written: a serde model with every key of the reference policy and the keys
//! ordergate adds. Unknown keys are refused (`deny_unknown_fields`) so that a misspelt
//! `require_scopes` stops startup instead of silently granting access. Values stay as text here, keys
//! with a fixed set of choices as enums ([`Choice`]); `compile` turns them into checked types.
//! Each field is a policy key, documented key by key in the README's "The policy, by example".
#![allow(missing_docs)]

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::Deserialize;

use super::choice::{Choice, named};

/// `[server]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub listen: String,
    pub admin_listen: Option<String>,
    /// The admin API's bearer token, from this environment variable.
    pub admin_token_env: Option<String>,
    /// The admin API's bearer token, from this file.
    pub admin_token_file: Option<String>,
    pub max_connections: Option<u32>,
    pub max_in_flight: Option<u32>,
    pub header_read_timeout: Option<String>,
    pub request_timeout: Option<String>,
    pub max_header_bytes: Option<String>,
    pub max_request_body: Option<String>,
    pub shutdown_grace: Option<String>,
    pub max_connections_per_ip: Option<u32>,
    pub max_concurrent_streams: Option<u32>,
    pub idle_timeout: Option<String>,
    pub send_stall_timeout: Option<String>,
    /// Worker threads of the runtime (ordergate addition; default: the cores this process may
    /// use). Read at start; a reload does not change it.
    pub workers: Option<u32>,
    /// How the workers share requests (ordergate addition; default "per-core"). Read at start.
    pub threading: Option<Choice<Threading>>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// CIDR blocks every client must come from (§7.2); empty: any.
    #[serde(default)]
    pub allow_ips: Vec<String>,
    #[serde(default)]
    pub insecure_plaintext: bool,
    pub tls: Option<Tls>,
}

/// `[server.tls]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert: String,
    pub key: String,
    pub min_version: Option<Choice<MinVersion>>,
    pub client_auth: Option<Choice<ClientAuth>>,
    pub client_ca: Option<String>,
    /// Cipher suites offered, in the server's order of preference (ordergate addition; default:
    /// rustls's list and order, following the client's preference).
    pub cipher_suites: Option<Vec<String>>,
}

named! {
    /// `[server] threading`: a single-thread runtime per worker, each with its own listener
    /// and upstream pool, or one work-stealing runtime shared by all workers.
    Threading { PerCore = "per-core", Shared = "shared" }
}

named! {
    /// `min_version`: the oldest TLS version offered.
    MinVersion { Tls12 = "1.2", Tls13 = "1.3" }
}

named! {
    /// `client_auth`: whether clients present certificates.
    ClientAuth { Off = "off", Optional = "optional", Required = "required" }
}

/// `[upstream]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub url: String,
    #[serde(default)]
    pub ca: String,
    pub connect_timeout: Option<String>,
    pub timeout: Option<String>,
    pub retries: Option<u32>,
    /// Share of extra load retries may add (ordergate addition, default 0.2).
    pub retry_budget: Option<f64>,
    pub pool_idle_per_host: Option<u32>,
    pub pool_idle_timeout: Option<String>,
    #[serde(default = "yes")]
    pub forward_identity: bool,
    #[serde(default)]
    pub expose_errors: bool,
    pub circuit_breaker: Option<CircuitBreaker>,
}

fn yes() -> bool {
    true
}

/// `[upstream.circuit_breaker]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreaker {
    pub consecutive_failures: Option<u32>,
    pub failure_rate: Option<f64>,
    pub window: Option<String>,
    pub min_requests: Option<u32>,
    pub open_for: Option<String>,
    pub half_open_probes: Option<u32>,
    pub failure_statuses: Option<Vec<u16>>,
}

/// `[auth]`, read part by part so that one bad key does not hide the others' problems.
#[derive(Debug, Default)]
pub struct Auth {
    pub jwt: Option<Jwt>,
    pub api_keys: Option<ApiKeys>,
    pub mtls_clients: Vec<Option<MtlsClient>>,
    pub signatures: Option<Signatures>,
}

/// `[auth.signatures]`: how signed requests (RFC 9421) are checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signatures {
    pub max_age: Option<String>,
    pub clock_skew: Option<String>,
    pub nonce_store: Option<Choice<NonceStore>>,
    pub on_store_error: Option<Choice<OnStoreError>>,
}

named! {
    /// `nonce_store`: where seen `(keyid, nonce)` pairs are kept.
    NonceStore { Local = "local", Redis = "redis" }
}

named! {
    /// `on_store_error`: what a signed request does while the nonce store fails.
    OnStoreError { Reject = "reject", Allow = "allow" }
}

/// `signature = { alg, public_key | secret_env | secret_file }` on a key or mTLS client.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureKey {
    pub alg: Choice<SignatureAlg>,
    pub public_key: Option<String>,
    pub secret_env: Option<String>,
    pub secret_file: Option<String>,
}

named! {
    /// `signature.alg`: how a credential signs its requests.
    SignatureAlg { Ed25519 = "ed25519", HmacSha256 = "hmac-sha256" }
}

/// `[auth.jwt]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jwt {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub algorithms: Vec<String>,
    pub jwks_file: Option<String>,
    pub jwks_url: Option<String>,
    /// Extra CA bundle for an https `jwks_url` (ordergate addition).
    pub jwks_ca: Option<String>,
    pub jwks_refresh: Option<String>,
    pub leeway: Option<String>,
    pub max_token_bytes: Option<u32>,
    pub scope_claim: Option<String>,
    pub roles_claim: Option<String>,
    pub tenant_claim: Option<String>,
    /// Name of an environment variable holding the HMAC secret (HS* algorithms).
    pub hs_secret_env: Option<String>,
    /// Path of a file holding the HMAC secret (HS* algorithms).
    pub hs_secret_file: Option<String>,
    /// Verified tokens kept in memory (ordergate addition, default 10000; 0 verifies every time).
    pub cache_size: Option<u32>,
}

/// `[auth.api_keys]` without its keys, which are read one by one.
#[derive(Debug, Default)]
pub struct ApiKeys {
    pub header: Option<String>,
    pub keys: Vec<Option<ApiKey>>,
}

/// `[[auth.api_keys.keys]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    pub id: String,
    pub hash: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub tenant: Option<String>,
    pub not_before: Option<Instant>,
    pub not_after: Option<Instant>,
    /// Values that `owner` bindings compare against (e.g. `customer_id`).
    #[serde(default)]
    pub attributes: BTreeMap<String, Attribute>,
    /// CIDR blocks this key may be used from (§7.2); empty: any.
    #[serde(default)]
    pub allow_ips: Vec<String>,
    /// The key this credential signs every request with (RFC 9421).
    pub signature: Option<SignatureKey>,
}

/// An attribute value: one text, or a set of them (a sales rep's customers, §7.3).
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum Attribute {
    One(String),
    Many(Vec<String>),
}

/// A point in time: an RFC 3339 string (`"2027-04-01T00:00:00Z"`), a TOML date-time or a
/// date (midnight UTC).
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum Instant {
    Text(String),
    Toml(toml::value::Datetime),
}

/// `[[auth.mtls.clients]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtlsClient {
    pub subject: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub tenant: Option<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, Attribute>,
    /// From this instant on the client is refused (and its expiry is exported).
    pub not_after: Option<Instant>,
    /// CIDR blocks this client may connect from (§7.2); empty: any.
    #[serde(default)]
    pub allow_ips: Vec<String>,
    /// The key this client signs every request with (RFC 9421).
    pub signature: Option<SignatureKey>,
}

/// `[roles.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub scopes: Vec<String>,
    /// CIDR blocks every holder of this role must come from (§7.2); empty: any.
    #[serde(default)]
    pub allow_ips: Vec<String>,
}

/// `[[routes]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub id: String,
    pub method: String,
    pub path: String,
    pub upstream_path: Option<String>,
    #[serde(default)]
    pub require_scopes: Vec<String>,
    pub owner: Option<Owner>,
    pub rate_limit: Option<Bucket>,
    #[serde(default)]
    pub forward_params: IndexMap<String, String>,
    #[serde(default)]
    pub params: IndexMap<String, Param>,
    #[serde(default)]
    pub query: IndexMap<String, Param>,
    #[serde(default)]
    pub constraints: Vec<Constraint>,
    pub response: Option<Response>,
    /// The request body the route accepts; absent: none.
    pub body: Option<RouteBody>,
    /// A line for the OpenAPI document.
    pub summary: Option<String>,
    /// Every caller of this route must sign its requests, whatever its credential.
    #[serde(default)]
    pub require_signature: bool,
    /// CIDR blocks every caller of this route must come from (§7.2); empty: any.
    #[serde(default)]
    pub allow_ips: Vec<String>,
    /// The named upstream this route forwards to (default `"default"`, the `[upstream]`).
    pub upstream: Option<String>,
    /// A sticky canary: some principals go to another named upstream (CONTRACT §10).
    pub canary: Option<Canary>,
    /// What rolls the canary back.
    pub canary_guard: Option<CanaryGuard>,
    /// Earlier answers served while the upstream fails (CONTRACT §10).
    pub stale_if_error: Option<StaleIfError>,
}

/// `canary = { upstream, percent, principals }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Canary {
    pub upstream: String,
    #[serde(default)]
    pub percent: Option<Number>,
    #[serde(default)]
    pub principals: Vec<String>,
}

/// `[routes.canary_guard]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryGuard {
    pub window: Option<String>,
    pub min_requests: Option<u32>,
    pub max_error_ratio: Option<Number>,
    pub max_p99_ratio: Option<Number>,
}

/// `[routes.stale_if_error]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaleIfError {
    pub max_age: Option<String>,
    pub max_entries: Option<u32>,
    pub max_bytes: Option<String>,
}

/// `[routes.body]`: the only way a request body reaches the upstream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteBody {
    /// `text/plain` and/or `application/json`.
    pub content_types: Vec<String>,
    /// Default: `server.max_request_body`.
    pub max_bytes: Option<String>,
}

/// `owner = { param, claim, bypass_scopes }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    pub param: String,
    pub claim: String,
    #[serde(default)]
    pub bypass_scopes: Vec<String>,
}

/// `{ rate = "120/min", burst = 20 }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    pub rate: String,
    pub burst: Option<u32>,
}

/// The type of a path or query parameter.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Integer,
    Number,
    Boolean,
    Date,
    Datetime,
    Enum,
}

/// A number in the policy, integer or float as written.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq)]
#[serde(untagged)]
pub enum Number {
    Integer(i64),
    Float(f64),
}

impl Number {
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Integer(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

/// `[routes.params.NAME]` and `[routes.query.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Param {
    #[serde(rename = "type")]
    pub kind: ParamType,
    #[serde(default)]
    pub required: bool,
    pub default: Option<toml::Value>,
    pub pattern: Option<String>,
    pub min_length: Option<u32>,
    pub max_length: Option<u32>,
    pub min: Option<Number>,
    pub max: Option<Number>,
    pub values: Option<Vec<String>>,
    pub description: Option<String>,
}

/// `[[routes.constraints]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraint {
    pub kind: Choice<ConstraintKind>,
    pub from: String,
    pub to: String,
    pub max_days: Option<u32>,
}

named! {
    /// `[[routes.constraints]]` `kind`.
    ConstraintKind { DateRange = "date_range" }
}

/// `[routes.response]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    #[serde(default)]
    pub views: Vec<View>,
    /// Owner checks on the answer (§7.3); every entry must hold.
    #[serde(default)]
    pub owners: Vec<AnswerOwner>,
    /// The array whose length is the number of records returned (§8.3).
    pub count: Option<String>,
}

/// `[[routes.response.owners]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerOwner {
    pub field: String,
    pub claim: String,
    #[serde(default)]
    pub bypass_scopes: Vec<String>,
}

/// `[[routes.response.views]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct View {
    pub scope: String,
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
    #[serde(default)]
    pub mask: IndexMap<String, String>,
}

/// `[rate_limits]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    pub backend: Option<Choice<Backend>>,
    pub redis_url: Option<String>,
    /// Environment variable holding the Redis password (never inline in `redis_url`).
    pub redis_password_env: Option<String>,
    /// File holding the Redis password.
    pub redis_password_file: Option<String>,
    /// How long one Redis round trip may take before `on_backend_error` applies.
    pub redis_timeout: Option<String>,
    /// Prefix of every Redis key (default `ordergate:`).
    pub redis_key_prefix: Option<String>,
    pub on_backend_error: Option<Choice<OnBackendError>>,
    pub per_principal: Option<Bucket>,
    pub per_ip_unauthenticated: Option<Bucket>,
}

named! {
    /// `backend`: where rate-limit buckets live.
    Backend { Local = "local", Redis = "redis" }
}

named! {
    /// `on_backend_error`: what a rate limit does while Redis fails.
    OnBackendError { Local = "local", Reject = "reject" }
}

/// `[abuse]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Abuse {
    pub window: Option<String>,
    pub max_denials: Option<u32>,
    pub freeze_for: Option<String>,
    /// A credential used from outside its IP list is frozen at once (§7.2).
    #[serde(default)]
    pub freeze_on_ip_violation: bool,
    /// The volume and enumeration guard (CONTRACT §8.3).
    pub volume: Option<Volume>,
}

/// `[abuse.volume]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    pub distinct: Option<VolumeDistinct>,
    pub records: Option<VolumeRecords>,
    pub action: Option<Choice<VolumeAction>>,
}

/// `distinct = { param, max, window }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeDistinct {
    pub param: String,
    pub max: u32,
    pub window: String,
}

/// `records = { max, window }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeRecords {
    pub max: u64,
    pub window: String,
}

named! {
    /// `[abuse.volume] action`: what crossing a volume limit does.
    VolumeAction { Alert = "alert", Freeze = "freeze" }
}

/// `[events]`: the security-events webhook (CONTRACT §8.2).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Events {
    pub webhook_url: String,
    pub webhook_secret_env: Option<String>,
    pub webhook_secret_file: Option<String>,
    pub queue_capacity: Option<u32>,
    /// Extra CA bundle for an https receiver (ordergate addition).
    pub webhook_ca: Option<String>,
    /// Time one delivery attempt may take (ordergate addition, default 5s).
    pub timeout: Option<String>,
    /// Attempts per event before it counts as failed (ordergate addition, default 5).
    pub max_attempts: Option<u32>,
}

/// `[audit]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    pub path: String,
    pub rotate_bytes: Option<String>,
    pub keep_files: Option<u32>,
    #[serde(default = "yes")]
    pub hash_chain: bool,
    pub fsync: Option<Choice<Fsync>>,
    pub on_error: Option<Choice<OnError>>,
    #[serde(default)]
    pub sensitive_params: Vec<String>,
    /// Records that may wait for the writer (ordergate addition, default 65536).
    pub queue_capacity: Option<u32>,
}

named! {
    /// `fsync`: when audit records are flushed to disk.
    Fsync { Always = "always", Batch = "batch", Never = "never" }
}

named! {
    /// `on_error`: what a request does when its audit record cannot be written.
    OnError { Reject = "reject", Continue = "continue" }
}

/// The whole file, each section read on its own (`None` where a section is absent or broken).
#[derive(Debug, Default)]
pub struct Policy {
    pub server: Option<Server>,
    pub upstream: Option<Upstream>,
    /// `[upstreams.NAME]`, in file order (`None` where one is broken).
    pub upstreams: IndexMap<String, Option<Upstream>>,
    pub auth: Auth,
    pub roles: BTreeMap<String, Option<Role>>,
    pub routes: Vec<Option<Route>>,
    pub rate_limits: Option<RateLimits>,
    pub abuse: Option<Abuse>,
    pub audit: Option<Audit>,
    pub events: Option<Events>,
}
