//! The two signature algorithms, from the crypto provider rustls already uses (aws-lc-rs):
//! `ed25519` (the gateway holds only the public key) and `hmac-sha256` (a shared secret of at
//! least 32 bytes, compared in constant time by `hmac::verify`). Signing is here too, for
//! `ordergate sign`, so both sides build the same base with the same code.

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};

use crate::vocab::cause::AuthFailure;

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the 32 key bytes follow.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// A credential's verification key.
#[derive(Clone)]
pub enum VerifyKey {
    /// The raw 32-byte Ed25519 public key.
    Ed25519([u8; 32]),
    /// The shared HMAC-SHA256 key (boxed: it is large).
    HmacSha256(Box<hmac::Key>),
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyKey::Ed25519(key) => write!(f, "Ed25519({})", hex::encode(key)),
            VerifyKey::HmacSha256(_) => f.write_str("HmacSha256(<redacted>)"),
        }
    }
}

impl VerifyKey {
    /// An Ed25519 public key from a PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    pub fn ed25519_from_pem(pem: &[u8]) -> Result<Self, String> {
        let spki = SubjectPublicKeyInfoDer::from_pem_slice(pem)
            .map_err(|_| "no PEM `PUBLIC KEY` found".to_owned())?;
        let der: &[u8] = spki.as_ref();
        match der.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
            Some(raw) => <[u8; 32]>::try_from(raw)
                .map(VerifyKey::Ed25519)
                .map_err(|_| "not an Ed25519 public key".to_owned()),
            None => Err("not an Ed25519 public key".to_owned()),
        }
    }

    /// An HMAC-SHA256 key of at least [`MIN_SECRET_BYTES`](crate::vocab::secret::MIN_SECRET_BYTES) bytes.
    pub fn hmac(secret: &[u8]) -> Result<Self, String> {
        crate::vocab::secret::long_enough(secret, "the HMAC secret")?;
        Ok(VerifyKey::HmacSha256(Box::new(hmac::Key::new(
            hmac::HMAC_SHA256,
            secret,
        ))))
    }

    /// The RFC 9421 algorithm name (`alg` parameter).
    pub fn alg_name(&self) -> &'static str {
        match self {
            VerifyKey::Ed25519(_) => "ed25519",
            VerifyKey::HmacSha256(_) => "hmac-sha256",
        }
    }

    /// Verifies `signature` over `base`.
    pub fn verify(&self, base: &[u8], signature: &[u8]) -> Result<(), AuthFailure> {
        let ok = match self {
            VerifyKey::Ed25519(key) => UnparsedPublicKey::new(&ED25519, key)
                .verify(base, signature)
                .is_ok(),
            VerifyKey::HmacSha256(key) => hmac::verify(key, base, signature).is_ok(),
        };
        if ok {
            Ok(())
        } else {
            Err(AuthFailure::SignatureInvalid)
        }
    }
}

/// A key that signs (for `ordergate sign`, tests and the demo).
pub enum SigningKey {
    /// An Ed25519 key pair.
    Ed25519(Ed25519KeyPair),
    /// A shared HMAC-SHA256 key (boxed: it is large).
    HmacSha256(Box<hmac::Key>),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SigningKey::Ed25519(_) => "Ed25519(<redacted>)",
            SigningKey::HmacSha256(_) => "HmacSha256(<redacted>)",
        })
    }
}

impl SigningKey {
    /// An Ed25519 key from a PEM `PRIVATE KEY` (PKCS#8 v1 or v2).
    pub fn ed25519_from_pem(pem: &[u8]) -> Result<Self, String> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem)
            .map_err(|_| "no PEM `PRIVATE KEY` (PKCS#8) found".to_owned())?;
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der())
            .map(SigningKey::Ed25519)
            .map_err(|e| format!("not an Ed25519 private key: {e}"))
    }

    /// An HMAC-SHA256 key of at least [`MIN_SECRET_BYTES`](crate::vocab::secret::MIN_SECRET_BYTES) bytes.
    pub fn hmac(secret: &[u8]) -> Result<Self, String> {
        crate::vocab::secret::long_enough(secret, "the HMAC secret")?;
        Ok(SigningKey::HmacSha256(Box::new(hmac::Key::new(
            hmac::HMAC_SHA256,
            secret,
        ))))
    }

    /// A new random Ed25519 key: the PKCS#8 private key PEM and the public key PEM.
    pub fn generate_ed25519() -> Result<(String, String), String> {
        let pair = Ed25519KeyPair::generate().map_err(|e| e.to_string())?;
        let pkcs8 = pair.to_pkcs8v1().map_err(|e| e.to_string())?;
        let mut spki = ED25519_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(pair.public_key().as_ref());
        Ok((pem("PRIVATE KEY", pkcs8.as_ref()), pem("PUBLIC KEY", &spki)))
    }

    /// The RFC 9421 algorithm name.
    pub fn alg_name(&self) -> &'static str {
        match self {
            SigningKey::Ed25519(_) => "ed25519",
            SigningKey::HmacSha256(_) => "hmac-sha256",
        }
    }

    /// An Ed25519 key from its 32-byte seed (RFC 8032 private key).
    pub fn ed25519_from_seed(seed: &[u8]) -> Result<Self, String> {
        Ed25519KeyPair::from_seed_unchecked(seed)
            .map(SigningKey::Ed25519)
            .map_err(|e| format!("not an Ed25519 seed: {e}"))
    }

    /// Signs `base`.
    pub fn sign(&self, base: &[u8]) -> Vec<u8> {
        match self {
            SigningKey::Ed25519(pair) => pair.sign(base).as_ref().to_vec(),
            SigningKey::HmacSha256(key) => hmac::sign(key, base).as_ref().to_vec(),
        }
    }
}

/// PEM text of `der` under `label`.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
