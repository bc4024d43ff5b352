//! `[server]` and `[server.tls]`: listeners, limits, timeouts, the admin token and a ready
//! rustls configuration (certificate, key, TLS versions, client verification).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;

use crate::config::files;
use crate::config::problems::KeyPath;
use crate::config::raw;
use crate::policy::compile::Ctx;
use crate::policy::{ClientAuth, ServerSettings, TlsSettings};
use crate::vocab::cert_expiry;
use crate::vocab::secret::Secret;
use crate::vocab::worker::Threading;

fn socket_addr(ctx: &mut Ctx<'_>, at: &KeyPath, text: &str) -> Option<SocketAddr> {
    match text.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            ctx.bad(
                at,
                format!("`{text}` is not IP:PORT (e.g. 127.0.0.1:8443 or [::1]:8443)"),
            );
            None
        }
    }
}

/// `[server]`; `None` when `listen` is unusable.
pub(super) fn compile(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    raw: &raw::Server,
) -> Option<ServerSettings> {
    let listen = socket_addr(ctx, &at.k("listen"), &raw.listen);
    let admin_listen = raw
        .admin_listen
        .as_deref()
        .and_then(|a| socket_addr(ctx, &at.k("admin_listen"), a));
    let admin_token = admin_token(ctx, at, raw, admin_listen);
    let max_connections =
        ctx.positive(&at.k("max_connections"), raw.max_connections, 10_000) as usize;
    let max_in_flight = ctx.positive(&at.k("max_in_flight"), raw.max_in_flight, 2_048) as usize;
    let header_read_timeout = ctx.duration(
        &at.k("header_read_timeout"),
        raw.header_read_timeout.as_deref(),
        Duration::from_secs(5),
    );
    let request_timeout = ctx.duration(
        &at.k("request_timeout"),
        raw.request_timeout.as_deref(),
        Duration::from_secs(30),
    );
    let shutdown_grace = ctx.duration(
        &at.k("shutdown_grace"),
        raw.shutdown_grace.as_deref(),
        Duration::from_secs(30),
    );
    let max_connections_per_ip = ctx.positive(
        &at.k("max_connections_per_ip"),
        raw.max_connections_per_ip,
        64,
    ) as usize;
    let max_concurrent_streams = ctx.positive(
        &at.k("max_concurrent_streams"),
        raw.max_concurrent_streams,
        100,
    );
    let idle_timeout = ctx.duration(
        &at.k("idle_timeout"),
        raw.idle_timeout.as_deref(),
        Duration::from_secs(60),
    );
    let send_stall_timeout = ctx.duration(
        &at.k("send_stall_timeout"),
        raw.send_stall_timeout.as_deref(),
        Duration::from_secs(10),
    );
    let max_header_bytes = ctx.size(
        &at.k("max_header_bytes"),
        raw.max_header_bytes.as_deref(),
        16 * 1024,
    );
    if max_header_bytes < 1024 {
        ctx.bad(&at.k("max_header_bytes"), "must be at least 1KiB");
    }
    let max_request_body = ctx.size(
        &at.k("max_request_body"),
        raw.max_request_body.as_deref(),
        64 * 1024,
    );
    for (key, d) in [
        ("header_read_timeout", header_read_timeout),
        ("request_timeout", request_timeout),
        ("idle_timeout", idle_timeout),
        ("send_stall_timeout", send_stall_timeout),
    ] {
        if d.is_zero() {
            ctx.bad(&at.k(key), "must be longer than 0s");
        }
    }
    let workers = workers(ctx, &at.k("workers"), raw.workers);
    let threading = ctx
        .choice(
            &at.k("threading"),
            raw.threading.as_ref(),
            raw::Threading::PerCore,
            |other| format!("`{other}` must be \"per-core\" or \"shared\""),
        )
        .map_or(Threading::PerCore, |mode| match mode {
            raw::Threading::PerCore => Threading::PerCore,
            raw::Threading::Shared => Threading::Shared,
        });
    let mut trusted_proxies = Vec::new();
    for (i, cidr) in raw.trusted_proxies.iter().enumerate() {
        match cidr
            .parse::<ipnet::IpNet>()
            .or_else(|_| cidr.parse::<IpAddr>().map(ipnet::IpNet::from))
        {
            Ok(net) => trusted_proxies.push(net),
            Err(_) => ctx.bad(
                &at.k("trusted_proxies").i(i),
                format!("`{cidr}` is not a CIDR (e.g. 10.0.0.0/8) or an IP"),
            ),
        }
    }
    let allow_ips = super::ip_lists::compile(ctx, &at.k("allow_ips"), &raw.allow_ips);
    let tls = match (&raw.tls, raw.insecure_plaintext) {
        (_, true) => {
            if listen.is_some_and(|l| !l.ip().is_loopback()) {
                ctx.bad(
                    &at.k("insecure_plaintext"),
                    "plain HTTP is allowed only when `listen` is a loopback address",
                );
            }
            None
        }
        (Some(tls), false) => tls_settings(ctx, &at.k("tls"), tls),
        (None, false) => {
            ctx.bad(
                at,
                "missing [server.tls] (plain HTTP needs `insecure_plaintext = true` on loopback)",
            );
            None
        }
    };
    Some(ServerSettings {
        listen: listen?,
        admin_listen,
        admin_token,
        max_connections,
        max_in_flight,
        header_read_timeout,
        request_timeout,
        max_header_bytes: usize::try_from(max_header_bytes).unwrap_or(usize::MAX),
        max_request_body,
        shutdown_grace,
        max_connections_per_ip,
        max_concurrent_streams,
        idle_timeout,
        send_stall_timeout,
        trusted_proxies,
        allow_ips,
        workers,
        threading,
        tls,
    })
}

