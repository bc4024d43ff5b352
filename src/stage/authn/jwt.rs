//! Bearer JWTs. The header is parsed here, not by the library, so that every rule is explicit:
//! `alg` must be listed in `algorithms` and fit the selected key (no `none`; HMAC only with the
//! configured secret, never with a JWKS key); `crit` is refused (no extension is understood);
//! `jku`, `x5u`, `jwk` and `x5c` are never read, let alone followed. The signature is checked by
//! `jsonwebtoken` with the aws-lc provider; then `exp` (required), `nbf` and `iat` with `leeway`,
//! exact `iss`, and `aud` containing one of `audiences`.
//!
//! Verified tokens are cached by SHA-256 of the token until `exp`, so a hot caller costs one hash
//! and one lookup instead of a signature check.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use quick_cache::sync::Cache;
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::jwks::{JwksSource, JwksStore, KeySet, Selection};
use super::principal::{Claims, Principal, scope_header};
use crate::vocab::cause::AuthFailure;
use crate::vocab::principal_kind::PrincipalKind;
use crate::vocab::scopes::Roles;
use crate::vocab::scopes::ScopeRegistry;

/// `[auth.jwt]`, compiled.
#[derive(Clone)]
pub struct JwtSettings {
    /// The required `iss`.
    pub issuer: String,
    /// Accepted `aud` values: the token must name at least one.
    pub audiences: Vec<String>,
    /// Accepted `alg` values; anything else is refused before verification.
    pub algorithms: Vec<Algorithm>,
    /// Where the keys come from and the keys last loaded.
    pub jwks: Option<(JwksSource, KeySet)>,
    /// How often a JWKS URL is refetched.
    pub jwks_refresh: Duration,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_secs: i64,
    /// Longest token accepted, checked before decoding.
    pub max_token_bytes: usize,
    /// The claim holding the space-separated scopes.
    pub scope_claim: String,
    /// The claim holding the role names.
    pub roles_claim: String,
    /// The claim holding the tenant.
    pub tenant_claim: String,
    /// The shared secret for HS* tokens, if configured.
    pub hmac: Option<DecodingKey>,
    /// Verified tokens kept until `exp`; 0 re-verifies every time.
    pub cache_size: usize,
}

impl std::fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSettings")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("algorithms", &self.algorithms)
            .field("hmac", &self.hmac.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl JwtSettings {
    /// The principal verified claims stand for: `sub`, scopes from `scope_claim` and the roles
    /// in `roles_claim`, the tenant. Also what `ordergate explain` asks about a JWT caller.
    pub fn principal(
        &self,
        claims: Map<String, Value>,
        roles: &Roles,
        registry: &ScopeRegistry,
    ) -> Result<Principal, AuthFailure> {
        let id = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => Arc::<str>::from(s.as_str()),
            _ => return Err(AuthFailure::MissingSubject),
        };
        let token_scopes = strings(claims.get(&self.scope_claim));
        let role_names = strings(claims.get(&self.roles_claim));
        let mut scopes = registry.known(token_scopes.iter().map(String::as_str));
        let mut names: Vec<&str> = token_scopes.iter().map(String::as_str).collect();
        let mut allow_ips = Vec::new();
        for role in &role_names {
            if let Some(role) = roles.get(role.as_str()) {
                scopes.extend(&role.set);
                names.extend(role.names.iter().map(|s| &**s));
                allow_ips.extend(role.allow_ips.clone());
            }
        }
        let tenant = match claims.get(&self.tenant_claim) {
            Some(Value::String(t)) => Some(Arc::from(t.as_str())),
            _ => None,
        };
        let scope_header = scope_header(names);
        // The same reading of `exp` as `check_claims`: a fractional `exp` (RFC 7519 allows one)
        // must bound the cache too, or the token is served from it forever.
        let expires_at = numeric_date(&claims, "exp").ok().flatten();
        Ok(Principal {
            id,
            kind: PrincipalKind::Jwt,
            tenant,
            scopes,
            scope_header,
            claims: Claims::Token(claims),
            expires_at,
            allow_ips,
        })
    }
}

/// The header fields ordergate reads. Everything else (`jku`, `x5u`, `jwk`, `x5c`, ...) is ignored.
#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    crit: Option<Value>,
}

/// The verifier of one policy generation: settings, live keys and the cache of verified tokens.
pub struct JwtVerifier {
    settings: JwtSettings,
    store: Option<Arc<JwksStore>>,
    cache: Cache<[u8; 32], (u64, Arc<Principal>)>,
}

impl JwtVerifier {
    /// Builds the verifier; with a JWKS URL the key set starts empty until [`Self::start`].
    pub fn new(settings: JwtSettings) -> Result<Self, crate::vocab::tls_client::TlsError> {
        let store = match &settings.jwks {
            Some((source, initial)) => {
                Some(Arc::new(JwksStore::new(source.clone(), initial.clone())?))
            }
            None => None,
        };
        let cache = Cache::new(settings.cache_size.max(1));
        Ok(Self {
            settings,
            store,
            cache,
        })
    }

    /// Fetches a URL key set once and starts the background refresher.
    pub async fn start(&self) {
        if let Some(store) = &self.store {
            if matches!(store_source(&self.settings), Some(JwksSource::Url { .. })) {
                let _ = store.refresh().await;
            }
            store.spawn_refresher(self.settings.jwks_refresh);
        }
    }

