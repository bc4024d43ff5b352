//! Clients that talk real HTTPS to the gateway: a `reqwest` client trusting the test CA, raw
//! TLS connections for requests a URL library would refuse to write, and a small HTTPS server
//! (a JWKS endpoint, say) with a certificate from the test CA.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ordergate::demo::pki::Issued;
use parking_lot::Mutex;
use rustls_pki_types::pem::PemObject as _;

use super::gateway::Harness;
use super::install;
use super::pki::Keys;

/// A client trusting the test CA, optionally presenting a client certificate.
pub fn client(keys: &Keys, identity: Option<&Issued>, h2: bool) -> reqwest::Client {
    install();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(keys.ca.pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match identity {
        Some(id) => {
            let certs = rustls_pki_types::CertificateDer::pem_slice_iter(id.cert_pem.as_bytes())
                .map(|c| c.unwrap())
                .collect();
            let key =
                rustls_pki_types::PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = if h2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A TLS connection to the gateway for writing raw requests (paths a URL library would
/// normalise, oversized headers, slow clients).
pub async fn raw_tls(h: &Harness) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    raw_tls_offering(h, b"http/1.1").await
}

/// A TLS connection to the gateway offering only the ALPN protocol `alpn`.
pub async fn raw_tls_offering(
    h: &Harness,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    try_raw_tls(h, alpn).await.unwrap()
}

/// A TLS connection to the gateway offering `alpn`, or why the gateway did not complete one.
pub async fn try_raw_tls(
    h: &Harness,
    alpn: &[u8],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(h.keys.ca.pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(h.addr).await?;
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    connector.connect(name, tcp).await
}

/// Sends one raw HTTP/1.1 request (`Connection: close` is added) and returns status and body.
pub async fn raw_request(
    h: &Harness,
    request_line: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = raw_tls(h).await;
    let mut text = format!("{request_line}\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str("\r\n");
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// An HTTPS server (certificate from the test CA) answering every request with `body()`;
/// returns its address and a request counter.
pub async fn serve_https(
    keys: &Keys,
    body: Arc<Mutex<String>>,
) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(keys.server.cert_pem.as_bytes())
        .map(|c| c.unwrap())
        .collect();
    let key =
        rustls_pki_types::PrivateKeyDer::from_pem_slice(keys.server.key_pem.as_bytes()).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let body = body.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |_req| {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let text = body.lock().clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .header("content-type", "application/json")
                                .body(http_body_util::Full::new(bytes::Bytes::from(text)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, hits)
}

/// A client like [`client`] (HTTP/1.1) whose connections leave from `local` (any 127.0.0.x on
/// loopback): the peer address the gateway sees, for IP allowlists and forwarded addresses.
pub fn client_from(keys: &Keys, local: std::net::IpAddr) -> reqwest::Client {
    install();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(keys.ca.pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .local_address(local)
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}