/// The most worker threads a policy may ask for: more than any machine this runs on has cores,
/// few enough that a typo cannot exhaust the process's threads.
const MAX_WORKERS: u32 = 1024;

/// `workers`: default, the cores this process may use (its CPU affinity and cgroup quota, as
/// `std::thread::available_parallelism` reports them), else 1.
fn workers(ctx: &mut Ctx<'_>, at: &KeyPath, raw: Option<u32>) -> usize {
    let default = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    match raw {
        None => default,
        Some(n) if n > MAX_WORKERS => {
            ctx.bad(at, format!("must be at most {MAX_WORKERS}"));
            default
        }
        Some(n) => ctx.positive(at, Some(n), 1) as usize,
    }
}

/// The provider's cipher suites in the order `names` gives (IANA names such as
/// `TLS_AES_128_GCM_SHA256` or `TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256`; rustls's own spelling
/// `TLS13_AES_128_GCM_SHA256` is accepted too). `None` when a name is unknown or repeated, or the
/// list is empty.
fn cipher_suites(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    names: &[String],
    offered: &[rustls::SupportedCipherSuite],
) -> Option<Vec<rustls::SupportedCipherSuite>> {
    if names.is_empty() {
        ctx.bad(
            at,
            "name at least one cipher suite (or leave the key out for rustls's list)",
        );
        return None;
    }
    let mut chosen: Vec<rustls::SupportedCipherSuite> = Vec::with_capacity(names.len());
    let mut ok = true;
    for (i, name) in names.iter().enumerate() {
        match offered
            .iter()
            .find(|s| suite_names(s).iter().any(|n| n == name))
        {
            Some(suite) if chosen.iter().any(|c| c.suite() == suite.suite()) => {
                ctx.bad(&at.i(i), format!("`{name}` is listed twice"));
                ok = false;
            }
            Some(suite) => chosen.push(*suite),
            None => {
                let known: Vec<String> = offered
                    .iter()
                    .filter_map(|s| suite_names(s).into_iter().next())
                    .collect();
                ctx.bad(
                    &at.i(i),
                    format!(
                        "`{name}` is not a cipher suite ordergate offers (one of: {})",
                        known.join(", ")
                    ),
                );
                ok = false;
            }
        }
    }
    ok.then_some(chosen)
}

/// A suite's IANA name first, then rustls's spelling where it differs.
fn suite_names(suite: &rustls::SupportedCipherSuite) -> Vec<String> {
    let Some(rustls_name) = suite.suite().as_str() else {
        return Vec::new();
    };
    match rustls_name.strip_prefix("TLS13_") {
        Some(rest) => vec![format!("TLS_{rest}"), rustls_name.to_owned()],
        None => vec![rustls_name.to_owned()],
    }
}

