//! Stage 5b, signed requests (RFC 9421 HTTP Message Signatures, RFC 9530 Content-Digest), right
//! after authentication and before authorisation and validation, over the request exactly as
//! received. A credential with a `signature` key must sign every request; a route with
//! `require_signature` refuses every caller that does not. Refuses with 401 `unauthenticated`
//! (audit `detail` one of `signature_missing`, `signature_malformed`, `signature_components`,
//! `signature_keyid_mismatch`, `signature_invalid`, `signature_expired`, `signature_future`,
//! `signature_replayed`, `digest_mismatch`), or 503 `overloaded` (`nonce_store_unavailable`)
//! while the nonce store fails under `on_store_error = "reject"`.
//!
//! Order of the checks, cheapest and stateless first: the headers parse, a signature names the
//! credential, it covers what it must, `created` is inside the window, the signature verifies —
//! and only then is the nonce recorded, so unsigned garbage can never fill the nonce store. The
//! body's `Content-Digest` is compared when stage 7 has read the body ([`DigestCheck`]), on the
//! bytes as received and before they are validated.
//!
//! Adds to the context: `signed = true` once verified.

pub mod base;
pub mod carry;
pub mod digest;
pub mod fleet;
pub mod nonce;
pub mod sign;
pub mod verify;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, Method, Uri};

use crate::stage::authn::{FailedAuth, Principal, charged};
use crate::vocab::cause::{AuthFailure, Overload};
use crate::vocab::error::GatewayError;
use crate::vocab::event::{Event, EventKind, Events};
use crate::vocab::principal_kind::PrincipalKind;
use crate::vocab::shared_store::SharedStore;
pub use digest::DigestCheck;
pub use fleet::FleetTtl;
pub use nonce::LocalNonces;
pub use verify::VerifyKey;

/// Where seen nonces are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceStore {
    /// This process's memory (bounded, see [`nonce::LOCAL_CAPACITY`]).
    Local,
    /// The `[rate_limits]` Redis, shared by every instance.
    Redis,
}

/// What a signed request does while the nonce store cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStoreError {
    /// 503 `overloaded`.
    Reject,
    /// Accept without the replay check, counted in `ordergate_signature_nonce_unchecked_total`.
    Allow,
}

/// `[auth.signatures]` with every credential's key, compiled.
#[derive(Debug, Clone)]
pub struct SignatureSettings {
    /// `created` at most this old.
    pub max_age: Duration,
    /// `created` at most this far in the future.
    pub clock_skew: Duration,
    /// Where nonces are recorded.
    pub nonce_store: NonceStore,
    /// What to do when that store fails.
    pub on_store_error: OnStoreError,
    /// The verification key of every credential that signs, by principal kind and id.
    pub keys: HashMap<(PrincipalKind, Arc<str>), VerifyKey>,
    /// What the previous generations' nonces still need (set at reload, [`carry`]).
    pub carried: Option<carry::Carried>,
    /// Epoch seconds, set when the process starts on the local store: a process before this one
    /// may have accepted a request signed at or before this, and its nonces died with it. For
    /// such a request the store cannot answer, and `on_store_error` decides ([`carry`]).
    pub nonces_lost_until: Option<i64>,
    /// How long the other instances on Redis may take to learn a new nonce lifetime
    /// ([`fleet::propagation`] of `redis_timeout`).
    pub fleet_propagation: Duration,
}

impl Default for SignatureSettings {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(60),
            clock_skew: Duration::from_secs(5),
            nonce_store: NonceStore::Local,
            on_store_error: OnStoreError::Reject,
            keys: HashMap::new(),
            carried: None,
            nonces_lost_until: None,
            fleet_propagation: fleet::propagation(Duration::from_millis(100)),
        }
    }
}

/// Added to a nonce's lifetime: `created` and the clock are read in whole seconds, so a request
/// may stay acceptable up to a second past `max_age + clock_skew` from when it is first seen.
const NONCE_MARGIN: Duration = Duration::from_secs(2);

impl SignatureSettings {
    /// How long a nonce is remembered. A request first seen with `created` up to `clock_skew`
    /// ahead stays acceptable for `max_age + clock_skew` from then (whole seconds) on the clock
    /// that saw it. Instances whose clocks disagree by up to `clock_skew` judge `created` each on
    /// their own: one running that much behind accepts the request `clock_skew` longer still. So
    /// the pair is kept for `max_age + 2 × clock_skew` and a margin, and never forgotten while
    /// any instance within the skew could still accept the request.
    pub fn nonce_ttl(&self) -> Duration {
        self.max_age + self.clock_skew * 2 + NONCE_MARGIN
    }
}

