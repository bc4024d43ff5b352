//! IP allowlists (CONTRACT §7.2): CIDR blocks parsed strictly once at load time, so a typo or a
//! block with host bits set (`10.0.0.1/8`, which someone meant as one host or as `10.0.0.0/8`)
//! stops the policy instead of admitting more, or less, than was written. IPv4-mapped IPv6
//! addresses and blocks are the IPv4 ones, so a dual-stack listener cannot be used to step
//! around an IPv4 entry.

use std::net::IpAddr;

use ipnet::IpNet;

/// Longest list the policy may give one credential, role, route or server (a list is scanned
/// per request; longer lists belong in a firewall).
pub const MAX_ENTRIES: usize = 1024;

/// A non-empty list of CIDR blocks; an address is admitted when any block contains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpAllowList {
    nets: Vec<IpNet>,
}

impl IpAllowList {
    /// The list of `nets`; `None` for an empty list (which means "any address").
    pub fn new(nets: Vec<IpNet>) -> Option<Self> {
        (!nets.is_empty()).then_some(Self { nets })
    }

    /// True when `ip` (canonicalised: `::ffff:203.0.113.7` is `203.0.113.7`) is in a block.
    pub fn admits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The blocks, canonical, as parsed.
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }
}

/// One list entry: a CIDR block (`203.0.113.0/24`, `2001:db8:42::/48`) or a single address
/// (`/32` or `/128`). Refused: anything else, and a block whose address has bits set past its
/// prefix. An IPv4-mapped IPv6 block (`::ffff:10.0.0.0/104`) is returned as its IPv4 block.
pub fn parse_entry(text: &str) -> Result<IpNet, String> {
    let net = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => match text.parse::<IpAddr>() {
            Ok(ip) => IpNet::from(ip),
            Err(_) => {
                return Err(format!(
                    "`{text}` is not a CIDR block (e.g. `203.0.113.0/24`, `2001:db8::/48`) or an address"
                ));
            }
        },
    };
    if net.network() != net.addr() {
        return Err(format!(
            "`{text}` has host bits set past its prefix; the block is `{}`",
            net.trunc()
        ));
    }
    Ok(canonical(net))
}

/// True for a block that admits every address of its family (`0.0.0.0/0`, `::/0`): allowed,
/// but `ordergate check` warns, since such an entry makes the list pointless.
pub fn admits_everything(net: &IpNet) -> bool {
    net.prefix_len() == 0
}

/// `::ffff:a.b.c.d/n` with n ≥ 96 as `a.b.c.d/(n−96)`; every other block as it is.
fn canonical(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> IpAllowList {
        IpAllowList::new(entries.iter().map(|e| parse_entry(e).unwrap()).collect()).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn blocks_and_single_addresses_admit_what_they_name() {
        let l = list(&["203.0.113.0/24", "2001:db8:42::/48", "127.0.0.2"]);
        assert!(l.admits(ip("203.0.113.255")));
        assert!(!l.admits(ip("203.0.114.0")));
        assert!(l.admits(ip("2001:db8:42:ffff::1")));
        assert!(!l.admits(ip("2001:db8:43::1")));
        assert!(l.admits(ip("127.0.0.2")));
        assert!(!l.admits(ip("127.0.0.3")));
        assert!(IpAllowList::new(Vec::new()).is_none());
    }

    #[test]
    fn ipv4_mapped_ipv6_is_ipv4() {
        let l = list(&["203.0.113.0/24"]);
        assert!(l.admits(ip("::ffff:203.0.113.7")));
        assert!(!l.admits(ip("::ffff:198.51.100.7")));
        let mapped = list(&["::ffff:10.0.0.0/104"]);
        assert_eq!(mapped.nets()[0].to_string(), "10.0.0.0/8");
        assert!(mapped.admits(ip("10.1.2.3")));
        assert!(mapped.admits(ip("::ffff:10.1.2.3")));
        assert!(!mapped.admits(ip("11.0.0.1")));
        // An IPv4-compatible or other IPv6 address is not an IPv4 one.
        assert!(!l.admits(ip("2001:db8::cb00:7107")));
    }

    #[test]
    fn malformed_entries_and_host_bits_are_refused() {
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/8 ",
            "any",
            "2001:db8::/129",
            "10.0.0.0-10.0.0.9",
        ] {
            assert!(parse_entry(bad).is_err(), "{bad:?}");
        }
        let e = parse_entry("10.0.0.1/8").unwrap_err();
        assert!(e.contains("host bits") && e.contains("10.0.0.0/8"), "{e}");
        assert!(parse_entry("2001:db8::1/48").is_err());
        assert!(parse_entry("::ffff:10.0.0.1/104").is_err());
    }

    proptest::proptest! {
        /// Any text either fails or gives a block that is its own network and parses back to
        /// itself; an accepted block admits its own address.
        #[test]
        fn parsing_never_panics_and_accepted_blocks_are_canonical(text in "[0-9a-f:./ ]{0,24}") {
            if let Ok(net) = parse_entry(&text) {
                proptest::prop_assert_eq!(net.network(), net.addr());
                proptest::prop_assert_eq!(parse_entry(&net.to_string()), Ok(net));
                let list = IpAllowList::new(vec![net]).unwrap();
                proptest::prop_assert!(list.admits(net.addr()));
            }
        }
    }

    #[test]
    fn whole_families_are_recognised() {
        assert!(admits_everything(&parse_entry("0.0.0.0/0").unwrap()));
        assert!(admits_everything(&parse_entry("::/0").unwrap()));
        assert!(admits_everything(
            &parse_entry("::ffff:0.0.0.0/96").unwrap()
        ));
        assert!(!admits_everything(&parse_entry("0.0.0.0/1").unwrap()));
    }
}