/// The admin token (at least 32 bytes, from the environment or a file). Without one the admin
/// API (unfreeze included) is unauthenticated, so `admin_listen` must then be a loopback address.
fn admin_token(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    raw: &raw::Server,
    admin_listen: Option<SocketAddr>,
) -> Option<Secret> {
    let key = if raw.admin_token_env.is_some() {
        "admin_token_env"
    } else {
        "admin_token_file"
    };
    let token = files::secret(
        ctx.base,
        raw.admin_token_env.as_deref(),
        raw.admin_token_file.as_deref(),
    )
    .map_err(|e| ctx.bad(&at.k(key), e))
    .ok()
    .flatten();
    if let Some(Err(e)) = token
        .as_ref()
        .map(|t| crate::vocab::secret::long_enough(t.expose().as_bytes(), "the admin token"))
    {
        ctx.bad(&at.k(key), e);
        return None;
    }
    let configured = raw.admin_token_env.is_some() || raw.admin_token_file.is_some();
    if !configured && admin_listen.is_some_and(|a| !a.ip().is_loopback()) {
        ctx.bad(
            &at.k("admin_listen"),
            "a non-loopback `admin_listen` needs `admin_token_env` or `admin_token_file` (the admin API can unfreeze)",
        );
    }
    token
}

fn tls_settings(ctx: &mut Ctx<'_>, at: &KeyPath, raw: &raw::Tls) -> Option<TlsSettings> {
    let certs = files::certificates(&files::resolve(ctx.base, &raw.cert))
        .map_err(|e| ctx.bad(&at.k("cert"), e))
        .ok();
    let key = files::private_key(&files::resolve(ctx.base, &raw.key))
        .map_err(|e| ctx.bad(&at.k("key"), e))
        .ok();
    let min_version = ctx.choice(
        &at.k("min_version"),
        raw.min_version.as_ref(),
        raw::MinVersion::Tls12,
        |other| format!("`{other}` is not a TLS version ordergate offers (\"1.2\" or \"1.3\")"),
    );
    let versions: &[&rustls::SupportedProtocolVersion] = match min_version {
        Some(raw::MinVersion::Tls12) => &[&rustls::version::TLS13, &rustls::version::TLS12],
        Some(raw::MinVersion::Tls13) | None => &[&rustls::version::TLS13],
    };
    let client_auth = ctx
        .choice(
            &at.k("client_auth"),
            raw.client_auth.as_ref(),
            raw::ClientAuth::Off,
            |other| format!("`{other}` must be \"off\", \"optional\" or \"required\""),
        )
        .map_or(ClientAuth::Off, |mode| match mode {
            raw::ClientAuth::Off => ClientAuth::Off,
            raw::ClientAuth::Optional => ClientAuth::Optional,
            raw::ClientAuth::Required => ClientAuth::Required,
        });
    let mut provider = crate::vocab::tls_client::provider();
    // A bad list is reported and the section fails, after the keys below are checked too.
    let listed = raw
        .cipher_suites
        .as_ref()
        .map(|names| cipher_suites(ctx, &at.k("cipher_suites"), names, &provider.cipher_suites));
    let suites_bad = matches!(listed, Some(None));
    let suites = listed.flatten();
    if let Some(suites) = &suites {
        let mut restricted = (*provider).clone();
        restricted.cipher_suites = suites.clone();
        provider = Arc::new(restricted);
    }
    let cert_not_after = certs
        .as_ref()
        .and_then(|chain| chain.first())
        .and_then(cert_expiry::not_after);
    let mut client_ca_not_after = None;
    let verifier = match (client_auth, raw.client_ca.as_deref()) {
        (ClientAuth::Off, _) => None,
        (_, None | Some("")) => {
            ctx.bad(&at.k("client_auth"), "mutual TLS needs `client_ca`");
            None
        }
        (mode, Some(ca)) => {
            let ca_certs = files::certificates(&files::resolve(ctx.base, ca))
                .map_err(|e| ctx.bad(&at.k("client_ca"), e))
                .ok()?;
            client_ca_not_after = cert_expiry::earliest_not_after(&ca_certs);
            let mut roots = rustls::RootCertStore::empty();
            for cert in ca_certs {
                if let Err(e) = roots.add(cert) {
                    ctx.bad(&at.k("client_ca"), format!("CA certificate rejected: {e}"));
                }
            }
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let builder = if mode == ClientAuth::Optional {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            match builder.build() {
                Ok(v) => Some(v),
                Err(e) => {
                    ctx.bad(
                        &at.k("client_ca"),
                        format!("cannot verify clients with this CA: {e}"),
                    );
                    None
                }
            }
        }
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| {
            let key = if suites.is_some() {
                "cipher_suites"
            } else {
                "min_version"
            };
            ctx.bad(
                &at.k(key),
                format!("no cipher suite listed serves the TLS versions offered: {e}"),
            );
        })
        .ok()?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None if client_auth != ClientAuth::Off => return None,
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs?, key?)
        .map_err(|e| {
            ctx.bad(
                &at.k("key"),
                format!("certificate and key do not form a usable pair: {e}"),
            )
        })
        .ok()?;
    if suites_bad {
        return None;
    }
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // A listed order is the server's preference: the client's order does not pick the suite.
    config.ignore_client_order = suites.is_some();
    Some(TlsSettings {
        config: Arc::new(config),
        client_auth,
        cert_not_after,
        client_ca_not_after,
    })
}

