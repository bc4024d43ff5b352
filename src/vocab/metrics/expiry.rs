//! The expiry gauges of CONTRACT §8.1: `ordergate_credential_expiry_timestamp_seconds{kind,id}`
//! and `ordergate_certificate_expiry_timestamp_seconds{cert}`. They are rendered here rather than
//! through the `metrics` facade because the facade cannot forget a series: a key removed from the
//! policy would keep its old expiry and page someone forever. Each policy generation replaces the
//! whole set, so `/metrics` shows exactly the credentials and certificates the live policy holds.
//! Label values come from the policy (key ids, mTLS client names), never from a request.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, LazyLock};

use arc_swap::ArcSwap;

/// Which certificate an expiry belongs to (the `cert` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertName {
    /// The gateway's own certificate (`[server.tls] cert`, the leaf).
    Server,
    /// The CA that client certificates are verified against (`[server.tls] client_ca`).
    ClientCa,
    /// The CA the upstream's certificate is verified against (`[upstream] ca`).
    UpstreamCa,
}

impl CertName {
    /// The `cert` label.
    pub fn as_str(self) -> &'static str {
        match self {
            CertName::Server => "server",
            CertName::ClientCa => "client_ca",
            CertName::UpstreamCa => "upstream_ca",
        }
    }
}

/// A credential that stops working at `not_after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialExpiry {
    /// `api_key` or `mtls` (the principal kind).
    pub kind: &'static str,
    /// The credential's id as the policy names it.
    pub id: Arc<str>,
    /// Seconds since the epoch.
    pub not_after: i64,
}

/// A certificate that stops being valid at `not_after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateExpiry {
    /// Which one.
    pub cert: CertName,
    /// Seconds since the epoch.
    pub not_after: i64,
}

const CREDENTIAL: &str = "ordergate_credential_expiry_timestamp_seconds";
const CERTIFICATE: &str = "ordergate_certificate_expiry_timestamp_seconds";

static RENDERED: LazyLock<ArcSwap<String>> = LazyLock::new(|| ArcSwap::from_pointee(String::new()));

/// Replaces the exported expiries with these (one policy generation's).
pub fn set(credentials: &[CredentialExpiry], certificates: &[CertificateExpiry]) {
    RENDERED.store(Arc::new(render(credentials, certificates)));
}

/// Appends the current expiry families to a Prometheus text exposition.
pub fn append_to(out: &mut String) {
    out.push_str(&RENDERED.load());
}

fn render(credentials: &[CredentialExpiry], certificates: &[CertificateExpiry]) -> String {
    // Two mTLS entries may share a CN (different O, say): one series each would be a duplicate
    // that fails the whole scrape, so they share one, at the earlier expiry.
    let mut earliest: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for c in credentials {
        earliest
            .entry((c.kind, &*c.id))
            .and_modify(|t| *t = (*t).min(c.not_after))
            .or_insert(c.not_after);
    }
    let mut out = String::new();
    if !earliest.is_empty() {
        family(
            &mut out,
            CREDENTIAL,
            "When an API key or mTLS client with not_after stops being accepted (Unix seconds).",
        );
        for ((kind, id), not_after) in earliest {
            let _ = writeln!(
                out,
                "{CREDENTIAL}{{kind=\"{}\",id=\"{}\"}} {not_after}",
                escape(kind),
                escape(id)
            );
        }
    }
    if !certificates.is_empty() {
        family(
            &mut out,
            CERTIFICATE,
            "The notAfter of the server certificate and the earliest of each CA bundle (Unix seconds).",
        );
        for c in certificates {
            let _ = writeln!(
                out,
                "{CERTIFICATE}{{cert=\"{}\"}} {}",
                c.cert.as_str(),
                c.not_after
            );
        }
    }
    out
}

fn family(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
}

/// A label value as the text exposition format wants it: `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_hold_exactly_the_given_series() {
        let text = render(
            &[CredentialExpiry {
                kind: "api_key",
                id: "sf-logistics".into(),
                not_after: 1_900_000_000,
            }],
            &[CertificateExpiry {
                cert: CertName::ClientCa,
                not_after: 1_800_000_000,
            }],
        );
        assert_eq!(
            text,
            "# HELP ordergate_credential_expiry_timestamp_seconds When an API key or mTLS client with not_after stops being accepted (Unix seconds).\n\
             # TYPE ordergate_credential_expiry_timestamp_seconds gauge\n\
             ordergate_credential_expiry_timestamp_seconds{kind=\"api_key\",id=\"sf-logistics\"} 1900000000\n\
             # HELP ordergate_certificate_expiry_timestamp_seconds The notAfter of the server certificate and the earliest of each CA bundle (Unix seconds).\n\
             # TYPE ordergate_certificate_expiry_timestamp_seconds gauge\n\
             ordergate_certificate_expiry_timestamp_seconds{cert=\"client_ca\"} 1800000000\n"
        );
        assert_eq!(render(&[], &[]), "");
    }

    #[test]
    fn a_shared_id_is_one_series_at_the_earlier_expiry() {
        let entry = |kind, not_after| CredentialExpiry {
            kind,
            id: "jd".into(),
            not_after,
        };
        let text = render(
            &[entry("mtls", 30), entry("mtls", 20), entry("api_key", 40)],
            &[],
        );
        let series: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            series,
            [
                "ordergate_credential_expiry_timestamp_seconds{kind=\"api_key\",id=\"jd\"} 40",
                "ordergate_credential_expiry_timestamp_seconds{kind=\"mtls\",id=\"jd\"} 20",
            ]
        );
    }

    #[test]
    fn an_id_cannot_break_out_of_its_label() {
        let text = render(
            &[CredentialExpiry {
                kind: "mtls",
                id: "a\"} 1\nevil{x=\"\\".into(),
                not_after: 5,
            }],
            &[],
        );
        let series: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            series,
            [
                "ordergate_credential_expiry_timestamp_seconds{kind=\"mtls\",id=\"a\\\"} 1\\nevil{x=\\\"\\\\\"} 5"
            ]
        );
    }
}
