//! Measures the memory the local rate-limit state costs per principal and per client IP, and
//! shows the sweep returning it. `cargo run --release --example bucket_memory`

use std::sync::Arc;

use ordergate::stage::rate_limit::{BucketRef, BucketSpec, LocalBuckets};
use ordergate::vocab::address::address_group;
use ordergate::vocab::principal_kind::PrincipalKind;
use ordergate::vocab::units::parse_rate;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = status
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn bucket(id: &str, rate: &str, burst: u32) -> BucketRef {
    BucketRef {
        id: Arc::from(id),
        spec: BucketSpec {
            rate: parse_rate(rate).unwrap(),
            burst: std::num::NonZeroU32::new(burst).unwrap(),
        },
    }
}

fn main() {
    const N: u64 = 1_000_000;
    let local = LocalBuckets::default();
    let buckets = [
        bucket("route:customer-orders:120/60000ms:20", "120/min", 20),
        bucket("principal:1000/60000ms:100", "1000/min", 100),
    ];
    let ip_bucket = bucket("failed-auth", "30/min", 10).spec;
    let now = 1_000_000_000;
    let before = rss_bytes();
    for n in 0..N {
        local.check(
            PrincipalKind::Jwt,
            &Arc::from(format!("customer-{n:08}")),
            &buckets,
            now,
        );
    }
    let principals = rss_bytes();
    for n in 0..N {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + n as u32);
        local.check_ip(address_group(ip.into()), &ip_bucket, now);
    }
    let ips = rss_bytes();
    println!(
        "{} principals with two buckets each: {:.0} bytes each",
        N,
        (principals - before) as f64 / N as f64
    );
    println!(
        "{} client IPs with a failed-auth bucket: {:.0} bytes each",
        N,
        (ips - principals) as f64 / N as f64
    );
    // Two minutes later every bucket is full again, which is what a missing bucket means: the
    // sweep drops them, and a second wave of as many new callers reuses the memory.
    let later = now + 120 * 1_000_000_000;
    let left = local.sweep(later);
    for n in 0..N {
        local.check(
            PrincipalKind::Jwt,
            &Arc::from(format!("second-wave-{n:08}")),
            &buckets,
            later,
        );
        let ip = std::net::Ipv4Addr::from(0x0b00_0000 + n as u32);
        local.check_ip(address_group(ip.into()), &ip_bucket, later);
    }
    println!(
        "after the sweep: {left} entries left; a second wave of {N} principals and {N} IPs: RSS {:.0} MiB (peak of the first wave {:.0} MiB)",
        rss_bytes() as f64 / 1048576.0,
        ips as f64 / 1048576.0
    );
}
