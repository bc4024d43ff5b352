//! `--as WHO`: the caller `explain` speaks about, as the policy's own principal. An API key id
//! or an mTLS client id names a configured principal (the one authentication would produce);
//! `jwt:roles=r1,r2;scopes=a,b;claim=customer_id=C1` is turned into token claims and then into a
//! principal by the same code that reads verified tokens ([`JwtSettings::principal`]).

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::policy::Policy;
use crate::stage::authn::Principal;
use crate::stage::authn::jwt::JwtSettings;

/// The subject id a synthetic JWT caller gets (`sub`).
const SYNTHETIC_SUB: &str = "explain";

/// A parsed `--as` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// An API key id or an mTLS client id (its CN).
    Id(String),
    /// `key:ID`: only an API key.
    Key(String),
    /// `mtls:ID`: only an mTLS client.
    Client(String),
    /// A token holder with these roles, scopes and claims.
    Jwt {
        /// Role names (`roles_claim`).
        roles: Vec<String>,
        /// Scopes (`scope_claim`).
        scopes: Vec<String>,
        /// Other claims, as text.
        claims: Vec<(String, String)>,
    },
}

/// Validity window of a credential, seconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Validity {
    /// `not_before`.
    pub not_before: Option<i64>,
    /// `not_after`.
    pub not_after: Option<i64>,
}

/// A caller resolved against one policy.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `key:ID`, `mtls:ID`, `role:NAME` or `jwt:…`: stable across policies, for `diff`.
    pub label: String,
    /// The principal the gateway would see.
    pub principal: Arc<Principal>,
    /// For a configured credential, its validity window.
    pub credential: Option<Validity>,
    /// The claim values were made up (a role stands for any holder): shown as `<own>`.
    pub placeholder_claims: bool,
}

fn list(value: &str, what: &str) -> Result<Vec<String>, String> {
    let items: Vec<String> = value.split(',').map(str::to_owned).collect();
    if items
        .iter()
        .any(|i| i.is_empty() || i.contains(char::is_whitespace))
    {
        return Err(format!(
            "`{what}=` wants a comma-separated list without empty items or spaces"
        ));
    }
    Ok(items)
}

