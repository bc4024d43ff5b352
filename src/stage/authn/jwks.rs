//! The JWT verification keys: a JWKS from a file or an https URL, refreshed in the background
//! every `jwks_refresh`, and at most once per 30 s when a token names an unknown `kid`. A failed
//! refresh keeps the last good set (logged and counted). Symmetric (`oct`) keys in a JWKS are
//! refused: HMAC secrets come only from the environment or a file, so a public key can never be
//! used as an HMAC secret.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use aws_lc_rs::signature::{self as lc, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::{BodyExt, Empty, Limited};
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};

/// The smallest gap between two refreshes forced by unknown `kid`s.
pub const FORCED_REFRESH_GAP: Duration = Duration::from_secs(30);
const MAX_JWKS_BYTES: usize = 1 << 20;

/// What a key can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    /// RSA (RS* and PS*).
    Rsa,
    /// ECDSA on P-256 (ES256).
    EcP256,
    /// ECDSA on P-384 (ES384).
    EcP384,
    /// Ed25519 (EdDSA).
    Ed25519,
}

impl KeyFamily {
    /// True when a token signed with `alg` may be checked with a key of this family.
    pub fn accepts(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        matches!(
            (self, alg),
            (
                KeyFamily::Rsa,
                RS256 | RS384 | RS512 | PS256 | PS384 | PS512
            ) | (KeyFamily::EcP256, ES256)
                | (KeyFamily::EcP384, ES384)
                | (KeyFamily::Ed25519, EdDSA)
        )
    }
}

/// One verification key.
#[derive(Clone)]
pub struct VerificationKey {
    /// The JWK's `kid`, matched against the token header's.
    pub kid: Option<String>,
    /// Which algorithms the key can verify.
    pub family: KeyFamily,
    /// The JWK's own `alg`, which then must match the token's exactly.
    pub alg: Option<Algorithm>,
    /// The key material, parsed once.
    pub key: PublicKey,
}

/// A public key parsed when its key set is read, once per algorithm it can verify: a token check
/// is then the signature operation alone. Parsing per token (what `jsonwebtoken::crypto::verify`
/// does) rebuilt the RSA key and its Montgomery context, or decoded the curve point, every time.
#[derive(Clone)]
pub struct PublicKey(Arc<[(Algorithm, ParsedPublicKey)]>);

impl PublicKey {
    /// Parses the JWK's key for every algorithm of its family. The algorithms' key-size ranges
    /// (RSA: 2048–8192 bits) are enforced at verification, as before.
    fn from_jwk(jwk: &Jwk, family: KeyFamily) -> Result<Self, String> {
        let bytes = |field: &str, b64: &str| {
            URL_SAFE_NO_PAD
                .decode(b64)
                .map_err(|_| format!("`{field}` is not base64url"))
        };
        let rejected = |e: aws_lc_rs::error::KeyRejected| format!("not a valid public key ({e})");
        let parsed: Vec<(Algorithm, ParsedPublicKey)> = match (&jwk.algorithm, family) {
            (AlgorithmParameters::RSA(p), KeyFamily::Rsa) => {
                let components = RsaPublicKeyComponents {
                    n: bytes("n", &p.n)?,
                    e: bytes("e", &p.e)?,
                };
                let rsa: [(Algorithm, &'static lc::RsaParameters); 6] = [
                    (Algorithm::RS256, &lc::RSA_PKCS1_2048_8192_SHA256),
                    (Algorithm::RS384, &lc::RSA_PKCS1_2048_8192_SHA384),
                    (Algorithm::RS512, &lc::RSA_PKCS1_2048_8192_SHA512),
                    (Algorithm::PS256, &lc::RSA_PSS_2048_8192_SHA256),
                    (Algorithm::PS384, &lc::RSA_PSS_2048_8192_SHA384),
                    (Algorithm::PS512, &lc::RSA_PSS_2048_8192_SHA512),
                ];
                rsa.into_iter()
                    .map(|(alg, params)| {
                        components
                            .to_parsed_public_key(params)
                            .map(|k| (alg, k))
                            .map_err(rejected)
                    })
                    .collect::<Result<_, _>>()?
            }
            (AlgorithmParameters::EllipticCurve(p), KeyFamily::EcP256 | KeyFamily::EcP384) => {
                let mut point = vec![0x04];
                point.extend(bytes("x", &p.x)?);
                point.extend(bytes("y", &p.y)?);
                let (alg, verification): (_, &'static dyn lc::VerificationAlgorithm) =
                    if family == KeyFamily::EcP256 {
                        (Algorithm::ES256, &lc::ECDSA_P256_SHA256_FIXED)
                    } else {
                        (Algorithm::ES384, &lc::ECDSA_P384_SHA384_FIXED)
                    };
                vec![(
                    alg,
                    ParsedPublicKey::new(verification, point).map_err(rejected)?,
                )]
            }
            (AlgorithmParameters::OctetKeyPair(p), KeyFamily::Ed25519) => vec![(
                Algorithm::EdDSA,
                ParsedPublicKey::new(&lc::ED25519, bytes("x", &p.x)?).map_err(rejected)?,
            )],
            _ => return Err("unsupported key type".into()),
        };
        Ok(Self(parsed.into()))
    }

    /// True when `signature` (base64url, as in the token) is `alg`'s signature of `message` by
    /// this key. An algorithm outside the key's family is never true.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &str) -> bool {
        let Some((_, key)) = self.0.iter().find(|(a, _)| *a == alg) else {
            return false;
        };
        URL_SAFE_NO_PAD
            .decode(signature)
            .is_ok_and(|signature| key.verify_sig(message, &signature).is_ok())
    }
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .finish()
    }
}

