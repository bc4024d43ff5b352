//! Stage 11b, stale-if-error (CONTRACT §10): a route's 200 JSON answers, as the caller saw them
//! (after the view), kept in memory and served only when the upstream fails — connect error,
//! timeout, 502/503/504, or an open circuit — and so only after every check before the proxy
//! (authentication, authorisation, validation, rate limits, load). Refuses nothing: without a
//! kept answer the failure stands. Adds `served = "stale"` to the record.
//!
//! Entries are keyed by the principal (kind and id, with its tenant and scopes, so a reload that
//! changes what the principal is makes its old entries unreachable), the view, and the canonical
//! upstream request (method, rewritten path, rebuilt query): no entry ever crosses principals or
//! views. Only GET answers are kept (a stale answer to a write would claim a write that did not
//! happen), never one the upstream marked `Cache-Control: no-store`. A freeze of the principal
//! drops its entries; a reload that changes the route's views builds a new, empty store.
//!
//! Memory is bounded by `max_bytes` and `max_entries` at once: the store (`quick_cache`, as the
//! token cache) weighs each entry by its bytes but at least `max_bytes / max_entries`, so its
//! weight capacity `max_bytes` admits neither more bytes nor more entries. While the circuit is
//! open the upstream is not called for these answers; the breaker's half-open probes are the
//! only calls until it closes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use quick_cache::Weighter;
use quick_cache::sync::Cache;
use tokio::time::Instant;

use crate::stage::abuse::principal_key;
use crate::stage::authn::Principal;
use crate::stage::authn::principal::Claims;
use crate::vocab::body::GatewayBody;
use crate::vocab::cause::UpstreamFailure;
use crate::vocab::error::GatewayError;

/// `[routes.stale_if_error]`, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleSettings {
    /// An answer older than this is never served.
    pub max_age: Duration,
    /// Entries kept at most.
    pub max_entries: u32,
    /// Bytes kept at most (bodies, headers and keys).
    pub max_bytes: u64,
}

