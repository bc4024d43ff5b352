//! The signature base of RFC 9421 §2.5, built from the request exactly as received, and the
//! `Signature-Input` / `Signature` fields (RFC 9651 dictionaries, parsed by `sfv`) it is chosen
//! from. Only what ordergate needs is supported: the derived components `@method`,
//! `@authority`, `@path`, `@query`, and header fields without parameters; anything else a
//! signature covers is refused (`signature_components`) rather than guessed at.

use http::HeaderMap;
use http::header::HOST;
use sfv::{BareItem, Dictionary, FieldType, Item, ListEntry, Parser};

use super::{BodyCoverage, SignedRequest};
use crate::vocab::cause::AuthFailure;

/// What every signature must cover (RFC 9421 §2.2; `@query` is `?` alone when empty).
pub const REQUIRED: &[&str] = &["@method", "@authority", "@path", "@query"];

/// Covered components beyond this many are refused (a base is built per request).
const MAX_COMPONENTS: usize = 32;

/// A `nonce` longer than this is refused (it is kept in the nonce store).
pub const MAX_NONCE_BYTES: usize = 128;

/// The signature chosen for the credential, with its parameters.
#[derive(Debug, Clone)]
pub struct Chosen {
    /// Its label in both dictionaries.
    pub label: String,
    /// The covered component names, in order.
    pub components: Vec<String>,
    /// The inner list re-serialised: the value of `@signature-params`.
    pub params: String,
    /// `created`, epoch seconds.
    pub created: i64,
    /// `expires`, if given.
    pub expires: Option<i64>,
    /// `nonce`.
    pub nonce: String,
    /// `alg`, if given.
    pub alg: Option<String>,
    /// The signature bytes.
    pub signature: Vec<u8>,
}

/// Every line of a header field joined with `, ` (RFC 9110 §5.3); `None` when absent,
/// malformed when not visible ASCII.
fn joined(headers: &HeaderMap, name: &str) -> Result<Option<String>, AuthFailure> {
    let mut out: Option<String> = None;
    for value in headers.get_all(name) {
        let text = value
            .to_str()
            .map_err(|_| AuthFailure::SignatureMalformed)?;
        match &mut out {
            Some(o) => {
                o.push_str(", ");
                o.push_str(text);
            }
            None => out = Some(text.to_owned()),
        }
    }
    Ok(out)
}

/// The first signature whose `keyid` names the credential (CONTRACT §7.1).
pub fn choose(headers: &HeaderMap, keyid: &str) -> Result<Chosen, AuthFailure> {
    let (Some(input), Some(signatures)) = (
        joined(headers, "signature-input")?,
        joined(headers, "signature")?,
    ) else {
        return Err(AuthFailure::SignatureMissing);
    };
    let inputs: Dictionary = Parser::new(&input)
        .parse()
        .map_err(|_| AuthFailure::SignatureMalformed)?;
    let signatures: Dictionary = Parser::new(&signatures)
        .parse()
        .map_err(|_| AuthFailure::SignatureMalformed)?;
    let mut found = None;
    for (label, entry) in &inputs {
        let ListEntry::InnerList(list) = entry else {
            return Err(AuthFailure::SignatureMalformed);
        };
        let names_credential = list
            .params
            .get("keyid")
            .and_then(BareItem::as_string)
            .is_some_and(|k| k.as_str() == keyid);
        if names_credential {
            found = Some((label, list));
            break;
        }
    }
    let Some((label, list)) = found else {
        return Err(AuthFailure::SignatureKeyidMismatch);
    };
    if list.items.len() > MAX_COMPONENTS {
        return Err(AuthFailure::SignatureMalformed);
    }
    let mut components: Vec<String> = Vec::with_capacity(list.items.len());
    for item in &list.items {
        let name = component_name(item)?;
        if components.contains(&name) {
            return Err(AuthFailure::SignatureMalformed);
        }
        components.push(name);
    }
    let integer = |name: &str| -> Result<Option<i64>, AuthFailure> {
        match list.params.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_integer()
                .map(|i| Some(i64::from(i)))
                .ok_or(AuthFailure::SignatureMalformed),
        }
    };
    let string = |name: &str| -> Result<Option<String>, AuthFailure> {
        match list.params.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_string()
                .map(|s| Some(s.as_str().to_owned()))
                .ok_or(AuthFailure::SignatureMalformed),
        }
    };
    let created = integer("created")?.ok_or(AuthFailure::SignatureMalformed)?;
    let expires = integer("expires")?;
    let nonce = string("nonce")?
        .filter(|n| !n.is_empty() && n.len() <= MAX_NONCE_BYTES)
        .ok_or(AuthFailure::SignatureMalformed)?;
    let alg = string("alg")?;
    let params = serialized(label.as_str(), ListEntry::InnerList(list.clone()))?;
    let signature = match signatures.get(label.as_str()) {
        Some(ListEntry::Item(item)) => item
            .bare_item
            .as_byte_sequence()
            .map(<[u8]>::to_vec)
            .ok_or(AuthFailure::SignatureMalformed)?,
        _ => return Err(AuthFailure::SignatureMalformed),
    };
    Ok(Chosen {
        label: label.as_str().to_owned(),
        components,
        params,
        created,
        expires,
        nonce,
        alg,
        signature,
    })
}

