//! Stage 5, authentication: exactly one credential — a bearer JWT, an API key in its header, or
//! a client certificate mapped by `[[auth.mtls.clients]]`. Refuses with
//! - 400 `bad_request` for two different credentials, or an API key (or access token) in the
//!   query string — such a key is never logged and should be rotated,
//! - 401 `unauthenticated` (with `WWW-Authenticate: Bearer`) for none or an invalid one; the
//!   precise cause (`token_expired`, `bad_signature`, `unknown_kid`, ...) goes to the audit
//!   record and the `ordergate_auth_failures_total` metric only.
//!
//! Adds to the context: the [`Principal`].

pub mod api_key;
pub mod jwks;
pub mod jwt;
pub mod mtls;
pub mod principal;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::vocab::cause::AuthFailure;
use crate::vocab::error::{BadRequest, GatewayError};
use crate::vocab::query::RawQuery;
use crate::vocab::scopes::{Roles, ScopeRegistry};
pub use principal::Principal;

/// `[auth]`, compiled.
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    /// `[auth.jwt]`, if bearer tokens are accepted.
    pub jwt: Option<jwt::JwtSettings>,
    /// `[auth.api_keys]`, if API keys are accepted.
    pub api_keys: Option<api_key::ApiKeyTable>,
    /// `[[auth.mtls.clients]]`: the certificates mapped to principals.
    pub mtls: Vec<mtls::MtlsClient>,
}

/// True when the query string carries something that looks like a credential: a parameter named
/// like the key header, `api_key`, `apikey` or `access_token` (unless the route declares it), or
/// the prefix of ordergate's keys anywhere in `raw` (see [`key_prefix_anywhere`]).
pub fn credential_in_query(
    raw: &str,
    query: &RawQuery,
    key_header: Option<&str>,
    declared: &dyn Fn(&str) -> bool,
) -> bool {
    key_prefix_anywhere(raw)
        || query.pairs.iter().any(|(name, _)| {
            let named_like_a_key = ["api_key", "apikey", "access_token"]
                .into_iter()
                .chain(key_header)
                .any(|credential| same_name(name, credential));
            named_like_a_key && !declared(name)
        })
}

/// How many rounds of percent-decoding are looked through (`%256F` is `%6F` is `o`).
const DECODE_ROUNDS: usize = 4;

/// True when `ogk_` (any letter case) occurs anywhere in the raw query: in any name or value,
/// mid-value, in a repeated or malformed parameter that validation would drop, and through up to
/// [`DECODE_ROUNDS`] rounds of percent-encoding. Whatever the validation stage later makes of
/// the query, a key in it is never proxied or logged.
fn key_prefix_anywhere(raw: &str) -> bool {
    let prefix = api_key::KEY_PREFIX.as_bytes();
    let holds = |text: &[u8]| {
        text.windows(prefix.len())
            .any(|w| w.eq_ignore_ascii_case(prefix))
    };
    // Without an escape no round of decoding changes the text: one look (the common case).
    if !raw.contains('%') {
        return holds(raw.as_bytes());
    }
    let mut text = raw.as_bytes().to_vec();
    for _ in 0..DECODE_ROUNDS {
        if holds(&text) {
            return true;
        }
        let decoded = decode_leniently(&text);
        if decoded == text {
            return false;
        }
        text = decoded;
    }
    holds(&text)
}

/// Percent-decodes whatever decodes (`+` is irrelevant to the prefix and left as is); a bad
/// escape stays literal, so it cannot hide what follows it.
fn decode_leniently(text: &[u8]) -> Vec<u8> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let escaped = match (text[i], text.get(i + 1), text.get(i + 2)) {
            (b'%', Some(&hi), Some(&lo)) => hex(hi).zip(hex(lo)).map(|(h, l)| (h * 16 + l) as u8),
            _ => None,
        };
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(text[i]);
                i += 1;
            }
        }
    }
    out
}

/// Names equal ignoring ASCII case and `-` versus `_` (`X-Api-Key` = `x_api_key`), without
/// allocating: this runs for every query parameter of every request.
fn same_name(a: &str, b: &str) -> bool {
    let fold = |c: u8| {
        if c == b'-' {
            b'_'
        } else {
            c.to_ascii_lowercase()
        }
    };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| fold(x) == fold(y))
}

/// The failed-authentication allowance of stage 8 (the per-IP bucket), handed down to stages 5
/// and 5b so they need not import a later stage: charged once per 401.
pub trait FailedAuth {
    /// Charges one failure; `Some` refusal (429, or 503 when its shared backend is down under
    /// `reject`) replaces the 401 once the allowance is spent.
    fn charge(&self) -> impl Future<Output = Option<GatewayError>> + Send;
}