    /// The maximum token size.
    pub fn max_token_bytes(&self) -> usize {
        self.settings.max_token_bytes
    }

    /// Verifies `token`; `Err` holds the audit cause.
    pub async fn verify(
        &self,
        token: &str,
        roles: &Roles,
        registry: &ScopeRegistry,
    ) -> Result<Arc<Principal>, AuthFailure> {
        if token.len() > self.settings.max_token_bytes {
            return Err(AuthFailure::TokenTooLarge);
        }
        let now = now_secs();
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let generation = self.store.as_ref().map_or(0, |s| s.generation());
        let caching = self.settings.cache_size > 0;
        if caching
            && let Some((cached_generation, principal)) = self.cache.get(&digest)
            && cached_generation == generation
        {
            if principal
                .expires_at
                .is_some_and(|exp| now > exp + self.settings.leeway_secs)
            {
                self.cache.remove(&digest);
                return Err(AuthFailure::TokenExpired);
            }
            return Ok(principal);
        }
        let principal = Arc::new(self.verify_uncached(token, now, roles, registry).await?);
        if caching && principal.expires_at.is_some() {
            self.cache.insert(digest, (generation, principal.clone()));
        }
        Ok(principal)
    }

    async fn verify_uncached(
        &self,
        token: &str,
        now: i64,
        roles: &Roles,
        registry: &ScopeRegistry,
    ) -> Result<Principal, AuthFailure> {
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthFailure::MalformedToken);
        };
        let header: Header = decode_json(header_b64).ok_or(AuthFailure::MalformedToken)?;
        if header.crit.is_some() {
            return Err(AuthFailure::UnsupportedCrit);
        }
        if header.alg.eq_ignore_ascii_case("none") {
            return Err(AuthFailure::AlgNone);
        }
        let alg: Algorithm = header.alg.parse().map_err(|_| AuthFailure::AlgNotAllowed)?;
        if !self.settings.algorithms.contains(&alg) {
            return Err(AuthFailure::AlgNotAllowed);
        }
        let message = &token[..header_b64.len() + 1 + claims_b64.len()];
        let verified = if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            let key = self
                .settings
                .hmac
                .as_ref()
                .ok_or(AuthFailure::HmacNotConfigured)?;
            jsonwebtoken::crypto::verify(signature, message.as_bytes(), key, alg)
        } else {
            let store = self.store.as_ref().ok_or(AuthFailure::NoVerificationKeys)?;
            let key = {
                let keys = store.keys();
                match keys.select(header.kid.as_deref(), alg) {
                    Selection::Found(k) => Some(k.key.clone()),
                    Selection::Mismatch => return Err(AuthFailure::AlgKeyMismatch),
                    Selection::UnknownKid => None,
                }
            };
            let key = match key {
                Some(k) => k,
                None => {
                    if !store.refresh_for_unknown_kid().await {
                        return Err(AuthFailure::UnknownKid);
                    }
                    match store.keys().select(header.kid.as_deref(), alg) {
                        Selection::Found(k) => k.key.clone(),
                        Selection::Mismatch => return Err(AuthFailure::AlgKeyMismatch),
                        Selection::UnknownKid => return Err(AuthFailure::UnknownKid),
                    }
                }
            };
            Ok(key.verify(alg, message.as_bytes(), signature))
        };
        if !verified.unwrap_or(false) {
            return Err(AuthFailure::BadSignature);
        }
        let claims: Map<String, Value> =
            decode_json(claims_b64).ok_or(AuthFailure::MalformedToken)?;
        self.check_claims(&claims, now)?;
        self.settings.principal(claims, roles, registry)
    }

    fn check_claims(&self, claims: &Map<String, Value>, now: i64) -> Result<(), AuthFailure> {
        let leeway = self.settings.leeway_secs;
        let time = |name: &str| numeric_date(claims, name);
        let exp = time("exp")?.ok_or(AuthFailure::MissingExp)?;
        if now > exp + leeway {
            return Err(AuthFailure::TokenExpired);
        }
        if time("nbf")?.is_some_and(|nbf| nbf > now + leeway) {
            return Err(AuthFailure::TokenNotYetValid);
        }
        if time("iat")?.is_some_and(|iat| iat > now + leeway) {
            return Err(AuthFailure::TokenIssuedInFuture);
        }
        match claims.get("iss") {
            Some(Value::String(iss)) if *iss == self.settings.issuer => {}
            _ => return Err(AuthFailure::WrongIssuer),
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => self.settings.audiences.contains(aud),
            Some(Value::Array(auds)) => auds.iter().any(|a| {
                a.as_str()
                    .is_some_and(|a| self.settings.audiences.iter().any(|x| x == a))
            }),
            _ => false,
        };
        if !audience_ok {
            return Err(AuthFailure::WrongAudience);
        }
        Ok(())
    }
}

fn store_source(settings: &JwtSettings) -> Option<&JwksSource> {
    settings.jwks.as_ref().map(|(s, _)| s)
}

/// A space-separated string or an array of strings.
fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(segment: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A NumericDate claim (RFC 7519 §2: seconds, possibly fractional), as whole seconds rounded
/// down; absent: `None`; not a finite number: `malformed_claims`.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, AuthFailure> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|f| f.is_finite())
            .map(|f| Some(f.floor() as i64))
            .ok_or(AuthFailure::MalformedClaims),
    }
}
