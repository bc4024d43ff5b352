//! Keys, certificates and tokens made per test: a CA and server certificate, a partners' CA with
//! client certificates, an ES256 signing key and API keys.

use std::path::Path;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use ordergate::demo::pki::{Ca, Issued, JwtKey, jwks};
use serde_json::Value;

pub const ISSUER: &str = "https://idp.test/";

/// Keys and certificates of one test.
pub struct Keys {
    pub ca: Ca,
    pub server: Issued,
    pub partners: Ca,
    pub jd: Issued,
    pub stranger: Issued,
    pub es256: JwtKey,
    pub erp_key: String,
    pub logistics_key: String,
    pub expired_key: String,
    pub future_key: String,
}

impl Keys {
    pub fn new() -> Self {
        let ca = Ca::new("test CA").unwrap();
        let server = ca.server(&["127.0.0.1", "localhost"]).unwrap();
        let partners = Ca::new("test partners CA").unwrap();
        let jd = partners
            .client("jd-marketplace", Some("JD Partner"))
            .unwrap();
        let stranger = partners.client("unknown-partner", Some("Nobody")).unwrap();
        let key = || ordergate::stage::authn::api_key::generate().0;
        Self {
            ca,
            server,
            partners,
            jd,
            stranger,
            es256: JwtKey::generate(Algorithm::ES256, "test-es256").unwrap(),
            erp_key: key(),
            logistics_key: key(),
            expired_key: key(),
            future_key: key(),
        }
    }
}

/// The `sha256:` hash a policy stores for an API key.
pub fn hash(key: &str) -> String {
    use sha2::Digest;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(key.as_bytes()))
    )
}

pub fn token_with(key: &JwtKey, sub: &str, roles: &[&str], claims: &[(&str, Value)]) -> String {
    key.token(ISSUER, sub, roles, claims, Duration::from_secs(600))
        .unwrap()
}

pub fn write_files(dir: &Path, keys: &Keys) {
    std::fs::write(dir.join("server.crt"), &keys.server.cert_pem).unwrap();
    std::fs::write(dir.join("server.key"), &keys.server.key_pem).unwrap();
    std::fs::write(dir.join("ca.pem"), keys.ca.pem()).unwrap();
    std::fs::write(dir.join("partners-ca.pem"), keys.partners.pem()).unwrap();
    std::fs::write(dir.join("jwks.json"), jwks(&[&keys.es256])).unwrap();
}

/// The signature lines `key` (as `keyid`) writes for `request`, as header pairs.
pub fn signature_lines(
    key: &ordergate::stage::signature::verify::SigningKey,
    keyid: &str,
    request: ordergate::stage::signature::sign::ToSign<'_>,
) -> Vec<(String, String)> {
    ordergate::stage::signature::sign::sign(key, keyid, request)
        .unwrap()
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v))
        .collect()
}

/// [`signature_lines`] for `GET url`, `created` then, with `nonce`.
pub fn signed_get_lines(
    key: &ordergate::stage::signature::verify::SigningKey,
    keyid: &str,
    url: &str,
    created: i64,
    nonce: &str,
) -> Vec<(String, String)> {
    let uri: http::Uri = url.parse().unwrap();
    signature_lines(
        key,
        keyid,
        ordergate::stage::signature::sign::ToSign {
            method: &http::Method::GET,
            url: &uri,
            body: None,
            content_type: None,
            created,
            nonce,
        },
    )
}