/// `error` as the caller gets it: a 401 charges `allowance` (and may become its refusal), any
/// other refusal passes unchanged.
pub async fn charged(error: GatewayError, allowance: &impl FailedAuth) -> GatewayError {
    if !matches!(error, GatewayError::Unauthenticated { .. }) {
        return error;
    }
    allowance.charge().await.unwrap_or(error)
}

/// What stage 5 is handed: its settings and the JWT verifier of the running generation.
#[derive(Clone, Copy)]
pub struct Settings<'a> {
    /// `[auth]`.
    pub auth: &'a AuthSettings,
    /// The roles credentials may name.
    pub roles: &'a Roles,
    /// The scopes the policy knows.
    pub scopes: &'a ScopeRegistry,
    /// The bearer-token verifier (none without `[auth.jwt]`).
    pub verifier: Option<&'a jwt::JwtVerifier>,
}

/// The request facts stage 5 reads.
#[derive(Clone, Copy)]
pub struct Presented<'a> {
    /// The request's headers.
    pub headers: &'a HeaderMap,
    /// The query string as received, and parsed.
    pub query: (&'a str, &'a RawQuery),
    /// Whether the route declares a query parameter of this name (then it is no credential).
    pub declared: &'a (dyn Fn(&str) -> bool + Sync),
    /// The verified client certificate's subject.
    pub client_subject: Option<&'a mtls::Subject>,
}

/// Stage 5 for the pipeline: refuses a credential in the query (400), then authenticates; a
/// 401 charges `allowance`, which answers 429 instead once it is spent.
pub async fn stage(
    settings: Settings<'_>,
    request: Presented<'_>,
    allowance: &impl FailedAuth,
) -> Result<Arc<Principal>, GatewayError> {
    let key_header = settings.auth.api_keys.as_ref().map(|k| k.header.as_str());
    let (raw_text, raw_query) = request.query;
    if credential_in_query(raw_text, raw_query, key_header, request.declared) {
        return Err(GatewayError::BadRequest(BadRequest::KeyInQuery));
    }
    let outcome = authenticate(
        settings.auth,
        settings.roles,
        settings.scopes,
        settings.verifier,
        request.headers,
        request.client_subject,
    )
    .await;
    match outcome {
        Ok(principal) => Ok(principal),
        Err(error) => Err(charged(error, allowance).await),
    }
}

/// Authenticates one request. `client_subject` is the verified client certificate's subject.
/// A failure is counted in `ordergate_auth_failures_total`.
pub async fn authenticate(
    auth: &AuthSettings,
    roles: &Roles,
    scopes: &ScopeRegistry,
    verifier: Option<&jwt::JwtVerifier>,
    headers: &HeaderMap,
    client_subject: Option<&mtls::Subject>,
) -> Result<Arc<Principal>, GatewayError> {
    let outcome = identify(auth, roles, scopes, verifier, headers, client_subject).await;
    if let Err(GatewayError::Unauthenticated { cause }) = &outcome {
        metrics::counter!("ordergate_auth_failures_total", "reason" => cause.as_str()).increment(1);
    }
    outcome
}

