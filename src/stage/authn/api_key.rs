//! API keys, sent in one header (never the query string). The policy stores only
//! `sha256:` + hex of SHA-256 of the whole key; a presented key is hashed and looked up by its
//! digest, then the digests are compared in constant time. Looking up a SHA-256 digest reveals
//! nothing useful about a key through timing (finding a key from its digest is a preimage attack).

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderName;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::principal::Principal;
use crate::vocab::cause::AuthFailure;

/// The recognisable prefix of keys made by `ordergate apikey new`.
pub const KEY_PREFIX: &str = "ogk_";

/// One configured key.
#[derive(Debug, Clone)]
pub struct ApiKeyEntry {
    /// SHA-256 of the key; the key itself is never kept.
    pub digest: [u8; 32],
    /// Seconds since the epoch.
    pub not_before: Option<i64>,
    /// Seconds since the epoch.
    pub not_after: Option<i64>,
    /// Who the key authenticates as.
    pub principal: Arc<Principal>,
}

/// `[auth.api_keys]`, compiled.
#[derive(Debug, Clone)]
pub struct ApiKeyTable {
    /// The request header that carries the key.
    pub header: HeaderName,
    keys: HashMap<[u8; 32], ApiKeyEntry>,
}

impl ApiKeyTable {
    /// A table of `entries`, read from `header`.
    pub fn new(header: HeaderName, entries: Vec<ApiKeyEntry>) -> Self {
        Self {
            header,
            keys: entries.into_iter().map(|e| (e.digest, e)).collect(),
        }
    }

    /// How many keys are configured.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Every configured key, ordered by principal id (for `ordergate explain` and `diff`).
    pub fn entries(&self) -> Vec<&ApiKeyEntry> {
        let mut entries: Vec<&ApiKeyEntry> = self.keys.values().collect();
        entries.sort_by(|a, b| a.principal.id.cmp(&b.principal.id));
        entries
    }

    /// Checks a presented key at `now` (seconds since the epoch); `Err` holds the audit cause.
    pub fn verify(&self, presented: &[u8], now: i64) -> Result<Arc<Principal>, AuthFailure> {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        let entry = self.keys.get(&digest).ok_or(AuthFailure::UnknownApiKey)?;
        if !bool::from(entry.digest.ct_eq(&digest)) {
            return Err(AuthFailure::UnknownApiKey);
        }
        if entry.not_before.is_some_and(|t| now < t) {
            return Err(AuthFailure::ApiKeyNotYetValid);
        }
        if entry.not_after.is_some_and(|t| now >= t) {
            return Err(AuthFailure::ApiKeyExpired);
        }
        Ok(entry.principal.clone())
    }
}

/// Parses a policy `hash` (`sha256:` + 64 lowercase hex digits).
pub fn parse_hash(text: &str) -> Result<[u8; 32], String> {
    let hex_part = text
        .strip_prefix("sha256:")
        .ok_or("`hash` must start with `sha256:` (make keys with `ordergate apikey new`)")?;
    if hex_part.len() != 64
        || !hex_part
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err("`hash` must be `sha256:` followed by 64 lowercase hex digits".into());
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// A new random key and its policy hash.
pub fn generate() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())));
    (key, hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::authn::principal::Claims;
    use crate::vocab::principal_kind::PrincipalKind;
    use crate::vocab::scopes::ScopeSet;

    fn table(not_before: Option<i64>, not_after: Option<i64>) -> (ApiKeyTable, String) {
        let (key, hash) = generate();
        let principal = Arc::new(Principal {
            id: Arc::from("erp-sync"),
            kind: PrincipalKind::ApiKey,
            tenant: None,
            scopes: ScopeSet::default(),
            scope_header: http::HeaderValue::from_static(""),
            claims: Claims::Attributes(Default::default()),
            expires_at: None,
            allow_ips: Vec::new(),
        });
        let entry = ApiKeyEntry {
            digest: parse_hash(&hash).unwrap(),
            not_before,
            not_after,
            principal,
        };
        (
            ApiKeyTable::new(HeaderName::from_static("x-api-key"), vec![entry]),
            key,
        )
    }

    #[test]
    fn keys_verify_within_their_window() {
        let (t, key) = table(Some(100), Some(200));
        assert!(key.starts_with(KEY_PREFIX) && key.len() == 47);
        assert_eq!(
            t.verify(key.as_bytes(), 150).unwrap().id.as_ref(),
            "erp-sync"
        );
        assert_eq!(
            t.verify(key.as_bytes(), 99).unwrap_err(),
            AuthFailure::ApiKeyNotYetValid
        );
        assert_eq!(
            t.verify(key.as_bytes(), 200).unwrap_err(),
            AuthFailure::ApiKeyExpired
        );
        assert_eq!(
            t.verify(b"ogk_guess", 150).unwrap_err(),
            AuthFailure::UnknownApiKey
        );
        let mut almost = key.clone().into_bytes();
        almost[10] ^= 1;
        assert_eq!(
            t.verify(&almost, 150).unwrap_err(),
            AuthFailure::UnknownApiKey
        );
    }

    #[test]
    fn hashes_are_strict() {
        assert!(
            parse_hash("sha256:2f3c0e1f6a4b8f8f7b3a6c0d9e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b")
                .is_ok()
        );
        assert!(
            parse_hash("2f3c0e1f6a4b8f8f7b3a6c0d9e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b").is_err()
        );
        assert!(
            parse_hash("sha256:2F3C0E1F6A4B8F8F7B3A6C0D9E1F2A3B4C5D6E7F8091A2B3C4D5E6F708192A3B")
                .is_err()
        );
        assert!(parse_hash("sha256:abc").is_err());
        assert!(parse_hash("md5:abc").is_err());
    }
}