#[cfg(test)]
mod tests {
    use crate::policy::ClientAuth;
    use crate::policy::fixtures::{check, compiled, problems_in};

    #[test]
    fn bad_server_values_are_reported_at_their_keys() {
        check(&[
            (
                r#"[server]
listen = "localhost"
insecure_plaintext = true
"#,
                &["2:10: `localhost` is not IP:PORT (e.g. 127.0.0.1:8443 or [::1]:8443)"],
            ),
            (
                r#"[server]
listen = "127.0.0.1:8080"
insecure_plaintext = true
max_connections = 0
max_in_flight = 0
max_connections_per_ip = 0
max_concurrent_streams = 0
"#,
                &[
                    "4:19: must be at least 1",
                    "5:17: must be at least 1",
                    "6:26: must be at least 1",
                    "7:26: must be at least 1",
                ],
            ),
            (
                r#"[server]
listen = "127.0.0.1:8080"
insecure_plaintext = true
header_read_timeout = "0s"
request_timeout = "5 minutes"
idle_timeout = "0ms"
send_stall_timeout = "10"
shutdown_grace = "soon"
"#,
                &[
                    "4:23: must be longer than 0s",
                    "5:19: duration `5 minutes` has unknown unit ` minutes` (use ms, s, m, h, d)",
                    "6:16: must be longer than 0s",
                    "7:22: duration `10` needs a unit (ms, s, m, h, d)",
                    "8:18: duration `soon` must start with a whole number",
                ],
            ),
            (
                r#"[server]
listen = "127.0.0.1:8080"
insecure_plaintext = true
max_header_bytes = "512"
max_request_body = "lots"
trusted_proxies = ["10.0.0.0/8", "nope", "::1"]
"#,
                &[
                    "4:20: must be at least 1KiB",
                    "5:20: size `lots` must start with a whole number",
                    "6:34: `nope` is not a CIDR (e.g. 10.0.0.0/8) or an IP",
                ],
            ),
            (
                r#"[server]
listen = "0.0.0.0:8080"
insecure_plaintext = true
"#,
                &["3:22: plain HTTP is allowed only when `listen` is a loopback address"],
            ),
            (
                r#"[server]
listen = "127.0.0.1:8080"
"#,
                &[
                    "1:1: missing [server.tls] (plain HTTP needs `insecure_plaintext = true` on loopback)",
                ],
            ),
            (
                r#"[server]
listen = "127.0.0.1:8080"
insecure_plaintext = true
admin_listen = "0.0.0.0:9090"
"#,
                &[
                    "4:16: a non-loopback `admin_listen` needs `admin_token_env` or `admin_token_file` (the admin API can unfreeze)",
                ],
            ),
            (
                r#"[server]
listen = "127.0.0.1:8080"
insecure_plaintext = true
admin_listen = "127.0.0.1:9090"
admin_token_env = "ORDERGATE_TEST_VARIABLE_THAT_IS_NEVER_SET"
"#,
                &[
                    "5:19: environment variable `ORDERGATE_TEST_VARIABLE_THAT_IS_NEVER_SET` is not set",
                ],
            ),
            (
                r#"[server]
listen = "127.0.0.1:8080"
insecure_plaintext = true
admin_token_env = "X"
admin_token_file = "token"
"#,
                &["4:19: give the secret in an environment variable or a file, not both"],
            ),
        ]);
    }