impl Who {
    /// Parses `--as`: an id (`key:ID` or `mtls:ID` to say which kind, as `explain` and `diff`
    /// print them), or `jwt:` followed by `;`-separated `roles=…`, `scopes=…` and
    /// `claim=NAME=VALUE` parts (each of `roles` and `scopes` at most once).
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some(spec) = text.strip_prefix("jwt:") else {
            if text.is_empty() || text.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(format!(
                    "`--as {text}`: give an API key id, an mTLS client id or `jwt:roles=r1;scopes=a,b;claim=name=value`"
                ));
            }
            if let Some(id) = text.strip_prefix("key:") {
                return Ok(Who::Key(id.to_owned()));
            }
            if let Some(id) = text.strip_prefix("mtls:") {
                return Ok(Who::Client(id.to_owned()));
            }
            return Ok(Who::Id(text.to_owned()));
        };
        let (mut roles, mut scopes, mut claims) = (None, None, Vec::new());
        if !spec.is_empty() {
            for part in spec.split(';') {
                let Some((name, value)) = part.split_once('=') else {
                    return Err(format!("`{part}` is not `name=value` (in `--as {text}`)"));
                };
                match name {
                    "roles" if roles.is_none() => roles = Some(list(value, "roles")?),
                    "scopes" if scopes.is_none() => scopes = Some(list(value, "scopes")?),
                    "roles" | "scopes" => return Err(format!("`{name}=` is given twice")),
                    "claim" => {
                        let Some((claim, v)) = value.split_once('=') else {
                            return Err(format!("`claim={value}` is not `claim=NAME=VALUE`"));
                        };
                        if claim.is_empty() || v.is_empty() {
                            return Err(format!(
                                "`claim={value}`: name and value must not be empty"
                            ));
                        }
                        if claims.iter().any(|(c, _): &(String, String)| c == claim) {
                            return Err(format!("claim `{claim}` is given twice"));
                        }
                        claims.push((claim.to_owned(), v.to_owned()));
                    }
                    other => {
                        return Err(format!(
                            "unknown part `{other}=` in `--as`: use roles=, scopes= and claim="
                        ));
                    }
                }
            }
        }
        Ok(Who::Jwt {
            roles: roles.unwrap_or_default(),
            scopes: scopes.unwrap_or_default(),
            claims,
        })
    }

    /// The caller this stands for in `policy`.
    pub fn resolve(&self, policy: &Policy) -> Result<Caller, String> {
        let find = |callers: Vec<Caller>, id: &str| {
            callers.into_iter().find(|c| c.principal.id.as_ref() == id)
        };
        match self {
            Who::Key(id) => find(configured_keys(policy), id)
                .ok_or_else(|| format!("no API key `{id}` in {}", file_name(policy))),
            Who::Client(id) => find(configured_clients(policy), id)
                .ok_or_else(|| format!("no mTLS client `{id}` in {}", file_name(policy))),
            Who::Id(id) => {
                let key = configured_keys(policy)
                    .into_iter()
                    .find(|c| c.principal.id.as_ref() == id);
                let client = configured_clients(policy)
                    .into_iter()
                    .find(|c| c.principal.id.as_ref() == id);
                match (key, client) {
                    (Some(_), Some(_)) => Err(format!(
                        "`{id}` is both an API key id and an mTLS client id: say `key:{id}` or `mtls:{id}`"
                    )),
                    (Some(c), None) | (None, Some(c)) => Ok(c),
                    (None, None) => Err(format!(
                        "no API key or mTLS client `{id}` in {}",
                        file_name(policy)
                    )),
                }
            }
            Who::Jwt {
                roles,
                scopes,
                claims,
            } => {
                let settings = policy.auth.jwt.as_ref().ok_or_else(|| {
                    format!(
                        "{} accepts no JWTs ([auth.jwt] is absent)",
                        file_name(policy)
                    )
                })?;
                if let Some(unknown) = roles.iter().find(|r| !policy.roles.contains_key(*r)) {
                    return Err(format!("unknown role `{unknown}` (not under [roles])"));
                }
                let mut parts = Vec::new();
                if !roles.is_empty() {
                    parts.push(format!("roles={}", roles.join(",")));
                }
                if !scopes.is_empty() {
                    parts.push(format!("scopes={}", scopes.join(",")));
                }
                parts.extend(claims.iter().map(|(c, v)| format!("claim={c}={v}")));
                let label = format!("jwt:{}", parts.join(";"));
                let claims = claims
                    .iter()
                    .map(|(c, v)| (c.clone(), Value::String(v.clone())))
                    .collect();
                let principal = jwt_principal(settings, policy, roles, scopes, claims)?;
                Ok(Caller {
                    label,
                    principal: Arc::new(principal),
                    credential: None,
                    placeholder_claims: false,
                })
            }
        }
    }
}