/// [`authenticate`] without counting failures: also what a shadow policy decides with
/// (`serve --shadow`), whose decisions must not show in the live metrics.
pub async fn identify(
    auth: &AuthSettings,
    roles: &Roles,
    scopes: &ScopeRegistry,
    verifier: Option<&jwt::JwtVerifier>,
    headers: &HeaderMap,
    client_subject: Option<&mtls::Subject>,
) -> Result<Arc<Principal>, GatewayError> {
    let fail = |cause: AuthFailure| GatewayError::Unauthenticated { cause };
    let mut authorization = headers.get_all(AUTHORIZATION).iter();
    let bearer = authorization.next();
    let key_header = auth.api_keys.as_ref().map(|k| &k.header);
    let mut keys = key_header.map(|h| headers.get_all(h).iter());
    let key = keys.as_mut().and_then(Iterator::next);
    let certificate = client_subject.and_then(|s| mtls::principal_for(&auth.mtls, s, now_secs()));
    let presented = usize::from(bearer.is_some())
        + usize::from(key.is_some())
        + usize::from(certificate.is_some());
    if presented > 1 {
        return Err(GatewayError::BadRequest(BadRequest::TwoCredentials));
    }
    if authorization.next().is_some() || keys.as_mut().and_then(Iterator::next).is_some() {
        return Err(fail(AuthFailure::RepeatedCredentialHeader));
    }
    if let Some(principal) = certificate {
        return principal.map_err(fail);
    }
    if let Some(value) = key {
        let table = auth
            .api_keys
            .as_ref()
            .ok_or_else(|| fail(AuthFailure::ApiKeysDisabled))?;
        return table.verify(value.as_bytes(), now_secs()).map_err(fail);
    }
    let Some(value) = bearer else {
        return Err(fail(AuthFailure::MissingCredential));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim_start())
        .filter(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        });
    let Some(token) = token else {
        return Err(fail(AuthFailure::MalformedAuthorization));
    };
    let verifier = verifier.ok_or_else(|| fail(AuthFailure::JwtDisabled))?;
    if token.len() > verifier.max_token_bytes() {
        return Err(fail(AuthFailure::TokenTooLarge));
    }
    verifier.verify(token, roles, scopes).await.map_err(fail)
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::query;

    #[test]
    fn keys_in_the_query_are_spotted() {
        let none = |_: &str| false;
        let check = |raw: &str, header: Option<&str>, declared: &dyn Fn(&str) -> bool| {
            credential_in_query(raw, &query::parse(raw), header, declared)
        };
        assert!(check("X-Api-Key=abc", Some("X-Api-Key"), &none));
        assert!(check("x_api_key=abc", Some("X-Api-Key"), &none));
        assert!(check("api_key=abc", None, &none));
        assert!(check("access_token=abc", None, &none));
        assert!(check("cursor=ogk_abc", None, &none));
        assert!(!check("cursor=abc&page_size=2", Some("X-Api-Key"), &none));
        assert!(!check("api_key=abc", None, &|n| n == "api_key"));
    }

    #[test]
    fn a_key_anywhere_in_the_query_is_spotted() {
        let none = |_: &str| false;
        let key = "ogk_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
        for raw in [
            format!("cursor=x{key}"),
            format!("cursor=abc%20{key}"),
            format!("cursor=abc&cursor={key}"),
            format!("{key}=1"),
            key.to_owned(),
            "cursor=%6Fgk_abc".to_owned(),
            "cursor=%6fGK%5Fabc".to_owned(),
            "cursor=%256Fgk_abc".to_owned(),
            "cursor=%25256Fgk%255Fabc".to_owned(),
            "cursor=OGK_abc".to_owned(),
            format!("cursor=%zz{key}"),
            "cursor=a%ogk_b".to_owned(),
            format!("page_size=2&cursor=%E2%82{key}"),
        ] {
            assert!(
                credential_in_query(&raw, &query::parse(&raw), None, &none),
                "{raw}"
            );
        }
        for raw in ["cursor=og_k", "cursor=o%67k", "cursor=ogk", "q=%6F%67%6B"] {
            assert!(
                !credential_in_query(raw, &query::parse(raw), None, &none),
                "{raw}"
            );
        }
    }

    /// An allowance that counts its charges and refuses (with `refusal`) once spent.
    struct Counting {
        charged: std::sync::atomic::AtomicUsize,
        refusal: fn() -> Option<GatewayError>,
    }

    impl FailedAuth for Counting {
        fn charge(&self) -> impl Future<Output = Option<GatewayError>> + Send {
            self.charged
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::future::ready((self.refusal)())
        }
    }

    #[tokio::test]
    async fn only_a_401_is_charged_and_a_spent_allowance_answers_instead() {
        let unauthenticated = || GatewayError::Unauthenticated {
            cause: AuthFailure::BadSignature,
        };
        let open = Counting {
            charged: Default::default(),
            refusal: || None,
        };
        let e = charged(unauthenticated(), &open).await;
        assert_eq!(e.cause(), Some("bad_signature"), "charged, still the 401");
        let e = charged(GatewayError::BadRequest(BadRequest::KeyInQuery), &open).await;
        assert_eq!(
            e.status(),
            http::StatusCode::BAD_REQUEST,
            "a 400 passes unchanged"
        );
        assert_eq!(open.charged.load(std::sync::atomic::Ordering::SeqCst), 1);
        let closed = Counting {
            charged: Default::default(),
            refusal: || {
                Some(GatewayError::Overloaded {
                    cause: crate::vocab::cause::Overload::RateLimitBackendUnavailable,
                })
            },
        };
        let e = charged(unauthenticated(), &closed).await;
        assert_eq!(e.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    }
}
