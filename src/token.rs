//! `ordergate token`: mints a JWT with a local key, for tests, demos and the README. The
//! algorithm follows the key (ES256/ES384/EdDSA/RS256) unless `--alg` says otherwise.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value};

/// What goes into a token.
#[derive(Debug, Clone, Default)]
pub struct TokenSpec {
    /// `sub`.
    pub sub: String,
    /// `iss`, if any.
    pub iss: Option<String>,
    /// `aud`, if any.
    pub aud: Option<String>,
    /// `kid` in the header, if any.
    pub kid: Option<String>,
    /// The algorithm; by default the one the key implies.
    pub alg: Option<Algorithm>,
    /// `scope`, space-separated.
    pub scope: Option<String>,
    /// `roles`.
    pub roles: Vec<String>,
    /// Further claims, as given.
    pub claims: Vec<(String, Value)>,
    /// Lifetime: `exp` is now plus this.
    pub ttl: Duration,
}

/// The signing algorithm a PEM private key implies.
pub fn algorithm_of(pem: &[u8]) -> Result<Algorithm, String> {
    let text = std::str::from_utf8(pem).map_err(|_| "the key is not PEM text")?;
    let key =
        rcgen::KeyPair::from_pem(text).map_err(|e| format!("cannot read the private key: {e}"))?;
    let alg = key.algorithm();
    if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
        Ok(Algorithm::ES256)
    } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
        Ok(Algorithm::ES384)
    } else if alg == &rcgen::PKCS_ED25519 {
        Ok(Algorithm::EdDSA)
    } else {
        Ok(Algorithm::RS256)
    }
}

/// Signs a token with a PEM private key (or, for HS*, a secret's bytes).
pub fn mint(spec: &TokenSpec, key_material: &[u8]) -> Result<String, String> {
    let alg = match spec.alg {
        Some(a) => a,
        None => algorithm_of(key_material)?,
    };
    let key = match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            EncodingKey::from_secret(key_material)
        }
        Algorithm::ES256 | Algorithm::ES384 => {
            EncodingKey::from_ec_pem(key_material).map_err(|e| e.to_string())?
        }
        Algorithm::EdDSA => EncodingKey::from_ed_pem(key_material).map_err(|e| e.to_string())?,
        _ => EncodingKey::from_rsa_pem(key_material).map_err(|e| e.to_string())?,
    };
    let mut header = Header::new(alg);
    header.kid = spec.kid.clone();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut claims = Map::new();
    claims.insert("sub".into(), Value::from(spec.sub.clone()));
    if let Some(iss) = &spec.iss {
        claims.insert("iss".into(), Value::from(iss.clone()));
    }
    if let Some(aud) = &spec.aud {
        claims.insert("aud".into(), Value::from(aud.clone()));
    }
    claims.insert("iat".into(), Value::from(now));
    claims.insert("nbf".into(), Value::from(now));
    claims.insert("exp".into(), Value::from(now + spec.ttl.as_secs()));
    if let Some(scope) = &spec.scope {
        claims.insert("scope".into(), Value::from(scope.clone()));
    }
    if !spec.roles.is_empty() {
        claims.insert("roles".into(), Value::from(spec.roles.clone()));
    }
    for (k, v) in &spec.claims {
        claims.insert(k.clone(), v.clone());
    }
    jsonwebtoken::encode(&header, &claims, &key).map_err(|e| e.to_string())
}

/// Parses `--claim k=v`: the value as JSON when it is JSON, else as a string.
pub fn parse_claim(text: &str) -> Result<(String, Value), String> {
    let (k, v) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not key=value"))?;
    if k.is_empty() {
        return Err(format!("`{text}` has an empty key"));
    }
    let value = serde_json::from_str(v).unwrap_or_else(|_| Value::from(v));
    Ok((k.to_owned(), value))
}