/// A covered component: a string without parameters (`;sf`, `;key`, `;bs`, `;req` and
/// `;name` are not supported).
fn component_name(item: &Item) -> Result<String, AuthFailure> {
    let name = item
        .bare_item
        .as_string()
        .ok_or(AuthFailure::SignatureMalformed)?;
    if !item.params.is_empty() {
        return Err(AuthFailure::SignatureComponents);
    }
    Ok(name.as_str().to_owned())
}

/// The inner list as RFC 9651 serialises it, without the `label=` of its dictionary member.
fn serialized(label: &str, entry: ListEntry) -> Result<String, AuthFailure> {
    let key =
        sfv::Key::from_string(label.to_owned()).map_err(|_| AuthFailure::SignatureMalformed)?;
    let mut one = Dictionary::new();
    one.insert(key, entry);
    let text = one.serialize().ok_or(AuthFailure::SignatureMalformed)?;
    text.strip_prefix(label)
        .and_then(|t| t.strip_prefix('='))
        .map(str::to_owned)
        .ok_or(AuthFailure::SignatureMalformed)
}

/// Refuses a signature that leaves out what CONTRACT §7.1 requires, and `content-type` where
/// the route reads a body as more than one type.
pub fn require_coverage(components: &[String], body: BodyCoverage) -> Result<(), AuthFailure> {
    let covers = |name: &str| components.iter().any(|c| c == name);
    let body_covered = match body {
        BodyCoverage::NoBody => true,
        BodyCoverage::Digest => covers("content-digest"),
        BodyCoverage::DigestAndType => covers("content-digest") && covers("content-type"),
    };
    if REQUIRED.iter().all(|r| covers(r)) && body_covered {
        Ok(())
    } else {
        Err(AuthFailure::SignatureComponents)
    }
}

/// The signature base (RFC 9421 §2.5): one `"name": value` line per covered component, then
/// `"@signature-params": ` and the inner list, with no final newline.
pub fn signature_base(
    components: &[String],
    params: &str,
    request: &SignedRequest<'_>,
) -> Result<Vec<u8>, AuthFailure> {
    let mut out = Vec::with_capacity(256);
    for name in components {
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\": ");
        component_value(name, request, &mut out)?;
        out.push(b'\n');
    }
    out.extend_from_slice(b"\"@signature-params\": ");
    out.extend_from_slice(params.as_bytes());
    Ok(out)
}

fn component_value(
    name: &str,
    request: &SignedRequest<'_>,
    out: &mut Vec<u8>,
) -> Result<(), AuthFailure> {
    match name {
        "@method" => out.extend_from_slice(request.method.as_str().as_bytes()),
        "@authority" => {
            let authority = authority(request).ok_or(AuthFailure::SignatureInvalid)?;
            out.extend_from_slice(authority.as_bytes());
        }
        "@path" => {
            let path = request.uri.path();
            out.extend_from_slice(if path.is_empty() { "/" } else { path }.as_bytes());
        }
        "@query" => {
            out.push(b'?');
            out.extend_from_slice(request.uri.query().unwrap_or("").as_bytes());
        }
        derived if derived.starts_with('@') => return Err(AuthFailure::SignatureComponents),
        field => {
            let valid_name = !field.is_empty()
                && field.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.!#$%&'*+^`|~".contains(&b)
                });
            if !valid_name {
                return Err(AuthFailure::SignatureComponents);
            }
            let mut values = request.headers.get_all(field).iter().peekable();
            if values.peek().is_none() {
                // A covered field that is absent: the base cannot be the one that was signed.
                return Err(AuthFailure::SignatureInvalid);
            }
            let mut first = true;
            for value in values {
                if !first {
                    out.extend_from_slice(b", ");
                }
                first = false;
                out.extend_from_slice(value.as_bytes().trim_ascii());
            }
        }
    }
    Ok(())
}

/// `@authority` (RFC 9421 §2.2.3): the HTTP/2 `:authority` or the one HTTP/1.1 `Host`,
/// lowercase, without the scheme's default port. `None` when absent, repeated, or carrying
/// user information.
pub fn authority(request: &SignedRequest<'_>) -> Option<String> {
    let raw = match request.uri.authority() {
        Some(a) => a.as_str().to_owned(),
        None => {
            let mut hosts = request.headers.get_all(HOST).iter();
            let host = hosts.next()?;
            if hosts.next().is_some() {
                return None;
            }
            host.to_str().ok()?.trim().to_owned()
        }
    };
    if raw.is_empty() || raw.contains('@') {
        return None;
    }
    let lower = raw.to_ascii_lowercase();
    let default_port = if request.tls { ":443" } else { ":80" };
    Some(
        lower
            .strip_suffix(default_port)
            .map(str::to_owned)
            .unwrap_or(lower),
    )
}
