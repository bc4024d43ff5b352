//! `max_connections_per_ip`: one client address cannot take the whole `max_connections` budget
//! (each held connection can hold `max_concurrent_streams` requests, each an audit queue slot).
//! Counted on the TCP peer; peers in `trusted_proxies` are exempt, since every client behind
//! them shares their address. The table only holds addresses with an open connection, so it is
//! bounded by `max_connections`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

/// Open connections per client address (locked once per connection, never per request).
#[derive(Debug, Default, Clone)]
pub(super) struct PerIp {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One open connection of `ip`; released on drop.
#[derive(Debug)]
pub(super) struct IpSlot {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl PerIp {
    /// Takes a slot for `ip` if it holds fewer than `max` connections.
    pub(super) fn take(&self, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock();
        let count = open.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            open: self.open.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock();
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_at_most_max_and_frees_on_drop() {
        let per_ip = PerIp::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let a = per_ip.take(ip, 2).unwrap();
        let _b = per_ip.take(ip, 2).unwrap();
        assert!(per_ip.take(ip, 2).is_none());
        assert!(per_ip.take("192.0.2.8".parse().unwrap(), 2).is_some());
        drop(a);
        assert!(per_ip.take(ip, 2).is_some());
    }

    #[test]
    fn ipv4_mapped_ipv6_counts_as_the_same_client() {
        let per_ip = PerIp::default();
        let _v4 = per_ip.take("192.0.2.7".parse().unwrap(), 1).unwrap();
        assert!(
            per_ip
                .take("::ffff:192.0.2.7".parse().unwrap(), 1)
                .is_none()
        );
    }

    #[test]
    fn the_table_forgets_addresses_without_connections() {
        let per_ip = PerIp::default();
        let slot = per_ip.take("192.0.2.7".parse().unwrap(), 1).unwrap();
        drop(slot);
        assert!(per_ip.open.lock().is_empty());
    }
}