    #[test]
    fn bad_tls_values_are_reported_at_their_keys() {
        check(&[
            (
                r#"[server]
listen = "127.0.0.1:8443"
[server.tls]
cert = "cert.pem"
key = "key.pem"
min_version = "1.1"
client_auth = "maybe"
"#,
                &[
                    "4:8: /nonexistent-ordergate/cert.pem: No such file or directory (os error 2)",
                    "5:7: /nonexistent-ordergate/key.pem: No such file or directory (os error 2)",
                    "6:15: `1.1` is not a TLS version ordergate offers (\"1.2\" or \"1.3\")",
                    "7:15: `maybe` must be \"off\", \"optional\" or \"required\"",
                ],
            ),
            (
                r#"[server]
listen = "127.0.0.1:8443"
[server.tls]
cert = "cert.pem"
key = "key.pem"
min_version = "1.3"
client_auth = "required"
"#,
                &[
                    "4:8: /nonexistent-ordergate/cert.pem: No such file or directory (os error 2)",
                    "5:7: /nonexistent-ordergate/key.pem: No such file or directory (os error 2)",
                    "7:15: mutual TLS needs `client_ca`",
                ],
            ),
            (
                r#"[server]
listen = "127.0.0.1:8443"
[server.tls]
cert = "cert.pem"
key = "key.pem"
client_auth = "optional"
client_ca = "ca.pem"
"#,
                &[
                    "4:8: /nonexistent-ordergate/cert.pem: No such file or directory (os error 2)",
                    "5:7: /nonexistent-ordergate/key.pem: No such file or directory (os error 2)",
                    "7:13: /nonexistent-ordergate/ca.pem: No such file or directory (os error 2)",
                ],
            ),
        ]);
    }

    /// A choice key of the wrong type fails reading as a string key always has: the section is
    /// dropped and reported where the value is.
    #[test]
    fn a_choice_that_is_not_a_string_fails_the_section() {
        check(&[(
            r#"[server]
listen = "127.0.0.1:8443"
[server.tls]
cert = "cert.pem"
key = "key.pem"
min_version = 1.3
"#,
            &[
                "1:1: missing section [server]",
                "6:15: invalid type: floating point `1.3`, expected a string",
            ],
        )]);
    }

    #[test]
    fn a_short_admin_token_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "too short").unwrap();
        let first = r#"[server]