/// A parsed key set.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    /// The keys, in the order of the JWKS document.
    pub keys: Vec<VerificationKey>,
}

/// The result of looking a token's key up.
pub enum Selection<'a> {
    /// The key to verify with.
    Found(&'a VerificationKey),
    /// No key has the token's `kid`, or, without one, no single key fits.
    UnknownKid,
    /// The key found cannot verify the token's `alg`.
    Mismatch,
}

impl KeySet {
    /// Parses a JWKS document. Keys for encryption are skipped; `oct` keys and unsupported curves
    /// are errors.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let set: JwkSet =
            serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS document: {e}"))?;
        let mut keys = Vec::new();
        for (i, jwk) in set.keys.iter().enumerate() {
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                continue;
            }
            let family = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => KeyFamily::Rsa,
                AlgorithmParameters::EllipticCurve(p) => match p.curve {
                    EllipticCurve::P256 => KeyFamily::EcP256,
                    EllipticCurve::P384 => KeyFamily::EcP384,
                    _ => return Err(format!("key {i}: unsupported elliptic curve")),
                },
                AlgorithmParameters::OctetKeyPair(p) => match p.curve {
                    EllipticCurve::Ed25519 => KeyFamily::Ed25519,
                    _ => return Err(format!("key {i}: unsupported curve (only Ed25519)")),
                },
                AlgorithmParameters::OctetKey(_) => {
                    return Err(format!(
                        "key {i}: symmetric (`oct`) keys are not accepted in a JWKS; use hs_secret_env or hs_secret_file"
                    ));
                }
                _ => return Err(format!("key {i}: unsupported key type")),
            };
            let alg = match jwk.common.key_algorithm {
                Some(a) => Some(
                    a.to_string()
                        .parse::<Algorithm>()
                        .map_err(|_| format!("key {i}: unsupported `alg`"))?,
                ),
                None => None,
            };
            if let Some(a) = alg
                && !family.accepts(a)
            {
                return Err(format!("key {i}: `alg` {a:?} does not fit the key type"));
            }
            let key = PublicKey::from_jwk(jwk, family).map_err(|e| format!("key {i}: {e}"))?;
            keys.push(VerificationKey {
                kid: jwk.common.key_id.clone(),
                family,
                alg,
                key,
            });
        }
        Ok(Self { keys })
    }

    /// The key for a token with this `kid` and `alg`. Without a `kid`, the only key that fits.
    pub fn select(&self, kid: Option<&str>, alg: Algorithm) -> Selection<'_> {
        let candidate = match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.family.accepts(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            }
        };
        match candidate {
            None => Selection::UnknownKid,
            Some(k) if !k.family.accepts(alg) || k.alg.is_some_and(|a| a != alg) => {
                Selection::Mismatch
            }
            Some(k) => Selection::Found(k),
        }
    }
}

/// Where the key set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A local JWKS file, re-read on each refresh.
    File(PathBuf),
    /// A JWKS URL, fetched over HTTPS and refreshed.
    Url {
        /// Where to fetch the key set.
        url: http::Uri,
        /// Extra trust anchors for that server, if not the system roots.
        ca: Option<Vec<rustls_pki_types::CertificateDer<'static>>>,
    },
}

type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Empty<bytes::Bytes>,
>;

/// The live key set and its refresh state.
pub struct JwksStore {
    set: ArcSwap<KeySet>,
    source: JwksSource,
    client: Option<HttpsClient>,
    generation: AtomicU64,
    last_forced: tokio::sync::Mutex<Option<Instant>>,
}