impl Default for StaleSettings {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(15 * 60),
            max_entries: 10_000,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The largest single answer kept (the view's own limit).
const MAX_ENTRY_BYTES: u64 = 8 * 1024 * 1024;

/// Headers of the kept answer that are sent again; the rest describe the moment it was made.
const KEPT_HEADERS: [HeaderName; 2] = [header::CONTENT_TYPE, header::CONTENT_LANGUAGE];

static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");
const STALE_HIT: &str = "ordergate; hit; detail=stale";

/// What an answer is kept under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StaleKey {
    /// `principal:<kind>:<id>`, as the abuse guard names it (freezes drop by it).
    principal: Box<str>,
    /// The principal's tenant and scopes, the view and the canonical request, each
    /// length-prefixed so no two different requests share a key.
    request: Box<str>,
}

impl StaleKey {
    fn weight(&self) -> u64 {
        (self.principal.len() + self.request.len()) as u64
    }
}

fn push_field(out: &mut String, field: &str) {
    out.push_str(&field.len().to_string());
    out.push(':');
    out.push_str(field);
}

/// The key of a GET request's answer; `None` for any other method (never kept).
pub fn key(
    principal: &Principal,
    view: Option<usize>,
    method: &Method,
    path: &str,
    query: &str,
) -> Option<StaleKey> {
    if method != Method::GET {
        return None;
    }
    let mut request = String::with_capacity(64 + path.len() + query.len());
    push_field(&mut request, principal.tenant.as_deref().unwrap_or(""));
    push_field(
        &mut request,
        principal.scope_header.to_str().unwrap_or("\u{0}"),
    );
    push_field(
        &mut request,
        &view.map_or_else(|| "-".to_owned(), |v| v.to_string()),
    );
    push_field(&mut request, &claims_text(&principal.claims));
    push_field(&mut request, path);
    push_field(&mut request, query);
    Some(StaleKey {
        principal: principal_key(principal.kind, &principal.id).into(),
        request: request.into(),
    })
}

/// What the caller's owner checks read (its claims or attributes), as text, without the claims
/// that change with every token (`exp`, `iat`, `nbf`, `jti`, `auth_time`): a principal whose
/// owner claims changed (a customer taken off a sales rep's list) never gets an answer kept for
/// the old ones, which the owner check on the answer would now refuse (CONTRACT §7.3).
fn claims_text(claims: &Claims) -> String {
    match claims {
        Claims::Token(map) => {
            let kept: serde_json::Map<String, serde_json::Value> = map
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "exp" | "iat" | "nbf" | "jti" | "auth_time"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            serde_json::Value::Object(kept).to_string()
        }
        Claims::Attributes(attributes) => format!("{attributes:?}"),
    }
}

struct Answer {
    stored: Instant,
    headers: HeaderMap,
    body: Bytes,
    weight: u64,
}

#[derive(Clone)]
struct Weigh {
    floor: u64,
}

impl Weighter<StaleKey, Arc<Answer>> for Weigh {
    fn weight(&self, _key: &StaleKey, answer: &Arc<Answer>) -> u64 {
        answer.weight.max(self.floor)
    }
}

/// One route's kept answers.
pub struct StaleStore {
    route: Arc<str>,
    settings: StaleSettings,
    floor: u64,
    cache: Cache<StaleKey, Arc<Answer>, Weigh>,
}

impl std::fmt::Debug for StaleStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaleStore")
            .field("route", &self.route)
            .field("entries", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl StaleStore {
    /// An empty store for `route`.
    pub fn new(route: Arc<str>, settings: StaleSettings) -> Self {
        let entries = u64::from(settings.max_entries.max(1));
        let floor = (settings.max_bytes / entries).max(1);
        let cache = Cache::with_weighter(
            settings.max_entries.max(1) as usize,
            settings.max_bytes.max(1),
            Weigh { floor },
        );
        metrics::counter!("ordergate_stale_served_total", "route" => route.to_string())
            .increment(0);
        Self {
            route,
            settings,
            floor,
            cache,
        }
    }

    /// The settings it was built with (a reload with others builds a new store).
    pub fn settings(&self) -> &StaleSettings {
        &self.settings
    }

    /// Entries kept now.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// True when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// The weight kept now: at least the bytes kept, at most `max_bytes` (plus rounding).
    pub fn weight(&self) -> u64 {
        self.cache.weight()
    }

    /// Keeps a copy of a 200 JSON answer, reading a streamed body (when its length is declared
    /// and small enough) into memory first; any other answer passes untouched.
    pub async fn keep(
        &self,
        key: StaleKey,
        response: Response<GatewayBody>,
        body_timeout: Duration,
    ) -> Result<Response<GatewayBody>, GatewayError> {
        let encoded = response
            .headers()
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| v != "identity");
        // An encoded body would be served again without its encoding: not kept.
        if response.status() != StatusCode::OK || !is_json(response.headers()) || encoded {
            return Ok(response);
        }
        let cap = self.settings.max_bytes.min(MAX_ENTRY_BYTES);
        let (parts, body) = response.into_parts();
        let (bytes, body) = match body.as_full() {
            Some(bytes) => (bytes.clone(), body),
            None => {
                let declared = parts
                    .headers
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                if declared.is_none_or(|n| n > cap) {
                    return Ok(Response::from_parts(parts, body));
                }
                let collected =
                    tokio::time::timeout(body_timeout, Limited::new(body, cap as usize).collect())
                        .await
                        .map_err(|_| GatewayError::GatewayTimeout {
                            cause: UpstreamFailure::UpstreamBodyTimeout,
                        })?
                        .map_err(|_| GatewayError::BadGateway {
                            cause: UpstreamFailure::UpstreamBodyError,
                        })?
                        .to_bytes();
                (collected.clone(), GatewayBody::full(collected))
            }
        };
        let mut headers = HeaderMap::with_capacity(KEPT_HEADERS.len());
        for name in &KEPT_HEADERS {
            for value in parts.headers.get_all(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        let header_bytes: usize = headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len())
            .sum();
        let weight = bytes.len() as u64 + header_bytes as u64 + key.weight() + 64;
        if weight <= cap {
            self.cache.insert(
                key,
                Arc::new(Answer {
                    stored: Instant::now(),
                    headers,
                    body: bytes,
                    weight,
                }),
            );
        }
        Ok(Response::from_parts(parts, body))
    }

    /// The kept answer for `key`, if one younger than `max_age` is there, with `Age` and
    /// `Cache-Status`.
    pub fn serve(&self, key: &StaleKey) -> Option<Response<GatewayBody>> {
        let answer = self.cache.get(key)?;
        let age = answer.stored.elapsed();
        if age > self.settings.max_age {
            self.cache.remove(key);
            return None;
        }
        let mut response = Response::new(GatewayBody::full(answer.body.clone()));
        let headers = response.headers_mut();
        headers.clone_from(&answer.headers);
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(answer.body.len()));
        headers.insert(header::AGE, HeaderValue::from(age.as_secs()));
        headers.insert(CACHE_STATUS.clone(), HeaderValue::from_static(STALE_HIT));
        metrics::counter!("ordergate_stale_served_total", "route" => self.route.to_string())
            .increment(1);
        Some(response)
    }

    /// Drops every entry of a principal (`principal:<kind>:<id>`), e.g. when it is frozen.
    pub fn drop_principal(&self, principal: &str) {
        self.cache.retain(|k, _| &*k.principal != principal);
    }

    /// The smallest weight an entry counts for (`max_bytes / max_entries`).
    pub fn entry_floor(&self) -> u64 {
        self.floor
    }
}

/// Where the caller's answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// The upstream, now.
    Upstream,
    /// A kept answer, because the upstream failed.
    Stale,
}

