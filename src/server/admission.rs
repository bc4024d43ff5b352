//! Which accepted connections are served: at most `max_connections` in the whole process and
//! `max_connections_per_ip` per client address (peers in `trusted_proxies` exempt). One
//! [`Admission`] serves every accept loop, so under per-core threading the limits hold for the
//! process, not per worker.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::per_ip::{IpSlot, PerIp};
use crate::policy::ServerSettings;

/// The limits a connection is admitted under (`[server]`'s, read per connection, so a reload
/// changes them for the next one).
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits<'a> {
    max_connections: usize,
    max_connections_per_ip: usize,
    trusted_proxies: &'a [ipnet::IpNet],
}

impl<'a> Limits<'a> {
    pub(super) fn of(server: &'a ServerSettings) -> Self {
        Self {
            max_connections: server.max_connections,
            max_connections_per_ip: server.max_connections_per_ip,
            trusted_proxies: &server.trusted_proxies,
        }
    }
}

/// The connection budget shared by every accept loop.
#[derive(Debug, Default, Clone)]
pub(super) struct Admission {
    open: Arc<AtomicUsize>,
    per_ip: PerIp,
}

/// Why a connection was closed at once.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refused {
    MaxConnections,
    MaxConnectionsPerIp,
}

/// An admitted connection's share of the budget; given back on drop.
#[derive(Debug)]
pub(super) struct Admitted {
    open: Arc<AtomicUsize>,
    ip: Option<IpSlot>,
}

impl Admission {
    /// Admits a connection from `peer` under `server`'s limits.
    pub(super) fn admit(&self, peer: IpAddr, limits: Limits<'_>) -> Result<Admitted, Refused> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limits.max_connections).then_some(n + 1)
            })
            .map_err(|_| Refused::MaxConnections)?;
        let mut admitted = Admitted {
            open: self.open.clone(),
            ip: None,
        };
        // An IPv4 proxy reaching a dual-stack listener arrives as `::ffff:a.b.c.d`.
        let canonical = peer.to_canonical();
        if limits
            .trusted_proxies
            .iter()
            .any(|n| n.contains(&canonical))
        {
            return Ok(admitted);
        }
        // On refusal `admitted` drops here and gives its global slot back.
        admitted.ip = Some(
            self.per_ip
                .take(peer, limits.max_connections_per_ip)
                .ok_or(Refused::MaxConnectionsPerIp)?,
        );
        Ok(admitted)
    }

    #[cfg(test)]
    fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(max: usize, per_ip: usize, trusted: &[ipnet::IpNet]) -> Limits<'_> {
        Limits {
            max_connections: max,
            max_connections_per_ip: per_ip,
            trusted_proxies: trusted,
        }
    }

    #[test]
    fn the_process_wide_cap_holds_for_every_loop_sharing_it() {
        let limits = server(3, 3, &[]);
        let loop_a = Admission::default();
        let loop_b = loop_a.clone();
        let ip = |n: u8| IpAddr::from([192, 0, 2, n]);
        let a = loop_a.admit(ip(1), limits).unwrap();
        let _b = loop_b.admit(ip(2), limits).unwrap();
        let _c = loop_a.admit(ip(3), limits).unwrap();
        assert_eq!(
            loop_b.admit(ip(4), limits).unwrap_err(),
            Refused::MaxConnections
        );
        drop(a);
        assert!(loop_b.admit(ip(4), limits).is_ok());
    }

    #[test]
    fn a_refused_address_gives_its_global_slot_back() {
        let limits = server(10, 1, &[]);
        let admission = Admission::default();
        let ip = IpAddr::from([192, 0, 2, 7]);
        let _held = admission.admit(ip, limits).unwrap();
        assert_eq!(
            admission.clone().admit(ip, limits).unwrap_err(),
            Refused::MaxConnectionsPerIp
        );
        assert_eq!(admission.open(), 1);
    }

    #[test]
    fn trusted_proxies_skip_the_per_address_cap_not_the_global_one() {
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        let limits = server(2, 1, &trusted);
        let admission = Admission::default();
        let proxy = IpAddr::from([10, 1, 2, 3]);
        let _a = admission.admit(proxy, limits).unwrap();
        let _b = admission.admit(proxy, limits).unwrap();
        assert_eq!(
            admission.admit(proxy, limits).unwrap_err(),
            Refused::MaxConnections
        );
    }

    #[test]
    fn an_ipv4_proxy_on_a_dual_stack_listener_is_still_trusted() {
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        let limits = server(10, 1, &trusted);
        let admission = Admission::default();
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        let _a = admission.admit(mapped, limits).unwrap();
        assert!(admission.admit(mapped, limits).is_ok());
    }
}
