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

use crate::vocab::error::{BadRequest, GatewayError};
use crate::vocab::query::RawQuery;
use crate::vocab::scopes::{Roles, ScopeRegistry};
pub use principal::{Principal, PrincipalKind};

/// `[auth]`, compiled.
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    pub jwt: Option<jwt::JwtSettings>,
    pub api_keys: Option<api_key::ApiKeyTable>,
    pub mtls: Vec<mtls::MtlsClient>,
}

/// True when the query string carries something that looks like a credential: a parameter named
/// like the key header, `api_key`, `apikey` or `access_token` (unless the route declares it), or
/// any value with the prefix of ordergate's keys.
pub fn credential_in_query(
    query: &RawQuery,
    key_header: Option<&str>,
    declared: &dyn Fn(&str) -> bool,
) -> bool {
    query.pairs.iter().any(|(name, value)| {
        let named_like_a_key = ["api_key", "apikey", "access_token"]
            .into_iter()
            .chain(key_header)
            .any(|credential| same_name(name, credential));
        (named_like_a_key && !declared(name)) || value.starts_with(api_key::KEY_PREFIX)
    })
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

/// Authenticates one request. `client_subject` is the verified client certificate's subject.
pub async fn authenticate(
    auth: &AuthSettings,
    roles: &Roles,
    scopes: &ScopeRegistry,
    verifier: Option<&jwt::JwtVerifier>,
    headers: &HeaderMap,
    client_subject: Option<&mtls::Subject>,
) -> Result<Arc<Principal>, GatewayError> {
    let fail = |cause: &'static str| {
        metrics::counter!("ordergate_auth_failures_total", "reason" => cause).increment(1);
        GatewayError::Unauthenticated { cause }
    };
    let mut authorization = headers.get_all(AUTHORIZATION).iter();
    let bearer = authorization.next();
    let key_header = auth.api_keys.as_ref().map(|k| &k.header);
    let mut keys = key_header.map(|h| headers.get_all(h).iter());
    let key = keys.as_mut().and_then(Iterator::next);
    let certificate = client_subject.and_then(|s| mtls::principal_for(&auth.mtls, s));
    let presented = usize::from(bearer.is_some())
        + usize::from(key.is_some())
        + usize::from(certificate.is_some());
    if presented > 1 {
        return Err(GatewayError::BadRequest(BadRequest::TwoCredentials));
    }
    if authorization.next().is_some() || keys.as_mut().and_then(Iterator::next).is_some() {
        return Err(fail("repeated_credential_header"));
    }
    if let Some(principal) = certificate {
        return Ok(principal);
    }
    if let Some(value) = key {
        let table = auth
            .api_keys
            .as_ref()
            .ok_or_else(|| fail("api_keys_disabled"))?;
        return table.verify(value.as_bytes(), now_secs()).map_err(fail);
    }
    let Some(value) = bearer else {
        return Err(fail("missing_credential"));
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
        return Err(fail("malformed_authorization"));
    };
    let verifier = verifier.ok_or_else(|| fail("jwt_disabled"))?;
    if token.len() > verifier.max_token_bytes() {
        return Err(fail("token_too_large"));
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
        let q = |s: &str| query::parse(s);
        assert!(credential_in_query(
            &q("X-Api-Key=abc"),
            Some("X-Api-Key"),
            &none
        ));
        assert!(credential_in_query(
            &q("x_api_key=abc"),
            Some("X-Api-Key"),
            &none
        ));
        assert!(credential_in_query(&q("api_key=abc"), None, &none));
        assert!(credential_in_query(&q("access_token=abc"), None, &none));
        assert!(credential_in_query(&q("cursor=ogk_abc"), None, &none));
        assert!(!credential_in_query(
            &q("cursor=abc&page_size=2"),
            Some("X-Api-Key"),
            &none
        ));
        assert!(!credential_in_query(&q("api_key=abc"), None, &|n| n == "api_key"));
    }
}