/// The request facts the signature covers, as received.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// The method.
    pub method: &'a Method,
    /// The request target (HTTP/2: with its `:authority`).
    pub uri: &'a Uri,
    /// Every header field as received.
    pub headers: &'a HeaderMap,
    /// True on TLS (the default port of `@authority` is 443, else 80).
    pub tls: bool,
    /// What of the body the signature must cover.
    pub body: BodyCoverage,
}

/// What of a request's body its signature must cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyCoverage {
    /// No body: neither.
    NoBody,
    /// `content-digest`: the bytes as received.
    Digest,
    /// `content-digest` and `content-type`: the route accepts more than one body type, so the
    /// bytes alone do not say how they are read and forwarded.
    DigestAndType,
}

impl BodyCoverage {
    /// For a request that has (or may have) a body, on a route accepting `body_types` types.
    pub fn of(has_body: bool, body_types: usize) -> Self {
        match (has_body, body_types > 1) {
            (false, _) => Self::NoBody,
            (true, false) => Self::Digest,
            (true, true) => Self::DigestAndType,
        }
    }
}

/// Who sent it, for the replay event.
#[derive(Debug, Clone, Copy)]
pub struct Sender<'a> {
    /// The authenticated caller.
    pub principal: &'a Principal,
    /// The client address.
    pub client_ip: IpAddr,
    /// The matched route.
    pub route: &'a Arc<str>,
}

/// The shared state the stage records nonces in.
#[derive(Debug, Clone, Copy)]
pub struct Stores<'a> {
    /// This process's nonces (outlive reloads).
    pub local: &'a LocalNonces,
    /// The shared Redis, when connected.
    pub redis: Option<&'a SharedStore>,
    /// The widest nonce lifetime of the instances on that Redis ([`fleet`]).
    pub fleet: &'a FleetTtl,
    /// Where the replay event goes.
    pub events: &'a Events,
}

/// A verified signature: what stage 7 still has to check on the body (none when no
/// `content-digest` is covered — then the request has no body).
#[derive(Debug)]
pub struct Verified {
    /// The digests the signed `Content-Digest` promises.
    pub digest: Option<DigestCheck>,
}

/// Checks the request's signature when the credential or the route demands one; `Ok(None)`
/// when neither does (the request is not signed, whatever headers it carries).
pub async fn check(
    settings: &SignatureSettings,
    route_requires: bool,
    request: &SignedRequest<'_>,
    sender: Sender<'_>,
    stores: Stores<'_>,
) -> Result<Option<Verified>, GatewayError> {
    let principal = sender.principal;
    let key = settings.keys.get(&(principal.kind, principal.id.clone()));
    if key.is_none() && !route_requires {
        return Ok(None);
    }
    let now = now_secs();
    let verified = verify_request(
        settings,
        settings.carried.as_ref(),
        key,
        &principal.id,
        request,
        now,
    )
    .map_err(fail)?;
    let nonce = nonce::NonceKey::new(principal.kind, &principal.id, &verified.nonce);
    let ttl = settings.nonce_ttl();
    // Signed before this process started, on a store that forgot what the one before saw, or
    // before the shared store was found without (or with shorter-lived) nonces: the store
    // cannot answer ([`carry`], [`fleet`]). Refused, it is not recorded either, so the same
    // request sent again is refused the same way; a nonce still held is a replay all the same.
    let also = settings.also_for(verified.created);
    let shared = settings.nonce_store == NonceStore::Redis || also == Some(NonceStore::Redis);
    let lost = settings.lost_for(verified.created)
        || (shared && stores.fleet.lost_for(verified.created, now));
    let recorded = if lost && settings.on_store_error == OnStoreError::Reject {
        let mut seen = holds(settings.nonce_store, stores, nonce).await;
        if let (false, Some(old)) = (seen, also) {
            seen = holds(old, stores, nonce).await;
        }
        if seen {
            Ok(false)
        } else {
            Err(LOST.to_owned())
        }
    } else {
        let mut recorded = record(settings.nonce_store, stores, nonce, ttl).await?;
        // Signed before a reload that moved the store: the old one is asked too ([`carry`]).
        // Refused because the old one failed, the pair is taken back from the new one, so the
        // same request sent again is not taken for a replay.
        if let (Ok(true), Some(old)) = (&recorded, also) {
            let carried = record(old, stores, nonce, ttl).await;
            let refused = match &carried {
                Err(_) => true,
                Ok(Err(_)) => settings.on_store_error == OnStoreError::Reject,
                Ok(Ok(_)) => false,
            };
            if refused {
                forget(settings.nonce_store, stores, nonce).await;
            }
            recorded = carried?;
        }
        if lost && recorded == Ok(true) {
            recorded = Err(LOST.to_owned());
        }
        recorded
    };
    match recorded {
        Ok(true) => {}
        Ok(false) => {
            let mut event = Event::new(EventKind::SignatureReplayed);
            event.principal = Some(format!("{}:{}", principal.kind.as_str(), principal.id));
            event.client_ip = Some(sender.client_ip);
            event.route = Some(sender.route.clone());
            event.detail = Some(AuthFailure::SignatureReplayed.as_str());
            stores.events.emit(event);
            return Err(fail(AuthFailure::SignatureReplayed));
        }
        Err(error) => match settings.on_store_error {
            OnStoreError::Reject => {
                tracing::warn!(%error, "nonce store unavailable: signed request refused");
                return Err(GatewayError::Overloaded {
                    cause: Overload::NonceStoreUnavailable,
                });
            }
            OnStoreError::Allow => {
                tracing::warn!(%error, "nonce store unavailable: signed request accepted without the replay check");
                metrics::counter!("ordergate_signature_nonce_unchecked_total").increment(1);
            }
        },
    }
    Ok(Some(Verified {
        digest: verified.digest,
    }))
}

