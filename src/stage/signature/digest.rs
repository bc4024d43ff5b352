//! RFC 9530 `Content-Digest`: the digest a signature covers, compared with the body bytes as
//! received (before stage 7 validates or rebuilds them). `sha-256` and `sha-512` are
//! understood; every one of them the field carries must match, and at least one must be there.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use sfv::{Dictionary, ListEntry, Parser};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::vocab::cause::AuthFailure;

/// The digests a signed `Content-Digest` promises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestCheck {
    sha256: Option<[u8; 32]>,
    sha512: Option<Vec<u8>>,
}

impl DigestCheck {
    /// Reads `Content-Digest`; `digest_mismatch` when absent, malformed, or naming no algorithm
    /// understood here.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, AuthFailure> {
        let mismatch = AuthFailure::DigestMismatch;
        let mut text = String::new();
        for value in headers.get_all("content-digest") {
            if !text.is_empty() {
                text.push_str(", ");
            }
            text.push_str(value.to_str().map_err(|_| mismatch)?);
        }
        let dictionary: Dictionary = Parser::new(&text).parse().map_err(|_| mismatch)?;
        let bytes = |name: &str| -> Result<Option<Vec<u8>>, AuthFailure> {
            match dictionary.get(name) {
                None => Ok(None),
                Some(ListEntry::Item(item)) => item
                    .bare_item
                    .as_byte_sequence()
                    .map(|b| Some(b.to_vec()))
                    .ok_or(mismatch),
                Some(ListEntry::InnerList(_)) => Err(mismatch),
            }
        };
        let sha256 = match bytes("sha-256")? {
            Some(b) => Some(<[u8; 32]>::try_from(b.as_slice()).map_err(|_| mismatch)?),
            None => None,
        };
        let sha512 = bytes("sha-512")?;
        if sha512.as_ref().is_some_and(|b| b.len() != 64) || (sha256.is_none() && sha512.is_none())
        {
            return Err(mismatch);
        }
        Ok(Self { sha256, sha512 })
    }

    /// True when every digest given matches `body`.
    pub fn matches(&self, body: &[u8]) -> bool {
        let sha256_ok = self
            .sha256
            .is_none_or(|d| bool::from(Sha256::digest(body).as_slice().ct_eq(&d)));
        let sha512_ok = self
            .sha512
            .as_ref()
            .is_none_or(|d| bool::from(Sha512::digest(body).as_slice().ct_eq(d)));
        sha256_ok && sha512_ok
    }
}

/// The algorithms `ordergate sign` can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlg {
    /// `sha-256`
    Sha256,
    /// `sha-512`
    Sha512,
}

/// A `Content-Digest` value for `body`.
pub fn header_value(body: &[u8], alg: DigestAlg) -> String {
    match alg {
        DigestAlg::Sha256 => format!("sha-256=:{}:", STANDARD.encode(Sha256::digest(body))),
        DigestAlg::Sha512 => format!("sha-512=:{}:", STANDARD.encode(Sha512::digest(body))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("content-digest", value.parse().unwrap());
        h
    }

    /// RFC 9530 §B.1 and RFC 9421 §B.2: `{"hello": "world"}`.
    #[test]
    fn rfc_examples_match() {
        let body = br#"{"hello": "world"}"#;
        assert_eq!(
            header_value(body, DigestAlg::Sha256),
            "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
        );
        let rfc_512 = "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:";
        assert_eq!(header_value(body, DigestAlg::Sha512), rfc_512);
        assert!(
            DigestCheck::from_headers(&headers(rfc_512))
                .unwrap()
                .matches(body)
        );
        let both = format!("{}, {rfc_512}", header_value(body, DigestAlg::Sha256));
        let check = DigestCheck::from_headers(&headers(&both)).unwrap();
        assert!(check.matches(body));
        assert!(!check.matches(br#"{"hello": "World"}"#));
    }

    #[test]
    fn every_digest_given_must_match() {
        let body = b"call before noon";
        let wrong = header_value(b"other", DigestAlg::Sha512);
        let mixed = format!("{}, {wrong}", header_value(body, DigestAlg::Sha256));
        assert!(
            !DigestCheck::from_headers(&headers(&mixed))
                .unwrap()
                .matches(body)
        );
    }

    #[test]
    fn unusable_fields_are_mismatches() {
        for value in [
            "md5=:AAAA:",
            "sha-256=:AAAA:",
            "sha-256=abc",
            "sha-256",
            "not a dictionary ((",
            "sha-512=:AAAA:",
        ] {
            assert_eq!(
                DigestCheck::from_headers(&headers(value)),
                Err(AuthFailure::DigestMismatch),
                "{value}"
            );
        }
        assert_eq!(
            DigestCheck::from_headers(&HeaderMap::new()),
            Err(AuthFailure::DigestMismatch)
        );
    }
}
