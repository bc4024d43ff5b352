//! The stages of CONTRACT.md §2, one module each, listed here in pipeline order (stage 1, the
//! connection, is the server's). A stage is handed its own settings (never the whole policy)
//! and may use the request facts of an earlier stage (`Principal`, validated values); it never
//! imports a later stage, the compiled policy, the config, the gateway or the pipeline.
//! `tests/layering.rs` reads this list and enforces it; blank lines keep rustfmt from sorting it.

/// 2. Request id: kept from the client or made.
pub mod request_id;

/// 3. Route: method + path template; 404, 405, 400 for unsafe paths.
pub mod route;

/// 4. Frozen IP or principal (403 `frozen`), and the denial counting that freezes.
pub mod abuse;

/// 5. Authentication: JWT, API key, client certificate; 400, 401.
pub mod authn;

/// 4 and 5. IP allowlists: `[server]` before authentication, the caller's and route's after; 403.
pub mod ip_allow;
/// 5. Signed requests (RFC 9421, RFC 9530) with replay protection; 401, 503.
pub mod signature;

/// 6. Authorisation: scopes, owner binding, a view for the caller; 403.
pub mod authz;

/// 7. Validation: typed, whitelisted parameters; 400 `invalid_parameter`, 413.
pub mod validate;

/// 8. Rate limits: GCRA buckets, local or Redis; 429.
pub mod rate_limit;

/// 9. Load: the in-flight limit; 503 `overloaded`.
pub mod load_shed;

/// 9. Circuit breaker per upstream; 503 `circuit_open`.
pub mod circuit;

/// 9. Upstream choice: the route's named upstream, or its sticky, guarded canary.
pub mod canary;

/// 10. Proxy: the rebuilt upstream request, pool, retries; 502, 504.
pub mod proxy;

/// 11. Response views: field allow/deny/mask on JSON answers.
pub mod views;

/// 11. Ownership on the answer and the record count; 403, 502.
pub mod owners;

/// 11. Response: views applied, upstream errors replaced, security headers; 502.
pub mod response;

/// 11. Stale-if-error: kept answers served while the upstream fails.
pub mod stale;
/// After 11: the volume and enumeration guard counts answered requests (alert or freeze).
pub mod volume;

/// 12. Audit: one hash-chained record per request, whatever the outcome.
pub mod audit;

/// Security events to the webhook: a bounded queue and a sender task, off the request path.
pub mod events;
