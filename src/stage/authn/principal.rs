//! Who is calling, as established by authentication; read by every later stage.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use http::HeaderValue;

use crate::vocab::ip_list::IpAllowList;
use crate::vocab::principal_kind::PrincipalKind;
use crate::vocab::scopes::ScopeSet;

/// Where `owner` bindings look a claim up.
#[derive(Debug, Clone)]
pub enum Claims {
    /// A verified token's claims.
    Token(serde_json::Map<String, serde_json::Value>),
    /// An API key's or mTLS client's `attributes`; a set is several values, one is one.
    Attributes(Arc<BTreeMap<String, Vec<String>>>),
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// `sub`, the API key's `id`, or the certificate's CN.
    pub id: Arc<str>,
    /// How the caller authenticated.
    pub kind: PrincipalKind,
    /// The token's tenant claim, if any.
    pub tenant: Option<Arc<str>>,
    /// The scopes the policy knows, as a bitset for authorisation.
    pub scopes: ScopeSet,
    /// Every scope held, space-separated, for `X-Auth-Scopes`.
    pub scope_header: HeaderValue,
    /// What owner bindings read their claim from.
    pub claims: Claims,
    /// For tokens: `exp`, seconds since the epoch.
    pub expires_at: Option<i64>,
    /// The IP lists of the credential and of its roles (§7.2): every one must admit the client.
    pub allow_ips: Vec<Arc<IpAllowList>>,
}

impl Principal {
    /// A claim or attribute as text (numbers are written out; objects and arrays are not claims
    /// an owner binding can compare).
    pub fn claim(&self, name: &str) -> Option<Cow<'_, str>> {
        match &self.claims {
            Claims::Token(map) => match map.get(name)? {
                serde_json::Value::String(s) => Some(Cow::Borrowed(s)),
                serde_json::Value::Number(n) => Some(Cow::Owned(n.to_string())),
                _ => None,
            },
            Claims::Attributes(map) => match map.get(name)?.as_slice() {
                [one] => Some(Cow::Borrowed(one.as_str())),
                _ => None,
            },
        }
    }

    /// A claim or attribute as the set of texts it stands for (§7.3): a string or an integer is
    /// one value, an array each of its string and integer elements (other elements never match).
    /// A number held as a float (a fraction, an integer beyond 64 bits) is rounded, so it stands
    /// for nobody. Empty when the principal lacks it, so an owner check against it never matches.
    pub fn claim_values(&self, name: &str) -> Vec<Cow<'_, str>> {
        self.claim_texts(name).collect()
    }

    /// True when the claim or attribute `name` holds `value` (equal to it, or to an element of
    /// it when it is a set). Nothing is collected: this runs per request on owner routes.
    pub fn claim_holds(&self, name: &str, value: &str) -> bool {
        self.claim_texts(name).any(|v| v == value)
    }

    /// The texts of [`Self::claim_values`], one by one.
    fn claim_texts(&self, name: &str) -> impl Iterator<Item = Cow<'_, str>> {
        fn text(value: &serde_json::Value) -> Option<Cow<'_, str>> {
            match value {
                serde_json::Value::String(s) => Some(Cow::Borrowed(s)),
                serde_json::Value::Number(n) if !n.is_f64() => Some(Cow::Owned(n.to_string())),
                _ => None,
            }
        }
        let (token, attributes): (&[serde_json::Value], &[String]) = match &self.claims {
            Claims::Token(map) => match map.get(name) {
                Some(serde_json::Value::Array(items)) => (items, &[]),
                Some(value) => (std::slice::from_ref(value), &[]),
                None => (&[], &[]),
            },
            Claims::Attributes(map) => (&[], map.get(name).map_or(&[][..], Vec::as_slice)),
        };
        token
            .iter()
            .filter_map(text)
            .chain(attributes.iter().map(|v| Cow::Borrowed(v.as_str())))
            // An empty text stands for nobody: it never matches, not even an empty field.
            .filter(|v| !v.is_empty())
    }
}

/// Joins scopes for `X-Auth-Scopes`; scopes that cannot be a header value are left out.
pub fn scope_header<'a>(scopes: impl IntoIterator<Item = &'a str>) -> HeaderValue {
    let mut seen: Vec<&str> = Vec::new();
    for s in scopes {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic()) && !seen.contains(&s) {
            seen.push(s);
        }
    }
    HeaderValue::from_str(&seen.join(" ")).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::principal_kind::PrincipalKind;
    use crate::vocab::scopes::ScopeSet;

    #[test]
    fn a_claim_held_as_a_float_stands_for_nobody() {
        let claims = serde_json::json!({
            "big": 12345678901234567890123.0_f64,
            "set": [1.5, 42, "C1"],
        });
        let p = with_claims(&claims);
        assert!(p.claim_values("big").is_empty());
        assert_eq!(p.claim_values("set"), ["42", "C1"]);
    }

    fn with_claims(claims: &serde_json::Value) -> Principal {
        Principal {
            id: Arc::from("rep"),
            kind: PrincipalKind::Jwt,
            tenant: None,
            scopes: ScopeSet::default(),
            scope_header: HeaderValue::from_static(""),
            claims: Claims::Token(claims.as_object().unwrap().clone()),
            expires_at: None,
            allow_ips: Vec::new(),
        }
    }

    #[test]
    fn an_empty_claim_value_never_matches() {
        let claims = serde_json::json!({"customer_id": ["", "C1"], "tenant_id": ""});
        let p = with_claims(&claims);
        assert!(p.claim_holds("customer_id", "C1"));
        assert!(!p.claim_holds("customer_id", ""));
        assert!(!p.claim_holds("tenant_id", ""));
        assert!(p.claim_values("tenant_id").is_empty());
    }
}