/// The policy's file name (never its directory: output stays the same wherever it lives).
pub fn file_name(policy: &Policy) -> String {
    policy.source.file_name().map_or_else(
        || "the policy".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn jwt_principal(
    settings: &JwtSettings,
    policy: &Policy,
    roles: &[String],
    scopes: &[String],
    extra: Map<String, Value>,
) -> Result<Principal, String> {
    let mut claims = extra;
    claims.insert("sub".into(), Value::String(SYNTHETIC_SUB.into()));
    claims.insert(
        settings.scope_claim.clone(),
        Value::String(scopes.join(" ")),
    );
    claims.insert(
        settings.roles_claim.clone(),
        Value::Array(roles.iter().cloned().map(Value::String).collect()),
    );
    settings
        .principal(claims, &policy.roles, &policy.scopes)
        .map_err(|e| format!("the synthetic token is refused: {e}"))
}

/// Every API key's principal, by id.
pub fn configured_keys(policy: &Policy) -> Vec<Caller> {
    policy
        .auth
        .api_keys
        .iter()
        .flat_map(|t| t.entries())
        .map(|e| Caller {
            label: format!("key:{}", e.principal.id),
            principal: e.principal.clone(),
            credential: Some(Validity {
                not_before: e.not_before,
                not_after: e.not_after,
            }),
            placeholder_claims: false,
        })
        .collect()
}

/// Every mTLS client's principal, by id.
pub fn configured_clients(policy: &Policy) -> Vec<Caller> {
    let mut clients: Vec<Caller> = policy
        .auth
        .mtls
        .iter()
        .map(|c| Caller {
            label: format!("mtls:{}", c.principal.id),
            principal: c.principal.clone(),
            credential: Some(Validity::default()),
            placeholder_claims: false,
        })
        .collect();
    clients.sort_by(|a, b| a.label.cmp(&b.label));
    clients
}

/// A token holder of each role (when the policy accepts JWTs), holding every claim an owner
/// binding reads, set to a placeholder: what any holder of the role may do with its own data.
pub fn role_holders(policy: &Policy) -> Vec<Caller> {
    let Some(settings) = &policy.auth.jwt else {
        return Vec::new();
    };
    let mut names: Vec<&String> = policy.roles.keys().collect();
    names.sort();
    let owner_claims: Map<String, Value> = policy
        .routes
        .iter()
        .filter_map(|r| r.access.owner.as_ref())
        .map(|o| (o.claim.to_string(), Value::String(PLACEHOLDER.into())))
        .collect();
    names
        .into_iter()
        .filter_map(|name| {
            let principal = jwt_principal(
                settings,
                policy,
                std::slice::from_ref(name),
                &[],
                owner_claims.clone(),
            )
            .ok()?;
            Some(Caller {
                label: format!("role:{name}"),
                principal: Arc::new(principal),
                credential: None,
                placeholder_claims: true,
            })
        })
        .collect()
}

/// The claim value a role holder is given.
pub const PLACEHOLDER: &str = "<own>";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_is_parsed_strictly() {
        assert_eq!(Who::parse("erp-sync"), Ok(Who::Id("erp-sync".into())));
        assert_eq!(Who::parse("key:erp-sync"), Ok(Who::Key("erp-sync".into())));
        assert_eq!(
            Who::parse("mtls:jd-marketplace"),
            Ok(Who::Client("jd-marketplace".into()))
        );
        assert_eq!(
            Who::parse("jwt:roles=customer,erp;scopes=a:b;claim=customer_id=C1"),
            Ok(Who::Jwt {
                roles: vec!["customer".into(), "erp".into()],
                scopes: vec!["a:b".into()],
                claims: vec![("customer_id".into(), "C1".into())],
            })
        );
        assert_eq!(
            Who::parse("jwt:"),
            Ok(Who::Jwt {
                roles: vec![],
                scopes: vec![],
                claims: vec![]
            })
        );
        for bad in [
            "",
            "a b",
            "jwt:roles",
            "jwt:role=customer",
            "jwt:roles=a;roles=b",
            "jwt:roles=a,,b",
            "jwt:scopes=",
            "jwt:claim=customer_id",
            "jwt:claim==C1",
            "jwt:claim=customer_id=",
            "jwt:claim=a=1;claim=a=2",
            "jwt:roles=a;",
        ] {
            assert!(Who::parse(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics_and_round_trips_ids(text in "(jwt:)?[a-z=;,:_ C0-9-]{0,40}") {
            if let Ok(Who::Id(id)) = Who::parse(&text) {
                proptest::prop_assert_eq!(id, text);
            }
        }
    }
}
