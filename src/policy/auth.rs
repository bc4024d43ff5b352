//! `[auth]`: the ways a caller proves who it is — `[auth.jwt]` (issuer, audiences, algorithms,
//! keys), `[auth.api_keys]` (hashed keys with validity windows) and `[[auth.mtls.clients]]`
//! (certificate subjects) — each compiled to a ready principal or verifier.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::config::files;
use crate::config::problems::KeyPath;
use crate::config::raw;
use crate::policy::ClientAuth;
use crate::policy::compile::Ctx;
use crate::stage::authn::AuthSettings;
use crate::stage::authn::api_key::{self, ApiKeyEntry, ApiKeyTable};
use crate::stage::authn::jwks::{JwksSource, KeySet};
use crate::stage::authn::jwt::JwtSettings;
use crate::stage::authn::mtls::{MtlsClient, Subject};
use crate::stage::authn::principal::{Claims, Principal, scope_header};
use crate::vocab::principal_kind::PrincipalKind;
use crate::vocab::scopes::{Roles, ScopeRegistry};

/// What a key or client entry gives its principal: roles, own scopes, tenant, attributes and
/// its own IP list.
type PrincipalParts<'a> = (
    &'a [String],
    &'a [String],
    Option<&'a String>,
    &'a BTreeMap<String, raw::Attribute>,
    &'a [String],
);