/// Why a request is not vouched for ([`SignatureSettings::lost_for`], [`FleetTtl::lost_for`]).
const LOST: &str = "signed before the nonce store could vouch for it (a start, or a shared store found without its nonces)";

/// True when `store` still holds `nonce` (recording nothing); false when it cannot say.
async fn holds(store: NonceStore, stores: Stores<'_>, nonce: nonce::NonceKey) -> bool {
    match store {
        NonceStore::Local => stores.local.holds(nonce, std::time::Instant::now()),
        NonceStore::Redis => match stores.redis {
            Some(redis) => nonce::holds_shared(redis, nonce).await.unwrap_or(false),
            None => false,
        },
    }
}

/// Takes back `nonce`, which this request recorded in `store` before it was refused.
async fn forget(store: NonceStore, stores: Stores<'_>, nonce: nonce::NonceKey) {
    match store {
        NonceStore::Local => stores.local.forget(nonce),
        NonceStore::Redis => {
            if let Some(redis) = stores.redis
                && let Err(error) = nonce::forget_shared(redis, nonce).await
            {
                tracing::warn!(%error, "a refused request's nonce could not be taken back");
            }
        }
    }
}

/// Records `nonce` in `store`: `Ok(true)` when it was fresh, `Ok(false)` when it was seen,
/// `Err` (text) when the store failed; a full local store is refused at once.
async fn record(
    store: NonceStore,
    stores: Stores<'_>,
    nonce: nonce::NonceKey,
    ttl: Duration,
) -> Result<Result<bool, String>, GatewayError> {
    Ok(match store {
        NonceStore::Local => match stores.local.record(nonce, ttl, std::time::Instant::now()) {
            Err(full) if full.is_full() => {
                tracing::warn!(error = %full, "nonce store full: signed request refused");
                return Err(GatewayError::Overloaded {
                    cause: Overload::NonceStoreUnavailable,
                });
            }
            other => other.map_err(|e| e.to_string()),
        },
        NonceStore::Redis => match stores.redis {
            Some(store) => nonce::record_shared(store, nonce, stores.fleet.widen(ttl))
                .await
                .map_err(|e| e.to_string()),
            None => Err("the shared backend is not connected".to_owned()),
        },
    })
}

/// Stage 5b for the pipeline: [`check`], a 401 charging the caller's failed-authentication
/// `allowance` (which answers 429 instead once it is spent).
pub async fn stage(
    settings: &SignatureSettings,
    route_requires: bool,
    request: &SignedRequest<'_>,
    sender: Sender<'_>,
    stores: Stores<'_>,
    allowance: &impl FailedAuth,
) -> Result<Option<Verified>, GatewayError> {
    match check(settings, route_requires, request, sender, stores).await {
        Ok(verified) => Ok(verified),
        Err(error) => Err(charged(error, allowance).await),
    }
}

