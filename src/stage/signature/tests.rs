//! The signature base against RFC 9421 Appendix B, and the stateless checks with keys made here:
//! every refusal, and a property test that any single-byte change to a covered part is refused.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{HeaderMap, HeaderValue, Method, Uri};
use proptest::prelude::*;

use super::sign::{ToSign, sign};
use super::verify::{SigningKey, VerifyKey};
use super::*;

/// RFC 9421 §B.2: `POST /foo?param=Value&Pet=dog` to example.com.
fn rfc_headers(input: &str, signature: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in [
        ("host", "example.com"),
        ("date", "Tue, 20 Apr 2021 02:07:55 GMT"),
        ("content-type", "application/json"),
        (
            "content-digest",
            "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
        ),
        ("content-length", "18"),
        ("signature-input", input),
        ("signature", signature),
    ] {
        h.insert(name, HeaderValue::from_str(value).unwrap());
    }
    h
}

fn rfc_request<'a>(method: &'a Method, uri: &'a Uri, headers: &'a HeaderMap) -> SignedRequest<'a> {
    SignedRequest {
        method,
        uri,
        headers,
        tls: true,
        body: BodyCoverage::Digest,
    }
}

/// RFC 9421 §B.2.6 (key §B.1.4): the base, the verification, and the deterministic signature.
#[test]
fn rfc_9421_b_2_6_ed25519() {
    let headers = rfc_headers(
        r#"sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519""#,
        "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:",
    );
    let (method, uri) = (Method::POST, Uri::from_static("/foo?param=Value&Pet=dog"));
    let request = rfc_request(&method, &uri, &headers);
    let chosen = base::choose(&headers, "test-key-ed25519").unwrap_err();
    // The RFC's signature has no nonce, which ordergate requires.
    assert_eq!(chosen, AuthFailure::SignatureMalformed);
    let chosen = chosen_without_nonce_check(&headers, "sig-b26");
    let signature_base = base::signature_base(&chosen.0, &chosen.1, &request).unwrap();
    assert_eq!(
        String::from_utf8(signature_base.clone()).unwrap(),
        concat!(
            "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n",
            "\"@method\": POST\n",
            "\"@path\": /foo\n",
            "\"@authority\": example.com\n",
            "\"content-type\": application/json\n",
            "\"content-length\": 18\n",
            "\"@signature-params\": (\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \"content-length\");created=1618884473;keyid=\"test-key-ed25519\"",
        )
    );
    let public = URL_SAFE_NO_PAD
        .decode("JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs")
        .unwrap();
    let key = VerifyKey::Ed25519(public.try_into().unwrap());
    assert_eq!(key.verify(&signature_base, &chosen.2), Ok(()));
    let seed = URL_SAFE_NO_PAD
        .decode("n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU")
        .unwrap();
    let signer = SigningKey::ed25519_from_seed(&seed).unwrap();
    assert_eq!(signer.sign(&signature_base), chosen.2);
    let mut tampered = signature_base.clone();
    tampered[3] ^= 1;
    assert_eq!(
        key.verify(&tampered, &chosen.2),
        Err(AuthFailure::SignatureInvalid)
    );
}

/// RFC 9421 §B.2.5 (key §B.1.5): hmac-sha256.
#[test]
fn rfc_9421_b_2_5_hmac_sha256() {
    let headers = rfc_headers(
        r#"sig-b25=("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret""#,
        "sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:",
    );
    let (method, uri) = (Method::POST, Uri::from_static("/foo?param=Value&Pet=dog"));
    let request = rfc_request(&method, &uri, &headers);
    let chosen = chosen_without_nonce_check(&headers, "sig-b25");
    let signature_base = base::signature_base(&chosen.0, &chosen.1, &request).unwrap();
    assert_eq!(
        String::from_utf8(signature_base.clone()).unwrap(),
        concat!(
            "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n",
            "\"@authority\": example.com\n",
            "\"content-type\": application/json\n",
            "\"@signature-params\": (\"date\" \"@authority\" \"content-type\");created=1618884473;keyid=\"test-shared-secret\"",
        )
    );
    let secret = STANDARD
        .decode("uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ==")
        .unwrap();
    let key = VerifyKey::hmac(&secret).unwrap();
    assert_eq!(key.verify(&signature_base, &chosen.2), Ok(()));
    assert_eq!(
        SigningKey::hmac(&secret).unwrap().sign(&signature_base),
        chosen.2
    );
    assert_eq!(
        key.verify(&signature_base, &chosen.2[..31]),
        Err(AuthFailure::SignatureInvalid)
    );
}

