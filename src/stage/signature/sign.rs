//! The signer's side, for `ordergate sign`, the demo and the tests: the headers a partner adds
//! to one request, built by the same signature-base code the gateway verifies with. It covers
//! exactly what CONTRACT §7.1 requires: `@method`, `@authority`, `@path`, `@query`, and
//! `content-digest` with a body, and `content-type` when one is given (a route that accepts more
//! than one body type demands it); parameters `created`, `nonce`, `keyid`, `alg`.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{HeaderMap, HeaderValue, Method, Uri};
use sfv::{BareItem, Dictionary, FieldType, InnerList, Item, Key, ListEntry, Parameters};

use super::base;
use super::digest::{DigestAlg, header_value};
use super::verify::SigningKey;
use super::{BodyCoverage, SignedRequest};

/// The label ordergate signs under.
pub const LABEL: &str = "sig1";

/// One request to sign.
#[derive(Debug, Clone, Copy)]
pub struct ToSign<'a> {
    /// The method.
    pub method: &'a Method,
    /// The absolute URL, as the client will send it.
    pub url: &'a Uri,
    /// The body, if the request has one.
    pub body: Option<&'a [u8]>,
    /// Its `Content-Type`, covered by the signature when given (a route that accepts more than
    /// one body type demands it).
    pub content_type: Option<&'a str>,
    /// `created`, epoch seconds.
    pub created: i64,
    /// `nonce`.
    pub nonce: &'a str,
}

/// A fresh random nonce (128 bits, base64url).
pub fn fresh_nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The headers to add, in order: `Signature-Input`, `Signature`, and `Content-Digest` with a
/// body.
pub fn sign(
    key: &SigningKey,
    keyid: &str,
    request: ToSign<'_>,
) -> Result<Vec<(&'static str, String)>, String> {
    let tls = match request.url.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("the URL must start with https:// or http://".into()),
    };
    if request.url.authority().is_none() {
        return Err("the URL needs a host".into());
    }
    let mut headers = HeaderMap::new();
    let digest = request.body.map(|b| header_value(b, DigestAlg::Sha256));
    let mut components = base::REQUIRED
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>();
    if let Some(d) = &digest {
        headers.insert(
            "content-digest",
            HeaderValue::from_str(d).map_err(|e| e.to_string())?,
        );
        components.push("content-digest".into());
    }
    let content_type = match (request.content_type, request.body) {
        (Some(_), None) => return Err("a content type needs a body to describe".into()),
        (Some(t), Some(_)) => {
            let value = HeaderValue::from_str(t).map_err(|e| format!("the content type: {e}"))?;
            headers.insert(http::header::CONTENT_TYPE, value);
            components.push("content-type".into());
            Some(t)
        }
        (None, _) => None,
    };
    let params = inner_list(&components, keyid, key.alg_name(), request)?;
    let signed = SignedRequest {
        method: request.method,
        uri: request.url,
        headers: &headers,
        tls,
        body: match (request.body, content_type) {
            (None, _) => BodyCoverage::NoBody,
            (Some(_), None) => BodyCoverage::Digest,
            (Some(_), Some(_)) => BodyCoverage::DigestAndType,
        },
    };
    let signature_base = base::signature_base(&components, &params, &signed)
        .map_err(|e| format!("cannot build the signature base: {e}"))?;
    let signature = key.sign(&signature_base);
    let mut out = vec![
        ("Signature-Input", format!("{LABEL}={params}")),
        (
            "Signature",
            format!("{LABEL}=:{}:", STANDARD.encode(signature)),
        ),
    ];
    if let Some(d) = digest {
        out.push(("Content-Digest", d));
    }
    if let Some(t) = content_type {
        out.push(("Content-Type", t.to_owned()));
    }
    Ok(out)
}

/// The serialised inner list: the components and the parameters.
fn inner_list(
    components: &[String],
    keyid: &str,
    alg: &str,
    request: ToSign<'_>,
) -> Result<String, String> {
    let string = |s: &str| {
        sfv::String::from_string(s.to_owned())
            .map(BareItem::String)
            .map_err(|(e, _)| format!("`{s}` cannot be signed: {e}"))
    };
    let key = |k: &str| Key::from_string(k.to_owned()).map_err(|(e, _)| e.to_string());
    let items = components
        .iter()
        .map(|c| string(c).map(Item::new))
        .collect::<Result<Vec<_>, _>>()?;
    let mut params = Parameters::new();
    let created = sfv::Integer::try_from(request.created).map_err(|e| e.to_string())?;
    params.insert(key("created")?, BareItem::Integer(created));
    params.insert(key("nonce")?, string(request.nonce)?);
    params.insert(key("keyid")?, string(keyid)?);
    params.insert(key("alg")?, string(alg)?);
    let mut one = Dictionary::new();
    one.insert(
        key(LABEL)?,
        ListEntry::InnerList(InnerList::with_params(items, params)),
    );
    let text = one.serialize().ok_or("nothing to serialise")?;
    text.strip_prefix(LABEL)
        .and_then(|t| t.strip_prefix('='))
        .map(str::to_owned)
        .ok_or_else(|| "unexpected serialisation".to_owned())
}
