//! Mutual-TLS principals. rustls has already verified the client certificate against
//! `client_ca`; here its subject is compared with `[[auth.mtls.clients]]` entries as a set of
//! attribute=value pairs (order-insensitive, attribute names case-insensitive, `OID.x.y.z` or
//! short names). The principal id is the subject's CN. An entry with `not_after` is refused
//! from that instant (401, `mtls_client_expired`), like an API key.

use std::sync::Arc;

use x509_parser::prelude::{FromDer, X509Certificate};

use super::principal::Principal;
use crate::vocab::cause::AuthFailure;

/// A distinguished name as a sorted set of `(ATTRIBUTE, value)` pairs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subject(Vec<(String, String)>);

impl Subject {
    /// Parses `CN=jd-marketplace,O=JD Partner` (RFC 4514 style, `\,` escapes a comma).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut pairs = Vec::new();
        let mut current = String::new();
        let mut chars = text.chars();
        let mut parts = Vec::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => current.push(chars.next().ok_or("subject ends with a lone `\\`")?),
                ',' | '+' => parts.push(std::mem::take(&mut current)),
                c => current.push(c),
            }
        }
        parts.push(current);
        for part in parts {
            let (attr, value) = part.split_once('=').ok_or_else(|| {
                format!("subject part `{}` is not `ATTRIBUTE=value`", part.trim())
            })?;
            let attr = normalise_attribute(attr.trim());
            if attr.is_empty() || value.trim().is_empty() {
                return Err(format!("subject part `{}` is empty", part.trim()));
            }
            pairs.push((attr, value.trim().to_owned()));
        }
        Ok(Self::from_pairs(pairs))
    }

    fn from_pairs(mut pairs: Vec<(String, String)>) -> Self {
        pairs.sort();
        pairs.dedup();
        Self(pairs)
    }

    /// The subject of a DER certificate.
    pub fn of_certificate(der: &[u8]) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let mut pairs = Vec::new();
        for attr in cert.subject().iter_attributes() {
            let name = x509_parser::objects::oid2abbrev(
                attr.attr_type(),
                x509_parser::objects::oid_registry(),
            )
            .map(str::to_owned)
            .unwrap_or_else(|_| format!("OID.{}", attr.attr_type()));
            let value = attr.as_str().ok()?.to_owned();
            pairs.push((normalise_attribute(&name), value));
        }
        Some(Self::from_pairs(pairs))
    }

    /// The CN, if any.
    pub fn common_name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(a, _)| a == "CN")
            .map(|(_, v)| v.as_str())
    }

    /// RFC 4514-like text for audit records.
    pub fn to_text(&self) -> String {
        self.0
            .iter()
            .map(|(a, v)| format!("{a}={}", v.replace(',', "\\,")))
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn normalise_attribute(attr: &str) -> String {
    let upper = attr.to_ascii_uppercase();
    match upper.as_str() {
        "COMMONNAME" => "CN".into(),
        "ORGANIZATIONNAME" => "O".into(),
        "ORGANIZATIONALUNITNAME" => "OU".into(),
        "COUNTRYNAME" => "C".into(),
        "LOCALITYNAME" => "L".into(),
        "STATEORPROVINCENAME" => "ST".into(),
        _ => upper,
    }
}

/// One `[[auth.mtls.clients]]` entry, compiled.
#[derive(Debug, Clone)]
pub struct MtlsClient {
    /// The certificate subject this entry matches.
    pub subject: Subject,
    /// Who that certificate authenticates as.
    pub principal: Arc<Principal>,
    /// Seconds since the epoch from which the entry is refused (`not_after`), if set.
    pub not_after: Option<i64>,
}

/// The principal of a verified client certificate's subject, if it is configured: `Err` when
/// the entry's `not_after` has passed at `now` (seconds since the epoch).
pub fn principal_for(
    clients: &[MtlsClient],
    subject: &Subject,
    now: i64,
) -> Option<Result<Arc<Principal>, AuthFailure>> {
    let client = clients.iter().find(|c| c.subject == *subject)?;
    if client.not_after.is_some_and(|t| now >= t) {
        return Some(Err(AuthFailure::MtlsClientExpired));
    }
    Some(Ok(client.principal.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_compare_as_sets() {
        let a = Subject::parse("CN=jd-marketplace,O=JD Partner").unwrap();
        let b = Subject::parse("o=JD Partner, cn=jd-marketplace").unwrap();
        let c = Subject::parse("CN=jd-marketplace,O=JD Partner,OU=x").unwrap();
        let d = Subject::parse("commonName=jd-marketplace,organizationName=JD Partner").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, d);
        assert_ne!(a, c);
        assert_eq!(a.common_name(), Some("jd-marketplace"));
        assert_eq!(
            Subject::parse("CN=a\\,b").unwrap().common_name(),
            Some("a,b")
        );
        assert!(Subject::parse("CN").is_err());
        assert!(Subject::parse("CN=").is_err());
    }

    #[test]
    fn an_entry_past_its_not_after_is_refused() {
        use crate::stage::authn::principal::Claims;
        use crate::vocab::principal_kind::PrincipalKind;
        use crate::vocab::scopes::ScopeSet;
        let subject = Subject::parse("CN=jd-marketplace,O=JD Partner").unwrap();
        let clients = [MtlsClient {
            subject: subject.clone(),
            principal: Arc::new(Principal {
                id: "jd-marketplace".into(),
                kind: PrincipalKind::Mtls,
                tenant: None,
                scopes: ScopeSet::default(),
                scope_header: http::HeaderValue::from_static(""),
                claims: Claims::Attributes(Default::default()),
                expires_at: None,
                allow_ips: Vec::new(),
            }),
            not_after: Some(1_000),
        }];
        assert!(matches!(
            principal_for(&clients, &subject, 999),
            Some(Ok(_))
        ));
        assert_eq!(
            principal_for(&clients, &subject, 1_000).map(|r| r.map(|p| p.id.clone())),
            Some(Err(AuthFailure::MtlsClientExpired))
        );
        let stranger = Subject::parse("CN=stranger").unwrap();
        assert!(principal_for(&clients, &stranger, 0).is_none());
    }

    #[test]
    fn certificate_subjects_are_read() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "jd-marketplace");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "JD Partner");
        let cert = params.self_signed(&key).unwrap();
        let subject = Subject::of_certificate(cert.der()).unwrap();
        assert_eq!(
            subject,
            Subject::parse("CN=jd-marketplace,O=JD Partner").unwrap()
        );
    }
}