/// The RFC's own signatures carry no nonce: their components, serialised parameters and bytes,
/// read the way `choose` reads them.
fn chosen_without_nonce_check(headers: &HeaderMap, label: &str) -> (Vec<String>, String, Vec<u8>) {
    let mut with_nonce = headers.clone();
    let input = headers["signature-input"].to_str().unwrap();
    with_nonce.insert(
        "signature-input",
        HeaderValue::from_str(&format!("{input};nonce=\"n\"")).unwrap(),
    );
    let keyid = if label == "sig-b26" {
        "test-key-ed25519"
    } else {
        "test-shared-secret"
    };
    let chosen = base::choose(&with_nonce, keyid).unwrap();
    assert_eq!(chosen.label, label);
    let params = chosen
        .params
        .strip_suffix(";nonce=\"n\"")
        .unwrap()
        .to_owned();
    (chosen.components, params, chosen.signature)
}

const NOW: i64 = 1_800_000_000;

fn settings() -> SignatureSettings {
    SignatureSettings {
        max_age: Duration::from_secs(60),
        clock_skew: Duration::from_secs(5),
        ..SignatureSettings::default()
    }
}

fn ed25519() -> (SigningKey, VerifyKey) {
    let (private, public) = SigningKey::generate_ed25519().unwrap();
    (
        SigningKey::ed25519_from_pem(private.as_bytes()).unwrap(),
        VerifyKey::ed25519_from_pem(public.as_bytes()).unwrap(),
    )
}

/// A request as a client sends it: method, URL, headers, body.
#[derive(Debug, Clone)]
struct Sent {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
}

impl Sent {
    fn request(&self) -> SignedRequest<'_> {
        SignedRequest {
            method: &self.method,
            uri: &self.uri,
            headers: &self.headers,
            tls: true,
            body: BodyCoverage::of(self.body.is_some(), 1),
        }
    }
}

fn signed(
    key: &SigningKey,
    keyid: &str,
    method: Method,
    url: &str,
    body: Option<&[u8]>,
    created: i64,
) -> Sent {
    let uri: Uri = url.parse().unwrap();
    let lines = sign(
        key,
        keyid,
        ToSign {
            method: &method,
            url: &uri,
            body,
            content_type: None,
            created,
            nonce: "n-1",
        },
    )
    .unwrap();
    let mut headers = HeaderMap::new();
    for (name, value) in lines {
        headers.insert(name, HeaderValue::from_str(&value).unwrap());
    }
    Sent {
        method,
        uri,
        headers,
        body: body.map(<[u8]>::to_vec),
    }
}

fn verdict(sent: &Sent, key: &VerifyKey, keyid: &str, now: i64) -> Result<(), AuthFailure> {
    let checked = verify_request(&settings(), None, Some(key), keyid, &sent.request(), now)?;
    match (&checked.digest, &sent.body) {
        (Some(d), Some(body)) if !d.matches(body) => Err(AuthFailure::DigestMismatch),
        _ => Ok(()),
    }
}

const URL: &str = "https://gw.example:8443/v1/orders/O2024010100001/notes?lang=en&x=%2F1";