/// The answer the caller gets: on an upstream failure `covers` names, the kept answer for
/// `kept` if there is one (else the failure); otherwise the upstream's, kept for later when the
/// route keeps answers and the upstream allowed storing it.
pub async fn settle(
    kept: Option<(&StaleStore, StaleKey)>,
    shaped: Result<Response<GatewayBody>, GatewayError>,
    storable: bool,
    body_timeout: Duration,
) -> Result<(Response<GatewayBody>, From), GatewayError> {
    match kept {
        Some((store, key)) if covers(&shaped) => match store.serve(&key) {
            Some(answer) => Ok((answer, From::Stale)),
            None => shaped.map(|r| (r, From::Upstream)),
        },
        Some((store, key)) if storable => Ok((
            store.keep(key, shaped?, body_timeout).await?,
            From::Upstream,
        )),
        _ => shaped.map(|r| (r, From::Upstream)),
    }
}

/// One request's place in its route's stale-if-error store: the key its answer is kept under
/// (none when the route keeps none, or for a method never kept), and whether the upstream's
/// answer may be stored.
pub struct Kept<'s> {
    kept: Option<(&'s StaleStore, StaleKey)>,
    storable: bool,
}

impl<'s> Kept<'s> {
    /// The request's key in `store` ([`key`]).
    pub fn new(
        store: Option<&'s StaleStore>,
        principal: &Principal,
        view: Option<usize>,
        method: &Method,
        target: &(String, String),
    ) -> Self {
        let (path, query) = target;
        let kept = store.and_then(|s| key(principal, view, method, path, query).map(|k| (s, k)));
        Self {
            kept,
            storable: false,
        }
    }

    /// Notes the upstream's answer headers: its `Cache-Control` decides whether it is kept.
    pub fn answered(&mut self, upstream: &HeaderMap) {
        self.storable = self.kept.is_some() && storable(upstream);
    }

    /// [`settle`]: the caller's answer, from the upstream or kept.
    pub async fn settle(
        self,
        shaped: Result<Response<GatewayBody>, GatewayError>,
        body_timeout: Duration,
    ) -> Result<(Response<GatewayBody>, From), GatewayError> {
        settle(self.kept, shaped, self.storable, body_timeout).await
    }
}

/// True when the upstream failed in a way a stale answer may cover: connect error, timeout,
/// 502/503/504 (replaced or exposed), or an open circuit.
pub fn covers(outcome: &Result<Response<GatewayBody>, GatewayError>) -> bool {
    match outcome {
        Ok(response) => matches!(response.status().as_u16(), 502..=504),
        Err(GatewayError::CircuitOpen { .. }) => true,
        Err(GatewayError::BadGateway {
            cause: UpstreamFailure::UpstreamUnreachable,
        }) => true,
        Err(GatewayError::GatewayTimeout {
            cause: UpstreamFailure::UpstreamTimeout,
        }) => true,
        Err(GatewayError::UpstreamError { status }) => matches!(status.as_u16(), 502..=504),
        Err(_) => false,
    }
}

/// False when the upstream's `Cache-Control` says `no-store` (the answer is then not kept).
pub fn storable(upstream: &HeaderMap) -> bool {
    // A value that is not text cannot be read as allowing storage: not kept (fail closed).
    !upstream.get_all(header::CACHE_CONTROL).iter().any(|v| {
        v.to_str().map_or(true, |v| {
            v.split(',').any(|d| {
                d.split('=')
                    .next()
                    .is_some_and(|n| n.trim().eq_ignore_ascii_case("no-store"))
            })
        })
    })
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
}

#[cfg(test)]
mod tests;
