//! When certificates stop being valid: the `notAfter` of a certificate, read once at load so the
//! expiry gauges (CONTRACT §8.1) can warn before a listener or a trust anchor goes dark.

use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The `notAfter` of one DER certificate, in seconds since the epoch; `None` when it does not
/// parse (rustls has already refused such a file, so this only guards against surprises).
pub fn not_after(der: &CertificateDer<'_>) -> Option<i64> {
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// The earliest `notAfter` of `certs`: for a CA bundle, the day the first anchor lapses is the day
/// some callers start failing, so that is the day to warn about.
pub fn earliest_not_after(certs: &[CertificateDer<'_>]) -> Option<i64> {
    certs.iter().filter_map(not_after).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_until(year: i32) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.not_after = rcgen::date_time_ymd(year, 6, 1);
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn not_after_is_read_and_the_earliest_wins() {
        let (a, b) = (cert_until(2031), cert_until(2029));
        // 2029-06-01T00:00:00Z and 2031-06-01T00:00:00Z.
        assert_eq!(not_after(&b), Some(1_874_966_400));
        assert_eq!(not_after(&a), Some(1_938_038_400));
        assert_eq!(earliest_not_after(&[a, b]), Some(1_874_966_400));
        assert_eq!(earliest_not_after(&[]), None);
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert_eq!(
            not_after(&CertificateDer::from(vec![0x30, 0x03, 1, 2])),
            None
        );
        assert_eq!(not_after(&CertificateDer::from(Vec::new())), None);
    }
}
