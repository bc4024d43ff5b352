//! Issue 9, deliverable 3: start-up returns a typed error with its source, its text what
//! `serve` has always printed.

mod support;

use std::error::Error as _;

use ordergate::vocab::error::StartError;
use support::{Keys, edit};

/// A policy in a fresh directory with its `from` line replaced by `to`.
fn policy_with(
    keys: &Keys,
    upstream: std::net::SocketAddr,
    (from, to): (&str, &str),
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    support::write_files(dir.path(), keys);
    let policy = edit(&support::base_policy(keys, upstream), &[(from, to)]);
    std::fs::write(dir.path().join("policy.toml"), policy).unwrap();
    dir
}

#[tokio::test]
async fn an_address_in_use_is_a_listen_error_with_the_io_error_as_its_source() {
    support::install();
    let keys = Keys::new();
    let upstream = support::FakeUpstream::start().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    for (key, is_admin) in [("\nlisten", false), ("\nadmin_listen", true)] {
        let from = format!("{key} = \"127.0.0.1:0\"\n");
        let to = format!("{key} = \"{addr}\"\n");
        let dir = policy_with(&keys, upstream.addr, (&from, &to));
        let path = dir.path().join("policy.toml");
        let loaded = ordergate::policy::load(&path).unwrap();
        let Err(error) = ordergate::server::start(loaded, &path).await else {
            panic!("started on an address in use");
        };
        let StartError::Listen { addr: a, admin, .. } = &error else {
            panic!("not a listen error: {error:?}");
        };
        assert_eq!((*a, *admin), (addr, is_admin));
        let source = error
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(
            source.map(std::io::Error::kind),
            Some(std::io::ErrorKind::AddrInUse)
        );
        let suffix = if is_admin { " (admin)" } else { "" };
        assert_eq!(
            error.to_string(),
            format!("cannot listen on {addr}{suffix}: {}", source.unwrap())
        );
    }
}

/// Per-core listeners use `SO_REUSEPORT` among themselves; a second gateway on the port of a
/// running one is still refused, not let in to share its connections.
#[tokio::test]
async fn a_second_gateway_cannot_join_the_port_of_a_running_one() {
    support::install();
    let keys = Keys::new();
    let upstream = support::FakeUpstream::start().await;
    let first_dir = policy_with(&keys, upstream.addr, ("\n", "\n"));
    let first_path = first_dir.path().join("policy.toml");
    let first = ordergate::policy::load(&first_path).unwrap();
    let running = ordergate::server::start(first, &first_path).await.unwrap();
    let addr = running.addr;
    let dir = policy_with(
        &keys,
        upstream.addr,
        (
            "\nlisten = \"127.0.0.1:0\"\n",
            &format!("\nlisten = \"{addr}\"\n"),
        ),
    );
    let path = dir.path().join("policy.toml");
    let second = ordergate::policy::load(&path).unwrap();
    let Err(error) = ordergate::server::start(second, &path).await else {
        panic!("a second gateway started on {addr}");
    };
    assert!(
        matches!(&error, StartError::Listen { addr: a, admin: false, .. } if *a == addr),
        "{error:?}"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn a_refused_reload_is_a_policy_error_listing_each_located_problem() {
    support::install();
    let keys = Keys::new();
    let upstream = support::FakeUpstream::start().await;
    let dir = policy_with(&keys, upstream.addr, ("\n", "\n"));
    let path = dir.path().join("policy.toml");
    let gateway =
        ordergate::gateway::Gateway::start(ordergate::policy::load(&path).unwrap(), &path)
            .await
            .unwrap();
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        edit(&good, &[("max_in_flight = 64", "max_in_flight = \"many\"")]),
    )
    .unwrap();
    let Err(error) = gateway.reload().await else {
        panic!("an invalid policy was reloaded");
    };
    let StartError::Policy { problems } = &error else {
        panic!("not a policy error: {error:?}");
    };
    assert!(!problems.is_empty());
    assert!(
        problems.iter().all(|p| p.contains("policy.toml:")),
        "located: {problems:?}"
    );
    assert_eq!(error.to_string(), problems.join("\n"));
}
