//! What the stages learn about one request, read by later stages and by the audit stage.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Method};

use crate::stage::authn::Principal;
use crate::stage::authn::mtls::Subject;
use crate::stage::validate::Validated;
use crate::vocab::rate_limit_status::RateLimitStatus;

/// Facts about the connection, fixed after the TLS handshake.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// `TLSv1.2` / `TLSv1.3`, or `None` on plain HTTP.
    pub tls_version: Option<&'static str>,
    /// The verified client certificate's subject.
    pub client_subject: Option<Subject>,
    /// The same subject as text, for the audit record.
    pub client_subject_text: Option<Arc<str>>,
}

impl ConnInfo {
    /// A connection without TLS (tests, `insecure_plaintext`).
    pub fn plain(peer: SocketAddr) -> Self {
        Self {
            peer,
            tls_version: None,
            client_subject: None,
            client_subject_text: None,
        }
    }
}

/// One request's state.
#[derive(Debug)]
pub struct RequestContext {
    pub request_id: String,
    pub conn: Arc<ConnInfo>,
    /// The client's address: the peer, or from `X-Forwarded-For` when the peer is trusted.
    pub client_ip: IpAddr,
    pub method: Method,
    /// The raw path (without the query).
    pub path: String,
    pub route_id: Option<Arc<str>>,
    pub principal: Option<Arc<Principal>>,
    pub validated: Option<Validated>,
    pub rate_limit: Option<RateLimitStatus>,
    pub upstream_status: Option<u16>,
    pub upstream_time: Option<Duration>,
}

/// The client's address. The peer is the client unless it is a trusted proxy; then the
/// right-most `X-Forwarded-For` address that is not itself a trusted proxy is.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut chain: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else {
            return peer;
        };
        for part in text.split(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => chain.push(ip),
                Err(_) => return peer,
            }
        }
    }
    chain
        .into_iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_peers() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.9, 10.1.1.1".parse().unwrap());
        assert_eq!(
            client_ip("10.2.2.2".parse().unwrap(), &h, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip("198.51.100.7".parse().unwrap(), &h, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        h.insert("x-forwarded-for", "not-an-ip".parse().unwrap());
        assert_eq!(
            client_ip("10.2.2.2".parse().unwrap(), &h, &trusted),
            "10.2.2.2".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip("10.2.2.2".parse().unwrap(), &HeaderMap::new(), &trusted),
            "10.2.2.2".parse::<IpAddr>().unwrap()
        );
    }
}