/// A principal for an API key or mTLS client: its roles' scopes plus its own.
fn fixed_principal(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    id: &str,
    kind: PrincipalKind,
    parts: PrincipalParts<'_>,
    roles: &Roles,
    scopes: &mut ScopeRegistry,
) -> Principal {
    let (role_names, own_scopes, tenant, attributes, own_ips) = parts;
    let mut allow_ips: Vec<_> = super::ip_lists::compile(ctx, &at.k("allow_ips"), own_ips)
        .into_iter()
        .collect();
    let mut set = scopes.set_of(own_scopes.iter().map(String::as_str));
    let mut names: Vec<&str> = own_scopes.iter().map(String::as_str).collect();
    for (i, role) in role_names.iter().enumerate() {
        match roles.get(role) {
            Some(r) => {
                set.extend(&r.set);
                names.extend(r.names.iter().map(|s| &**s));
                allow_ips.extend(r.allow_ips.clone());
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
        claims: Claims::Attributes(Arc::new(
            attributes
                .iter()
                .map(|(name, value)| {
                    let values = match value {
                        raw::Attribute::One(one) => vec![one.clone()],
                        raw::Attribute::Many(many) => many.clone(),
                    };
                    (name.clone(), values)
                })
                .collect(),
        )),
        expires_at: None,
        allow_ips,
    }
}

/// `[auth]`: each way of authenticating that the policy configures.
pub(super) fn compile(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    raw: &raw::Auth,
    roles: &Roles,
    scopes: &mut ScopeRegistry,
    client_auth: Option<ClientAuth>,
) -> AuthSettings {
    let jwt = raw.jwt.as_ref().and_then(|j| jwt(ctx, &at.k("jwt"), j));
    let api_keys = raw
        .api_keys
        .as_ref()
        .map(|keys| api_keys(ctx, &at.k("api_keys"), keys, roles, scopes));
    let mtls = mtls_clients(
        ctx,
        &at.k("mtls").k("clients"),
        &raw.mtls_clients,
        roles,
        scopes,
        client_auth,
    );
    AuthSettings {
        jwt,
        api_keys,
        mtls,
    }
}

/// `[auth.api_keys]`: hashed keys (ids and hashes unique), each with its validity window and
/// the principal it stands for.
fn api_keys(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    keys: &raw::ApiKeys,
    roles: &Roles,
    scopes: &mut ScopeRegistry,
) -> ApiKeyTable {
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
                &key.allow_ips,
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
}

/// `[[auth.mtls.clients]]`: certificate subjects (unique, each with a CN for the principal id);
/// only meaningful when `[server.tls]` asks clients for certificates.
fn mtls_clients(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    raw: &[Option<raw::MtlsClient>],
    roles: &Roles,
    scopes: &mut ScopeRegistry,
    client_auth: Option<ClientAuth>,
) -> Vec<MtlsClient> {
    let mut mtls = Vec::new();
    for (i, client) in raw.iter().enumerate() {
        let Some(client) = client else { continue };
        let at = at.i(i);
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
                &client.allow_ips,
            ),
            roles,
            scopes,
        );
        let not_after = client
            .not_after
            .as_ref()
            .and_then(|d| timestamp(ctx, &at.k("not_after"), d));
        mtls.push(MtlsClient {
            subject,
            principal: Arc::new(principal),
            not_after,
        });
    }
    mtls
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
        (true, Some(s)) => {
            match crate::vocab::secret::long_enough(s.expose().as_bytes(), "the HMAC secret") {
                Ok(()) => Some(DecodingKey::from_secret(s.expose().as_bytes())),
                Err(e) => {
                    ctx.bad(&at.k("algorithms"), e);
                    None
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use crate::policy::fixtures::check;

    const HASH: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn bad_jwt_values_are_reported_at_their_keys() {
        check(&[
            (
                r#"[auth.jwt]
issuer = ""
audiences = []
algorithms = ["none", "RS256", "RS256"]
jwks_file = "jwks.json"
jwks_url = "https://idp.example/jwks"
leeway = "30"
"#,
                &[
                    "2:10: `issuer` must not be empty",
                    "3:13: list at least one audience",
                    "4:15: `none` is not supported (RS256/384/512, PS256/384/512, ES256/384, EdDSA, HS256/384/512; never none)",
                    "4:32: `RS256` is listed twice",
                    "6:12: give `jwks_file` or `jwks_url`, not both",
                    "7:10: duration `30` needs a unit (ms, s, m, h, d)",
                ],
            ),
            (
                "[auth.jwt]\nissuer = \"i\"\naudiences = [\"a\"]\nalgorithms = []\n",
                &["4:14: list at least one algorithm"],
            ),
            (
                "[auth.jwt]\nissuer = \"i\"\naudiences = [\"a\"]\nalgorithms = [\"ES256\"]\n",
                &["1:1: asymmetric algorithms need `jwks_file` or `jwks_url`"],
            ),
            (
                "[auth.jwt]\nissuer = \"i\"\naudiences = [\"a\"]\nalgorithms = [\"ES256\"]\njwks_url = \"http://idp.example/jwks\"\n",
                &["5:12: `jwks_url` must be an https:// URL"],
            ),
            (
                "[auth.jwt]\nissuer = \"i\"\naudiences = [\"a\"]\nalgorithms = [\"HS256\"]\n",
                &[
                    "4:14: HS* algorithms need `hs_secret_env` or `hs_secret_file` (secrets are never inline)",
                ],
            ),
            (
                "[auth.jwt]\nissuer = \"i\"\naudiences = [\"a\"]\nalgorithms = [\"HS256\"]\nhs_secret_env = \"ORDERGATE_TEST_VARIABLE_THAT_IS_NEVER_SET\"\n",
                &[
                    "4:14: HS* algorithms need `hs_secret_env` or `hs_secret_file` (secrets are never inline)",
                    "5:17: environment variable `ORDERGATE_TEST_VARIABLE_THAT_IS_NEVER_SET` is not set",
                ],
            ),
            (
                "[auth.jwt]\nissuer = \"i\"\naudiences = [\"a\"]\nalgorithms = [\"ES256\"]\njwks_file = \"jwks.json\"\n",
                &["5:13: /nonexistent-ordergate/jwks.json: No such file or directory (os error 2)"],
            ),
        ]);
    }

    #[test]
    fn bad_api_keys_are_reported_at_their_keys() {
        check(&[
            (
                &format!(
                    r#"[auth.api_keys]
header = "Authorization"
[[auth.api_keys.keys]]
id = "k1"
hash = "{HASH}"
roles = ["ghost"]
not_before = "2027-01-01"
not_after = 2026-01-01T00:00:00Z
[[auth.api_keys.keys]]
id = "k1"
hash = "{HASH}"
[[auth.api_keys.keys]]
id = ""
hash = "md5:abc"
not_after = "tomorrow"
"#
                ),
                &[
                    "2:10: `Authorization` cannot carry API keys",
                    "6:10: unknown role `ghost` (define it under [roles.ghost])",
                    "8:13: `not_after` must be later than `not_before`",
                    "10:6: API key id `k1` is empty or used twice",
                    "11:8: two keys have the same hash",
                    "13:6: API key id `` is empty or used twice",
                    "14:8: `hash` must start with `sha256:` (make keys with `ordergate apikey new`)",
                    "15:13: `tomorrow` is not an RFC 3339 date-time with a time zone (e.g. 2026-01-01T00:00:00Z) or a date",
                ],
            ),
            (
                &format!(
                    "[roles.clerk]\nscopes = [\"orders:read\"]\n[auth.api_keys]\n[[auth.api_keys.keys]]\nid = \"k1\"\nhash = \"{HASH}\"\nroles = [\"clerk\"]\nnot_after = 2027-04-01\n"
                ),
                &[],
            ),
            (
                "[auth.api_keys]\n[[auth.api_keys.keys]]\nid = \"k1\"\nhash = \"sha256:ABC\"\n",
                &["4:8: `hash` must be `sha256:` followed by 64 lowercase hex digits"],
            ),
        ]);
    }

    #[test]
    fn an_mtls_client_not_after_must_be_an_instant() {
        check(&[(
            "[[auth.mtls.clients]]\nsubject = \"CN=erp,O=Example\"\nnot_after = \"soon\"\n",
            &[
                "2:11: mTLS clients need [server.tls] client_auth = \"optional\" or \"required\"",
                "3:13: `soon` is not an RFC 3339 date-time with a time zone (e.g. 2026-01-01T00:00:00Z) or a date",
            ],
        )]);
    }

    #[test]
    fn bad_mtls_clients_are_reported_at_their_keys() {
        check(&[(
            r#"[[auth.mtls.clients]]
subject = "CN=erp,O=Example"
roles = ["ghost"]
[[auth.mtls.clients]]
subject = "O=Example"
[[auth.mtls.clients]]
subject = "CN=erp,O=Example"
[[auth.mtls.clients]]
subject = "not a subject"
"#,
            &[
                "2:11: mTLS clients need [server.tls] client_auth = \"optional\" or \"required\"",
                "3:10: unknown role `ghost` (define it under [roles.ghost])",
                "5:11: mTLS clients need [server.tls] client_auth = \"optional\" or \"required\"",
                "5:11: the subject needs a CN (it becomes the principal id)",
                "7:11: mTLS clients need [server.tls] client_auth = \"optional\" or \"required\"",
                "7:11: this subject is configured twice",
                "9:11: mTLS clients need [server.tls] client_auth = \"optional\" or \"required\"",
                "9:11: subject part `not a subject` is not `ATTRIBUTE=value`",
            ],
        )]);
    }
}
