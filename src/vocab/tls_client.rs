//! Outbound TLS for the upstream and a JWKS URL: rustls with the aws-lc provider (the one
//! provider of the process), system roots or an explicit CA bundle.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;

/// Why an outbound TLS configuration could not be built; the rustls error is its source.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate of the configured CA bundle was not accepted as a trust anchor.
    #[error("CA certificate rejected: {0}")]
    CaRejected(#[source] rustls::Error),
    /// The provider does not support the safe default protocol versions.
    #[error("{0}")]
    Protocols(#[source] rustls::Error),
}

/// The process's one crypto provider.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A client configuration trusting `ca` if given, else the system's roots (falling back to the
/// Mozilla bundle when the system has none).
pub fn client_config(
    ca: Option<&[CertificateDer<'static>]>,
) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(certs) => {
            for cert in certs {
                roots.add(cert.clone()).map_err(TlsError::CaRejected)?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                // A broken system certificate must not stop the gateway; it is simply not trusted.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
        }
    }
    // No ALPN here: the hyper-rustls connector sets it from the protocols it enables.
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Protocols)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// An HTTP(S) connector for an outbound client (the upstream pool, the events webhook): TCP with
/// `connect_timeout` and no Nagle, then TLS from [`client_config`] for `https` origins; HTTP/2
/// offered by ALPN when `http2`.
pub fn https_connector(
    ca: Option<&[CertificateDer<'static>]>,
    connect_timeout: std::time::Duration,
    http2: bool,
) -> Result<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    TlsError,
> {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client_config(ca)?)
        .https_or_http()
        .enable_http1();
    Ok(if http2 {
        builder.enable_http2().wrap_connector(http)
    } else {
        builder.wrap_connector(http)
    })
}
