//! Development keys and certificates made on the spot (rcgen, aws-lc): a CA, server and client
//! certificates, and JWT signing keys with their JWKs. Used by `ordergate demo` and by the tests.
//! Nothing here is for production.

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// A certificate authority.
pub struct Ca {
    key: KeyPair,
    params: CertificateParams,
    pem: String,
}

/// A PEM certificate and its PEM private key.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
}

fn error(e: rcgen::Error) -> String {
    e.to_string()
}

impl Ca {
    /// A new self-signed CA.
    pub fn new(common_name: &str) -> Result<Self, String> {
        let key = KeyPair::generate().map_err(error)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(error)?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).map_err(error)?;
        Ok(Self {
            pem: cert.pem(),
            key,
            params,
        })
    }

    /// The CA certificate (PEM).
    pub fn pem(&self) -> &str {
        &self.pem
    }

    fn issue(&self, params: CertificateParams) -> Result<Issued, String> {
        let key = KeyPair::generate().map_err(error)?;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).map_err(error)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A server certificate for these DNS names or IP addresses.
    pub fn server(&self, names: &[&str]) -> Result<Issued, String> {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .map_err(error)?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("localhost"),
        );
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    /// A client certificate with this subject (`CN`, and `O` when given).
    pub fn client(&self, common_name: &str, organisation: Option<&str>) -> Result<Issued, String> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(error)?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        if let Some(o) = organisation {
            params.distinguished_name.push(DnType::OrganizationName, o);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }
}

/// A JWT signing key and its public JWK.
#[derive(Debug, Clone)]
pub struct JwtKey {
    /// The algorithm the key signs with.
    pub alg: Algorithm,
    /// The key id, in the JWK and token headers.
    pub kid: String,
    /// The private key, PEM.
    pub private_pem: String,
    /// The public key as a JWK.
    pub jwk: serde_json::Value,
}

impl JwtKey {
    /// A new key for `alg` (RS*/PS* use 2048-bit RSA).
    pub fn generate(alg: Algorithm, kid: &str) -> Result<Self, String> {
        use Algorithm::*;
        let pair = match alg {
            ES256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            ES384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
            EdDSA => KeyPair::generate_for(&rcgen::PKCS_ED25519),
            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            }
            _ => return Err("HMAC keys are secrets, not key pairs".into()),
        }
        .map_err(error)?;
        let private_pem = pair.serialize_pem();
        if alg == EdDSA {
            // jsonwebtoken derives Ed25519 JWKs only from PKCS#8 v1 keys; rcgen writes v2, which
            // carries the raw public key we need anyway.
            use base64::Engine as _;
            let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key_raw());
            let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "EdDSA", "kid": kid});
            return Ok(Self {
                alg,
                kid: kid.to_owned(),
                private_pem,
                jwk,
            });
        }
        let encoding = match alg {
            ES256 | ES384 => EncodingKey::from_ec_pem(private_pem.as_bytes()),
            EdDSA => EncodingKey::from_ed_pem(private_pem.as_bytes()),
            _ => EncodingKey::from_rsa_pem(private_pem.as_bytes()),
        }
        .map_err(|e| e.to_string())?;
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).map_err(|e| e.to_string())?;
        jwk.common.key_id = Some(kid.to_owned());
        let jwk = serde_json::to_value(&jwk).map_err(|e| e.to_string())?;
        Ok(Self {
            alg,
            kid: kid.to_owned(),
            private_pem,
            jwk,
        })
    }
}

impl JwtKey {
    /// A token for audience `ordergate` signed with this key (`kid` set): `sub`, `iss`, the
    /// `roles` claim, extra claims, and a lifetime.
    pub fn token(
        &self,
        issuer: &str,
        sub: &str,
        roles: &[&str],
        claims: &[(&str, serde_json::Value)],
        ttl: std::time::Duration,
    ) -> Result<String, String> {
        let spec = crate::token::TokenSpec {
            sub: sub.to_owned(),
            iss: Some(issuer.to_owned()),
            aud: Some("ordergate".to_owned()),
            kid: Some(self.kid.clone()),
            alg: Some(self.alg),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            claims: claims
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            ttl,
            ..Default::default()
        };
        crate::token::mint(&spec, self.private_pem.as_bytes())
    }
}

/// A JWKS document holding these keys' public halves.
pub fn jwks(keys: &[&JwtKey]) -> String {
    serde_json::json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
}