impl JwksStore {
    /// A store starting from `initial` (the file's keys, read when the policy was checked).
    pub fn new(
        source: JwksSource,
        initial: KeySet,
    ) -> Result<Self, crate::vocab::tls_client::TlsError> {
        let client = match &source {
            JwksSource::File(_) => None,
            JwksSource::Url { ca, .. } => {
                let tls = crate::vocab::tls_client::client_config(ca.as_deref())?;
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_only()
                    .enable_http1()
                    .enable_http2()
                    .build();
                Some(
                    hyper_util::client::legacy::Client::builder(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .build(connector),
                )
            }
        };
        Ok(Self {
            set: ArcSwap::from_pointee(initial),
            source,
            client,
            generation: AtomicU64::new(0),
            last_forced: tokio::sync::Mutex::new(None),
        })
    }

    /// The current keys.
    pub fn keys(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.set.load()
    }

    /// Bumped whenever the key set changes; cached tokens from older generations are re-verified.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Re-reads the source; keeps the old set on failure.
    pub async fn refresh(&self) -> Result<(), String> {
        let result = match &self.source {
            JwksSource::File(path) => tokio::fs::read(path)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))
                .and_then(|bytes| KeySet::parse(&bytes)),
            JwksSource::Url { url, .. } => self
                .fetch(url)
                .await
                .and_then(|bytes| KeySet::parse(&bytes)),
        };
        match result {
            Ok(set) => {
                self.set.store(Arc::new(set));
                self.generation.fetch_add(1, Ordering::AcqRel);
                metrics::counter!("ordergate_jwks_refresh_total", "result" => "ok").increment(1);
                Ok(())
            }
            Err(e) => {
                metrics::counter!("ordergate_jwks_refresh_total", "result" => "error").increment(1);
                tracing::warn!(error = %e, "JWKS refresh failed; keeping the last good key set");
                Err(e)
            }
        }
    }

    /// A refresh for an unknown `kid`, at most once per [`FORCED_REFRESH_GAP`]. Returns whether
    /// a refresh ran.
    pub async fn refresh_for_unknown_kid(&self) -> bool {
        let mut last = self.last_forced.lock().await;
        if last.is_some_and(|t| t.elapsed() < FORCED_REFRESH_GAP) {
            return false;
        }
        *last = Some(Instant::now());
        self.refresh().await.is_ok()
    }

    async fn fetch(&self, url: &http::Uri) -> Result<Vec<u8>, String> {
        let client = self.client.as_ref().ok_or("no https client")?;
        let request = http::Request::get(url.clone())
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(Duration::from_secs(5), client.request(request))
            .await
            .map_err(|_| format!("{url}: timed out"))?
            .map_err(|e| format!("{url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        let body = tokio::time::timeout(
            Duration::from_secs(5),
            Limited::new(response.into_body(), MAX_JWKS_BYTES).collect(),
        )
        .await
        .map_err(|_| format!("{url}: body timed out"))?
        .map_err(|e| format!("{url}: {e}"))?;
        Ok(body.to_bytes().to_vec())
    }

    /// Refreshes every `every` until the store is dropped (a reload replaced it).
    pub fn spawn_refresher(self: &Arc<Self>, every: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let Some(store) = weak.upgrade() else { return };
                let _ = store.refresh().await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::pki::{JwtKey, jwks};
    use std::time::Duration;

    /// The key parsed from `key`'s JWK, and a token it signed, split into message and signature.
    fn parsed(key: &JwtKey) -> (PublicKey, String, String) {
        let set = KeySet::parse(jwks(&[key]).as_bytes()).unwrap();
        let token = key
            .token("https://idp/", "alice", &[], &[], Duration::from_secs(60))
            .unwrap();
        let (message, signature) = token.rsplit_once('.').unwrap();
        (set.keys[0].key.clone(), message.into(), signature.into())
    }

    #[test]
    fn a_parsed_key_verifies_its_own_algorithm_and_nothing_else() {
        use Algorithm::*;
        for (alg, others) in [
            (RS256, &[RS384, PS256, ES256, EdDSA, HS256][..]),
            (PS512, &[PS256, RS512][..]),
            (ES256, &[ES384, RS256, EdDSA][..]),
            (ES384, &[ES256][..]),
            (EdDSA, &[ES256, RS256][..]),
        ] {
            let key = JwtKey::generate(alg, "k").unwrap();
            let (public, message, signature) = parsed(&key);
            assert!(
                public.verify(alg, message.as_bytes(), &signature),
                "{alg:?}"
            );
            for other in others {
                assert!(
                    !public.verify(*other, message.as_bytes(), &signature),
                    "{alg:?} key, {other:?}"
                );
            }
            // Other claims under the same signature, a signature that is not base64url, and a
            // signature by another key of the same kind.
            let tampered = message.replacen('.', ".e", 1);
            assert!(!public.verify(alg, tampered.as_bytes(), &signature));
            assert!(!public.verify(alg, message.as_bytes(), "not*base64"));
            let (_, _, foreign) = parsed(&JwtKey::generate(alg, "k").unwrap());
            assert!(!public.verify(alg, message.as_bytes(), &foreign), "{alg:?}");
        }
    }

    #[test]
    fn keys_that_do_not_parse_fail_the_set_at_their_place() {
        let key = JwtKey::generate(Algorithm::ES256, "k").unwrap();
        let mut off_curve = key.jwk.clone();
        // Same length, another y: (x, y) is no longer a point of P-256.
        let y = off_curve["y"].as_str().unwrap().to_owned();
        let flipped = if y.starts_with('A') { "B" } else { "A" };
        off_curve["y"] = format!("{flipped}{}", &y[1..]).into();
        let mut bad_base64 = key.jwk.clone();
        bad_base64["x"] = "***".into();
        for jwk in [off_curve, bad_base64] {
            let doc = serde_json::json!({ "keys": [key.jwk, jwk] }).to_string();
            let error = KeySet::parse(doc.as_bytes()).unwrap_err();
            assert!(error.starts_with("key 1: "), "{error}");
        }
    }
}