#[test]
fn a_signed_request_verifies_with_either_algorithm() {
    let (signer, verifier) = ed25519();
    let sent = signed(
        &signer,
        "sf-logistics",
        Method::POST,
        URL,
        Some(b"call before noon"),
        NOW,
    );
    assert_eq!(verdict(&sent, &verifier, "sf-logistics", NOW), Ok(()));
    let input = sent.headers["signature-input"].to_str().unwrap();
    assert!(
        input.starts_with(r#"sig1=("@method" "@authority" "@path" "@query" "content-digest");created=1800000000;nonce="n-1";keyid="sf-logistics";alg="ed25519""#),
        "{input}"
    );
    let secret = [7u8; 32];
    let hmac_signer = SigningKey::hmac(&secret).unwrap();
    let sent = signed(&hmac_signer, "k", Method::GET, URL, None, NOW);
    assert_eq!(
        verdict(&sent, &VerifyKey::hmac(&secret).unwrap(), "k", NOW),
        Ok(())
    );
    assert_eq!(
        verdict(&sent, &VerifyKey::hmac(&[8u8; 32]).unwrap(), "k", NOW),
        Err(AuthFailure::SignatureInvalid)
    );
    // An ed25519 key does not accept a signature that says it is HMAC.
    assert_eq!(
        verdict(&sent, &verifier, "k", NOW),
        Err(AuthFailure::SignatureInvalid)
    );
}

#[test]
fn the_window_is_enforced_with_skew() {
    let (signer, verifier) = ed25519();
    let at = |created: i64| {
        let sent = signed(&signer, "p", Method::GET, URL, None, created);
        verdict(&sent, &verifier, "p", NOW)
    };
    assert_eq!(at(NOW - 60), Ok(()));
    assert_eq!(at(NOW - 61), Err(AuthFailure::SignatureExpired));
    assert_eq!(at(NOW + 5), Ok(()));
    assert_eq!(at(NOW + 6), Err(AuthFailure::SignatureFuture));
}

#[test]
fn missing_and_malformed_signatures_are_refused() {
    let (signer, verifier) = ed25519();
    let good = signed(&signer, "p", Method::GET, URL, None, NOW);
    let with = |name: &str, value: Option<&str>| {
        let mut sent = good.clone();
        match value {
            Some(v) => {
                sent.headers.insert(
                    http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            None => {
                sent.headers.remove(name);
            }
        }
        verdict(&sent, &verifier, "p", NOW)
    };
    assert_eq!(with("signature", None), Err(AuthFailure::SignatureMissing));
    assert_eq!(
        with("signature-input", None),
        Err(AuthFailure::SignatureMissing)
    );
    assert_eq!(
        with("signature", Some("((")),
        Err(AuthFailure::SignatureMalformed)
    );
    assert_eq!(
        with("signature", Some("other=:AAAA:")),
        Err(AuthFailure::SignatureMalformed)
    );
    assert_eq!(
        with("signature", Some("sig1=\"text\"")),
        Err(AuthFailure::SignatureMalformed)
    );
    assert_eq!(
        with("signature-input", Some("sig1=\"not a list\"")),
        Err(AuthFailure::SignatureMalformed)
    );
    let input = good.headers["signature-input"].to_str().unwrap().to_owned();
    let changed = |from: &str, to: &str| {
        assert!(input.contains(from), "{from}");
        with("signature-input", Some(&input.replacen(from, to, 1)))
    };
    assert_eq!(
        changed("keyid=\"p\"", "keyid=\"q\""),
        Err(AuthFailure::SignatureKeyidMismatch)
    );
    assert_eq!(
        changed(";keyid=\"p\"", ""),
        Err(AuthFailure::SignatureKeyidMismatch)
    );
    assert_eq!(
        changed(";nonce=\"n-1\"", ""),
        Err(AuthFailure::SignatureMalformed)
    );
    assert_eq!(
        changed(";created=1800000000", ""),
        Err(AuthFailure::SignatureMalformed)
    );
    assert_eq!(
        changed("created=1800000000", "created=\"1800000000\""),
        Err(AuthFailure::SignatureMalformed)
    );
    assert_eq!(
        changed("nonce=\"n-1\"", "nonce=1"),
        Err(AuthFailure::SignatureMalformed)
    );
    let long = format!("nonce=\"{}\"", "n".repeat(base::MAX_NONCE_BYTES + 1));
    assert_eq!(
        changed("nonce=\"n-1\"", &long),
        Err(AuthFailure::SignatureMalformed)
    );
    assert_eq!(
        changed("\"@query\"", "\"@query\" \"@query\""),
        Err(AuthFailure::SignatureMalformed)
    );
    assert_eq!(
        changed("\"@query\"", "\"@query\";req"),
        Err(AuthFailure::SignatureComponents)
    );
    assert_eq!(
        changed("\"@query\"", "\"@query\" \"@scheme\""),
        Err(AuthFailure::SignatureComponents)
    );
    assert_eq!(
        changed("\"@query\"", "\"@query\" \"X-Upper\""),
        Err(AuthFailure::SignatureComponents)
    );
    // A covered header the request lacks: no base can match.
    assert_eq!(
        changed("\"@query\"", "\"@query\" \"date\""),
        Err(AuthFailure::SignatureInvalid)
    );
    // Extra parameters are signed too: adding one afterwards breaks the signature.
    assert_eq!(
        changed(";alg=\"ed25519\"", ";alg=\"ed25519\";tag=\"x\""),
        Err(AuthFailure::SignatureInvalid)
    );
    assert_eq!(
        changed("alg=\"ed25519\"", "alg=\"rsa-v1_5-sha256\""),
        Err(AuthFailure::SignatureInvalid)
    );
    assert_eq!(
        changed(
            "created=1800000000",
            "created=1800000000;expires=1799999990"
        ),
        Err(AuthFailure::SignatureExpired)
    );
}

#[test]
fn each_required_component_must_be_covered() {
    let (signer, verifier) = ed25519();
    let good = signed(&signer, "p", Method::POST, URL, Some(b"x"), NOW);
    let input = good.headers["signature-input"].to_str().unwrap().to_owned();
    for component in [
        "\"@method\" ",
        "\"@authority\" ",
        "\"@path\" ",
        "\"@query\" ",
        " \"content-digest\"",
    ] {
        let mut sent = good.clone();
        let stripped = input.replacen(component, "", 1);
        assert_ne!(stripped, input);
        sent.headers
            .insert("signature-input", HeaderValue::from_str(&stripped).unwrap());
        assert_eq!(
            verdict(&sent, &verifier, "p", NOW),
            Err(AuthFailure::SignatureComponents),
            "{component}"
        );
    }
}

#[test]
fn the_first_signature_naming_the_credential_is_checked() {
    let (signer, verifier) = ed25519();
    let (other, _) = ed25519();
    let mine = signed(&signer, "p", Method::GET, URL, None, NOW);
    let theirs = signed(&other, "someone-else", Method::GET, URL, None, NOW);
    let join = |name: &str, first: &Sent, first_label: &str, second: &Sent| {
        let a = first.headers[name]
            .to_str()
            .unwrap()
            .replacen("sig1=", first_label, 1);
        let b = second.headers[name].to_str().unwrap();
        HeaderValue::from_str(&format!("{a}, {b}")).unwrap()
    };
    let mut both = mine.clone();
    both.headers.insert(
        "signature-input",
        join("signature-input", &theirs, "proxy=", &mine),
    );
    both.headers
        .insert("signature", join("signature", &theirs, "proxy=", &mine));
    assert_eq!(verdict(&both, &verifier, "p", NOW), Ok(()));
    // A second signature line (a separate field line) is read as part of the same dictionary.
    let mut lines = mine.clone();
    lines.headers.insert(
        "signature-input",
        HeaderValue::from_str(
            &theirs.headers["signature-input"]
                .to_str()
                .unwrap()
                .replacen("sig1=", "proxy=", 1),
        )
        .unwrap(),
    );
    lines
        .headers
        .append("signature-input", mine.headers["signature-input"].clone());
    lines.headers.insert(
        "signature",
        HeaderValue::from_str(
            &theirs.headers["signature"]
                .to_str()
                .unwrap()
                .replacen("sig1=", "proxy=", 1),
        )
        .unwrap(),
    );
    lines
        .headers
        .append("signature", mine.headers["signature"].clone());
    assert_eq!(verdict(&lines, &verifier, "p", NOW), Ok(()));
}

#[test]
fn a_credential_without_a_key_cannot_sign() {
    let (signer, _) = ed25519();
    let sent = signed(&signer, "p", Method::GET, URL, None, NOW);
    assert_eq!(
        verify_request(&settings(), None, None, "p", &sent.request(), NOW).map(|_| ()),
        Err(AuthFailure::SignatureInvalid)
    );
    let mut unsigned = sent.clone();
    unsigned.headers.clear();
    assert_eq!(
        verify_request(&settings(), None, None, "p", &unsigned.request(), NOW).map(|_| ()),
        Err(AuthFailure::SignatureMissing)
    );
}

#[test]
fn authority_is_normalised_as_rfc_9421_says() {
    let headers = HeaderMap::new();
    let check = |uri: &str, tls: bool| {
        let uri: Uri = uri.parse().unwrap();
        base::authority(&SignedRequest {
            method: &Method::GET,
            uri: &uri,
            headers: &headers,
            tls,
            body: BodyCoverage::NoBody,
        })
    };
    assert_eq!(
        check("https://GW.Example:443/a", true).as_deref(),
        Some("gw.example")
    );
    assert_eq!(
        check("https://gw.example:8443/a", true).as_deref(),
        Some("gw.example:8443")
    );
    assert_eq!(
        check("http://gw.example:80/a", false).as_deref(),
        Some("gw.example")
    );
    assert_eq!(check("https://u@gw.example/a", true), None);
    let mut two_hosts = HeaderMap::new();
    two_hosts.append("host", HeaderValue::from_static("a"));
    two_hosts.append("host", HeaderValue::from_static("b"));
    let uri = Uri::from_static("/a");
    let request = SignedRequest {
        method: &Method::GET,
        uri: &uri,
        headers: &two_hosts,
        tls: true,
        body: BodyCoverage::NoBody,
    };
    assert_eq!(base::authority(&request), None);
}

/// The covered parts of a signed request, as bytes, rebuilt into a request after a change.
fn parts_of(sent: &Sent) -> Vec<Vec<u8>> {
    vec![
        sent.method.as_str().as_bytes().to_vec(),
        sent.uri.authority().unwrap().as_str().as_bytes().to_vec(),
        sent.uri.path().as_bytes().to_vec(),
        sent.uri.query().unwrap_or("").as_bytes().to_vec(),
        sent.headers["content-digest"].as_bytes().to_vec(),
        sent.headers["signature-input"].as_bytes().to_vec(),
        sent.body.clone().unwrap_or_default(),
    ]
}

fn rebuilt(sent: &Sent, parts: &[Vec<u8>]) -> Option<Sent> {
    let text = |i: usize| std::str::from_utf8(&parts[i]).ok();
    let method = Method::from_bytes(&parts[0]).ok()?;
    let uri: Uri = format!("https://{}{}?{}", text(1)?, text(2)?, text(3)?)
        .parse()
        .ok()?;
    if uri.authority()?.as_str() != text(1)? || uri.path() != text(2)? || uri.query()? != text(3)? {
        return None;
    }
    let mut headers = sent.headers.clone();
    for (i, name) in [(4, "content-digest"), (5, "signature-input")] {
        headers.insert(name, HeaderValue::from_bytes(&parts[i]).ok()?);
    }
    Some(Sent {
        method,
        uri,
        headers,
        body: Some(parts[6].clone()),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any single-byte change to a covered part (method, authority, path, query, the signed
    /// Content-Digest, the signature's parameters, the body) is refused. Only a change of
    /// letter case in the authority is not a change: RFC 9421 lowercases the host. (The
    /// `Signature` bytes are not covered: sfv's lenient base64 may decode a changed padding
    /// character to the same bytes, which is the same signature.)
    #[test]
    fn any_single_byte_change_is_refused(part in 0usize..7, at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        thread_local! {
            static KEYS: (SigningKey, VerifyKey) = ed25519();
        }
        KEYS.with(|(signer, verifier)| {
            let sent = signed(signer, "p", Method::POST, URL, Some(b"call before noon"), NOW);
            prop_assert_eq!(verdict(&sent, verifier, "p", NOW), Ok(()));
            let mut parts = parts_of(&sent);
            let i = at.index(parts[part].len());
            let old = parts[part][i];
            prop_assume!(byte != old);
            prop_assume!(!(part == 1 && byte.eq_ignore_ascii_case(&old)));
            parts[part][i] = byte;
            let Some(changed) = rebuilt(&sent, &parts) else {
                return Ok(()); // not a request anyone could send
            };
            prop_assert!(verdict(&changed, verifier, "p", NOW).is_err(), "part {} byte {} -> {}", part, i, byte);
            Ok(())
        })?;
    }
}

/// A request first seen with `created` at the skew's edge stays acceptable for
/// `max_age + clock_skew` (whole seconds): its nonce must be remembered at least that long.
#[test]
fn nonces_outlive_every_request_that_could_still_pass() {
    let s = settings();
    let (signer, verifier) = ed25519();
    let first_seen = NOW;
    let sent = signed(&signer, "p", Method::GET, URL, None, first_seen + 5);
    let last_valid = (first_seen..first_seen + 200)
        .filter(|now| verdict(&sent, &verifier, "p", *now).is_ok())
        .max()
        .unwrap();
    // `last_valid` may be reached up to a second after it began (the clock is read in seconds).
    let needed = Duration::from_secs(u64::try_from(last_valid - first_seen).unwrap() + 1);
    assert!(s.nonce_ttl() > needed, "{:?} <= {needed:?}", s.nonce_ttl());
    // Another instance whose clock runs `clock_skew` behind accepts the same request that much
    // longer, measured on the first one's clock: the shared pair must outlive that too.
    let skew = i64::try_from(s.clock_skew.as_secs()).unwrap();
    let last_elsewhere = (first_seen..first_seen + 200)
        .filter(|now| verdict(&sent, &verifier, "p", *now - skew).is_ok())
        .max()
        .unwrap();
    let needed = Duration::from_secs(u64::try_from(last_elsewhere - first_seen).unwrap() + 1);
    assert!(s.nonce_ttl() > needed, "{:?} <= {needed:?}", s.nonce_ttl());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever a client puts in the signature fields (any visible ASCII, structured-field
    /// shaped or not), the check neither panics nor accepts it.
    #[test]
    fn arbitrary_signature_fields_are_refused_without_panicking(
        input in r#"sig1=\("@method" "@authority" "@path" "@query"\)[ -~]{0,80}|[ -~]{0,120}"#,
        signature in r#"sig1=:[A-Za-z0-9+/=]{0,90}:|[ -~]{0,120}"#,
        digest in "[ -~]{0,80}",
    ) {
        thread_local! {
            static KEY: VerifyKey = ed25519().1;
        }
        let mut headers = HeaderMap::new();
        for (name, value) in [("signature-input", &input), ("signature", &signature), ("content-digest", &digest)] {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(name, v);
            }
        }
        let uri = Uri::from_static("https://gw.example/v1/x?y=1");
        let request = SignedRequest { method: &Method::POST, uri: &uri, headers: &headers, tls: true, body: BodyCoverage::Digest };
        let verdict = KEY.with(|key| verify_request(&settings(), None, Some(key), "p", &request, NOW).map(|_| ()));
        prop_assert!(verdict.is_err());
        let _ = DigestCheck::from_headers(&headers);
    }
}