/// What the stateless checks established.
#[derive(Debug)]
pub struct Checked {
    /// The signature's `nonce`.
    pub nonce: String,
    /// Its `created`, epoch seconds.
    pub created: i64,
    /// The signed `Content-Digest`, when covered.
    pub digest: Option<DigestCheck>,
}

/// The stateless part: headers, coverage, window, signature. `carried`: what the running
/// generation inherited from earlier ones (the shadow's candidate is judged with the running
/// one's, so both read a request signed before a reload alike). `key` is the credential's key
/// (none: the credential does not sign, yet the route demands it). `now` in epoch seconds.
pub fn verify_request(
    settings: &SignatureSettings,
    carried: Option<&carry::Carried>,
    key: Option<&VerifyKey>,
    keyid: &str,
    request: &SignedRequest<'_>,
    now: i64,
) -> Result<Checked, AuthFailure> {
    let chosen = base::choose(request.headers, keyid)?;
    let Some(key) = key else {
        // Nothing this credential could have signed with.
        return Err(AuthFailure::SignatureInvalid);
    };
    base::require_coverage(&chosen.components, request.body)?;
    if let Some(alg) = &chosen.alg
        && alg != key.alg_name()
    {
        return Err(AuthFailure::SignatureInvalid);
    }
    let skew = secs(settings.clock_skew);
    if chosen.created > now.saturating_add(skew) {
        return Err(AuthFailure::SignatureFuture);
    }
    // Signed before a reload that raised it: the old `max_age` ([`carry`]).
    if now.saturating_sub(chosen.created)
        > secs(carry::max_age_for(
            carried,
            settings.max_age,
            chosen.created,
        ))
        || chosen.expires.is_some_and(|e| now > e.saturating_add(skew))
    {
        return Err(AuthFailure::SignatureExpired);
    }
    let signature_base = base::signature_base(&chosen.components, &chosen.params, request)?;
    key.verify(&signature_base, &chosen.signature)?;
    let digest = if chosen.components.iter().any(|c| c == "content-digest") {
        Some(DigestCheck::from_headers(request.headers)?)
    } else {
        None
    };
    Ok(Checked {
        nonce: chosen.nonce,
        created: chosen.created,
        digest,
    })
}

/// True when the request carries, or may carry, a body: not at its end already, or with a
/// `Content-Length` above 0. Such a request must sign its `Content-Digest`.
pub fn has_body(headers: &HeaderMap, end_stream: bool) -> bool {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() != "0");
    !end_stream || declared
}

/// Stage 7's half: the body bytes as received against the signed `Content-Digest` (nothing to
/// check when the request was not signed or covers no digest).
pub fn check_body(digest: Option<&DigestCheck>, raw: &[u8]) -> Result<(), GatewayError> {
    match digest {
        Some(d) if !d.matches(raw) => Err(fail(AuthFailure::DigestMismatch)),
        _ => Ok(()),
    }
}

/// Counts a signature failure and makes it the 401 it is.
pub fn fail(cause: AuthFailure) -> GatewayError {
    metrics::counter!("ordergate_signature_failures_total", "detail" => cause.as_str())
        .increment(1);
    metrics::counter!("ordergate_auth_failures_total", "reason" => cause.as_str()).increment(1);
    GatewayError::Unauthenticated { cause }
}

/// Every `detail` of a signature refusal: the closed label list of
/// `ordergate_signature_failures_total`, exported at 0 from the start.
pub const FAILURES: &[AuthFailure] = &[
    AuthFailure::SignatureMissing,
    AuthFailure::SignatureMalformed,
    AuthFailure::SignatureComponents,
    AuthFailure::SignatureKeyidMismatch,
    AuthFailure::SignatureInvalid,
    AuthFailure::SignatureExpired,
    AuthFailure::SignatureFuture,
    AuthFailure::SignatureReplayed,
    AuthFailure::DigestMismatch,
];

/// Exports every signature series at 0.
pub fn export_known_series() {
    for cause in FAILURES {
        metrics::counter!("ordergate_signature_failures_total", "detail" => cause.as_str())
            .increment(0);
    }
    metrics::counter!("ordergate_signature_nonce_unchecked_total").increment(0);
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The clock in epoch seconds, as `created` is written.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(secs)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
