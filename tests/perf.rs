//! Issue 15: the performance settings, end to end. `[server.tls] cipher_suites` makes the
//! gateway choose the suite in its own order whatever the client prefers, and refuses a client
//! that offers none of them; without the key the client's order decides, as before.

mod support;

use std::sync::Arc;

use rustls::CipherSuite;
use rustls_pki_types::pem::PemObject as _;
use support::{Harness, edit};

/// The suite a client offering `offered` (in that order) gets from the gateway, or `None` when
/// the handshake fails.
async fn negotiated(h: &Harness, offered: &[CipherSuite]) -> Option<CipherSuite> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites = offered
        .iter()
        .map(|want| {
            *provider
                .cipher_suites
                .iter()
                .find(|s| s.suite() == *want)
                .unwrap()
        })
        .collect();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(h.keys.ca.pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let stream = connector.connect(name, tcp).await.ok()?;
    stream
        .get_ref()
        .1
        .negotiated_cipher_suite()
        .map(|s| s.suite())
}

const AES_128: CipherSuite = CipherSuite::TLS13_AES_128_GCM_SHA256;
const AES_256: CipherSuite = CipherSuite::TLS13_AES_256_GCM_SHA384;

#[tokio::test]
async fn listed_cipher_suites_are_chosen_in_the_gateways_order() {
    let h = Harness::with(|p| {
        edit(
            p,
            &[(
                "min_version = \"1.2\"",
                "min_version = \"1.2\"\ncipher_suites = [\"TLS_AES_128_GCM_SHA256\", \"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\", \"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\"]",
            )],
        )
    })
    .await;
    assert_eq!(negotiated(&h, &[AES_256, AES_128]).await, Some(AES_128));
    assert_eq!(
        negotiated(&h, &[AES_256]).await,
        None,
        "a suite the policy does not list is never negotiated"
    );
}

#[tokio::test]
async fn without_the_key_the_clients_order_decides() {
    let h = Harness::start().await;
    assert_eq!(negotiated(&h, &[AES_256, AES_128]).await, Some(AES_256));
    assert_eq!(negotiated(&h, &[AES_128, AES_256]).await, Some(AES_128));
}