listen = "127.0.0.1:8080"
insecure_plaintext = true
admin_token_file = "token"
"#;
        assert_eq!(
            problems_in(dir.path(), first),
            "4:20: the admin token must be at least 32 bytes"
        );
        std::fs::write(dir.path().join("token"), "a".repeat(32)).unwrap();
        assert_eq!(problems_in(dir.path(), first), "");
    }

    fn write_cert(dir: &std::path::Path) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    }

    fn tls_policy(extra: &str) -> String {
        format!(
            "[server]\nlisten = \"127.0.0.1:8443\"\n[server.tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n{extra}"
        )
    }

    #[test]
    fn listed_cipher_suites_are_offered_in_the_servers_order() {
        let dir = tempfile::tempdir().unwrap();
        write_cert(dir.path());
        let names = |tls: &crate::policy::TlsSettings| -> Vec<&'static str> {
            tls.config
                .crypto_provider()
                .cipher_suites
                .iter()
                .filter_map(|s| s.suite().as_str())
                .collect()
        };
        let listed = compiled(
            dir.path(),
            &tls_policy(
                "cipher_suites = [\"TLS_AES_128_GCM_SHA256\", \"TLS13_CHACHA20_POLY1305_SHA256\", \"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\"]\n",
            ),
        )
        .server
        .tls
        .unwrap();
        assert_eq!(
            names(&listed),
            [
                "TLS13_AES_128_GCM_SHA256",
                "TLS13_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
            ]
        );
        assert!(listed.config.ignore_client_order);
        // Without the key: rustls's whole list, and the client's order.
        let default = compiled(dir.path(), &tls_policy("")).server.tls.unwrap();
        assert!(names(&default).len() > 3);
        assert!(!default.config.ignore_client_order);
    }

    #[test]
    fn bad_cipher_suites_are_reported_at_their_place() {
        let dir = tempfile::tempdir().unwrap();
        write_cert(dir.path());
        let unknown = problems_in(
            dir.path(),
            &tls_policy(
                "cipher_suites = [\"TLS_AES_128_GCM_SHA256\", \"TLS_RSA_WITH_RC4_128_SHA\", \"TLS_AES_128_GCM_SHA256\"]\n",
            ),
        );
        let lines: Vec<&str> = unknown.lines().collect();
        assert_eq!(lines.len(), 2, "{unknown}");
        assert!(
            lines[0].starts_with(
                "6:44: `TLS_RSA_WITH_RC4_128_SHA` is not a cipher suite ordergate offers (one of: TLS_AES_256_GCM_SHA384, "
            ),
            "{unknown}"
        );
        assert_eq!(lines[1], "6:72: `TLS_AES_128_GCM_SHA256` is listed twice");
        assert_eq!(
            problems_in(dir.path(), &tls_policy("cipher_suites = []\n")),
            "6:17: name at least one cipher suite (or leave the key out for rustls's list)"
        );
        // TLS 1.3 only, but only a TLS 1.2 suite: nothing could be negotiated.
        let unusable = problems_in(
            dir.path(),
            &tls_policy(
                "min_version = \"1.3\"\ncipher_suites = [\"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\"]\n",
            ),
        );
        assert!(
            unusable.starts_with("7:17: no cipher suite listed serves the TLS versions offered"),
            "{unusable}"
        );
    }

    #[test]
    fn workers_default_to_the_usable_cores_and_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let plain = "[server]\nlisten = \"127.0.0.1:8080\"\ninsecure_plaintext = true\n";
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(compiled(dir.path(), plain).server.workers, cores);
        let three = format!("{plain}workers = 3\n");
        assert_eq!(compiled(dir.path(), &three).server.workers, 3);
        check(&[(
            &format!("{plain}workers = 0\n"),
            &["4:11: must be at least 1"],
        )]);
        check(&[(
            &format!("{plain}workers = 5000\n"),
            &["4:11: must be at most 1024"],
        )]);
    }

    #[test]
    fn threading_defaults_to_per_core_with_a_pool_per_worker() {
        let dir = tempfile::tempdir().unwrap();
        let plain =
            "[server]\nlisten = \"127.0.0.1:8080\"\ninsecure_plaintext = true\nworkers = 3\n";
        let per_core = compiled(dir.path(), plain);
        assert_eq!(per_core.server.threading, super::Threading::PerCore);
        // One pool per worker and one for every other thread, on every upstream.
        assert_eq!(per_core.server.upstream_pools(), 4);
        assert_eq!(per_core.upstream.pools, 4);
        let shared = compiled(dir.path(), &format!("{plain}threading = \"shared\"\n"));
        assert_eq!(shared.server.threading, super::Threading::Shared);
        assert_eq!(shared.upstream.pools, 1);
        check(&[(
            &format!("{plain}threading = \"per-thread\"\n"),
            &["5:13: `per-thread` must be \"per-core\" or \"shared\""],
        )]);
    }

    #[test]
    fn a_reloaded_policy_keeps_the_running_threads_and_their_pools() {
        let dir = tempfile::tempdir().unwrap();
        let plain = "[server]\nlisten = \"127.0.0.1:8080\"\ninsecure_plaintext = true\n";
        let running = compiled(dir.path(), &format!("{plain}workers = 3\n"));
        let mut reloaded = compiled(
            dir.path(),
            &format!("{plain}workers = 1\nthreading = \"shared\"\n"),
        );
        assert_eq!(reloaded.upstream.pools, 1);
        reloaded.keep_threads_of(&running);
        assert_eq!(
            (reloaded.server.workers, reloaded.server.threading),
            (3, super::Threading::PerCore)
        );
        assert_eq!(reloaded.upstream.pools, 4);
        assert!(reloaded.upstreams.iter().all(|(_, u)| u.pools == 4));
    }

    #[test]
    fn every_tls_choice_compiles_to_its_setting() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        for (choices, want) in [
            ("", ClientAuth::Off),
            (
                "min_version = \"1.3\"\nclient_auth = \"off\"\n",
                ClientAuth::Off,
            ),
            (
                "min_version = \"1.2\"\nclient_auth = \"optional\"\nclient_ca = \"cert.pem\"\n",
                ClientAuth::Optional,
            ),
            (
                "client_auth = \"required\"\nclient_ca = \"cert.pem\"\n",
                ClientAuth::Required,
            ),
        ] {
            let first = format!(
                "[server]\nlisten = \"127.0.0.1:8443\"\n[server.tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n{choices}"
            );
            let tls = compiled(dir.path(), &first).server.tls.unwrap();
            assert_eq!(tls.client_auth, want, "{choices}");
        }
    }
}
