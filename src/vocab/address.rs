//! The client's address (CONTRACT §6): the peer, or with a trusted proxy the right-most
//! untrusted `X-Forwarded-For` element, canonicalised; and the group an address is limited and
//! frozen as.

use std::net::IpAddr;

use http::HeaderMap;

/// Stands for a client that cannot be identified: a trusted proxy forwarded an element that is
/// not an address (`unknown`, an obfuscated `_name`, garbage) before any untrusted address. All
/// such requests share this one address's buckets and freezes, so a bad element can never make
/// the trusted proxy itself (and everybody behind it) the "client"; the audit shows `0.0.0.0`.
pub const UNIDENTIFIED_CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

/// How many `X-Forwarded-For` elements are examined from the right; a longer run of trusted hops
/// is treated like a bad element (no legitimate chain is that deep, and the walk stays bounded).
const MAX_FORWARDED_HOPS: usize = 32;

/// True when `ip` (IPv4-mapped IPv6 included) is in `trusted`.
pub fn is_trusted(ip: IpAddr, trusted: &[ipnet::IpNet]) -> bool {
    let canonical = ip.to_canonical();
    trusted
        .iter()
        .any(|net| net.contains(&canonical) || net.contains(&ip))
}

/// The client's address, canonical (`::ffff:10.0.0.1` is `10.0.0.1`). The peer is the client
/// unless it is a trusted proxy; then `X-Forwarded-For` is walked from the right: trusted hops
/// are skipped, the first untrusted address is the client. A bad element reached before it gives
/// [`UNIDENTIFIED_CLIENT`]; a chain of trusted hops only gives its left-most address; no header
/// at all leaves the proxy as the client (its own requests, e.g. health checks).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let mut left_most = None;
    let mut hops = 0usize;
    for value in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(text) = value.to_str() else {
            return UNIDENTIFIED_CLIENT;
        };
        for element in text.rsplit(',') {
            hops += 1;
            if hops > MAX_FORWARDED_HOPS {
                return UNIDENTIFIED_CLIENT;
            }
            match forwarded_element(element) {
                Some(ip) if is_trusted(ip, trusted) => left_most = Some(ip),
                Some(ip) => return ip,
                None => return UNIDENTIFIED_CLIENT,
            }
        }
    }
    left_most.unwrap_or(peer)
}

/// One `X-Forwarded-For` element as an address: `203.0.113.7`, `203.0.113.7:5555`,
/// `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:443`, each optionally in double quotes (as
/// RFC 7239 `Forwarded` writes them). `None` for anything else, `unknown` and obfuscated
/// identifiers included.
fn forwarded_element(element: &str) -> Option<IpAddr> {
    let text = element.trim_matches([' ', '\t']);
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    let ip = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        IpAddr::V6(inside.parse().ok()?)
    } else if let Ok(ip) = text.parse::<IpAddr>() {
        ip
    } else {
        let (host, port) = text.rsplit_once(':')?;
        if !is_port(port) {
            return None;
        }
        IpAddr::V4(host.parse().ok()?)
    };
    Some(ip.to_canonical())
}

fn is_port(text: &str) -> bool {
    (1..=5).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_digit())
        && text.parse::<u16>().is_ok()
}

/// The group an address is limited and frozen as: an IPv4 address alone, an IPv6 address by its
/// /64 (one subscriber or host usually holds a whole /64, so per-/128 state is trivially evaded).
pub fn address_group(ip: IpAddr) -> ipnet::IpNet {
    match ip.to_canonical() {
        IpAddr::V4(v4) => ipnet::IpNet::V4(ipnet::Ipv4Net::from(v4)),
        IpAddr::V6(v6) => ipnet::IpNet::V6(
            ipnet::Ipv6Net::new(v6, 64)
                .map(|n| n.trunc())
                .unwrap_or_else(|_| ipnet::Ipv6Net::from(v6)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn via_proxy(xff: &[&str]) -> IpAddr {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        client_ip(ip("10.2.2.2"), &h, &trusted)
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_peers() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.9, 10.1.1.1".parse().unwrap());
        assert_eq!(client_ip(ip("10.2.2.2"), &h, &trusted), ip("203.0.113.9"));
        assert_eq!(
            client_ip(ip("198.51.100.7"), &h, &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(ip("10.2.2.2"), &HeaderMap::new(), &trusted),
            ip("10.2.2.2")
        );
    }

    #[test]
    fn every_usual_forwarded_for_form_names_the_client() {
        for (xff, client) in [
            ("203.0.113.7", "203.0.113.7"),
            ("203.0.113.7:5555", "203.0.113.7"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("\"[2001:db8::1]:443\"", "2001:db8::1"),
            ("\"203.0.113.7\"", "203.0.113.7"),
            ("::ffff:203.0.113.7", "203.0.113.7"),
            ("  203.0.113.7 ,10.1.1.1:80", "203.0.113.7"),
            (
                "198.51.100.1, 203.0.113.7, [::ffff:10.1.1.1]:9",
                "203.0.113.7",
            ),
        ] {
            assert_eq!(via_proxy(&[xff]), ip(client), "{xff}");
        }
        assert_eq!(
            via_proxy(&["198.51.100.1", "203.0.113.7, 10.9.9.9"]),
            ip("203.0.113.7"),
            "several header lines form one chain"
        );
    }

    #[test]
    fn a_bad_element_never_makes_the_proxy_the_client() {
        for xff in [
            "not-an-ip",
            "unknown",
            "_hidden",
            "203.0.113.7:99999",
            "203.0.113.7:",
            "[2001:db8::1]x",
            "[2001:db8::1",
            "2001:db8::1:443:",
            "fe80::1%eth0",
            "",
            "203.0.113.7, unknown",
            "203.0.113.7, , 10.1.1.1",
        ] {
            assert_eq!(via_proxy(&[xff]), UNIDENTIFIED_CLIENT, "{xff:?}");
        }
        // The right-most untrusted valid element wins even with garbage further left.
        assert_eq!(via_proxy(&["garbage, 203.0.113.7"]), ip("203.0.113.7"));
        let long = vec!["10.1.1.1"; MAX_FORWARDED_HOPS + 1].join(",");
        assert_eq!(via_proxy(&[&long]), UNIDENTIFIED_CLIENT);
        assert_eq!(via_proxy(&["10.7.7.7, 10.1.1.1"]), ip("10.7.7.7"));
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.1"), &h, &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_ip(ip("::ffff:198.51.100.7"), &h, &trusted),
            ip("198.51.100.7"),
            "an untrusted mapped peer is the client, written as IPv4"
        );
    }

    #[test]
    fn ipv6_addresses_are_grouped_by_their_64() {
        assert_eq!(
            address_group(ip("2001:db8:1:2:aaaa::1")),
            address_group(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            address_group(ip("2001:db8:1:2::1")),
            address_group(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            address_group(ip("2001:db8:1:2::1")).to_string(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            address_group(ip("203.0.113.7")).to_string(),
            "203.0.113.7/32"
        );
        assert_eq!(
            address_group(ip("::ffff:203.0.113.7")),
            address_group(ip("203.0.113.7"))
        );
        assert_ne!(
            address_group(ip("203.0.113.7")),
            address_group(ip("203.0.113.8"))
        );
    }
}
