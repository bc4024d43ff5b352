//! The one policy text the demo, the benchmark kit and the integration tests start from: the
//! reference policy's roles, the `customer-orders` and `order-detail` routes and their views,
//! with placeholders for what differs between them (addresses, files, keys, limits, rates).
//!
//! Each caller fills a [`PolicyTemplate`]; a struct literal has to name every field, so a new
//! placeholder cannot be left empty by one of the three without failing to compile. What only
//! one caller needs (the tests' write and raw routes, the benchmark's masked route) comes in as
//! [`PolicyTemplate::extra_routes`], written by that caller.

use std::fmt::Write as _;

/// The template: `${name}` marks a placeholder.
const TEMPLATE: &str = include_str!("policy.template.toml");

/// The partner known by its client certificate, where client certificates are asked for.
const MTLS_CLIENTS: &str = r#"[[auth.mtls.clients]]
subject = "CN=jd-marketplace,O=JD Partner"
roles = ["marketplace_partner"]
tenant = "acme"
"#;

/// `order-detail`'s views, where it has them.
const ORDER_DETAIL_VIEWS: &str = r#"[[routes.response.views]]
scope = "orders:read:full"
allow = ["*"]
[[routes.response.views]]
scope = "orders:read:shipping"
allow = ["order_id", "status", "shipping"]
mask = { "shipping.phone" = "phone" }
[[routes.response.views]]
scope = "orders:read"
allow = ["order_id", "status", "created_at", "total", "items"]
"#;

/// A rate-limit bucket as a policy writes it.
#[derive(Debug, Clone, Copy)]
pub struct Rate<'a> {
    /// `"N/sec"`, `"N/min"`, `"N/hour"`.
    pub rate: &'a str,
    /// Requests allowed at once.
    pub burst: u32,
}

impl<'a> Rate<'a> {
    /// `rate` with `burst`.
    pub const fn new(rate: &'a str, burst: u32) -> Self {
        Self { rate, burst }
    }
}

/// One `[[auth.api_keys.keys]]` entry.
#[derive(Debug, Clone, Copy)]
pub struct ApiKeyEntry<'a> {
    /// The key's id (what the audit log shows).
    pub id: &'a str,
    /// `sha256:<hex>` of the key.
    pub hash: &'a str,
    /// Roles the key carries.
    pub roles: &'a [&'a str],
    /// The tenant, if any.
    pub tenant: Option<&'a str>,
    /// RFC 3339; the key is refused before.
    pub not_before: Option<&'a str>,
    /// RFC 3339; the key is refused after.
    pub not_after: Option<&'a str>,
    /// The `signature = { ... }` inline table, if the key signs its requests.
    pub signature: Option<&'a str>,
}

impl<'a> ApiKeyEntry<'a> {
    /// A key with no tenant and no validity window.
    pub const fn new(id: &'a str, hash: &'a str, roles: &'a [&'a str]) -> Self {
        Self {
            id,
            hash,
            roles,
            tenant: None,
            not_before: None,
            not_after: None,
            signature: None,
        }
    }
}

/// Where the rate-limit buckets live.
#[derive(Debug, Clone, Copy)]
pub enum Backend<'a> {
    /// In this instance's memory.
    Local,
    /// In Redis at this URL.
    Redis(&'a str),
}

/// The values a caller fills in. Durations and sizes are written as the policy writes them
/// (`"5s"`, `"64KiB"`); an `Option` that is `None` leaves the key out, so the gateway's default
/// applies.
#[derive(Debug, Clone)]
pub struct PolicyTemplate<'a> {
    /// A comment (or nothing) written before the first table; ends with a newline.
    pub header: &'a str,
    /// `server.listen`.
    pub listen: &'a str,
    /// `server.admin_listen`.
    pub admin_listen: &'a str,
    /// `server.max_connections`.
    pub max_connections: u32,
    /// `server.max_connections_per_ip`.
    pub max_connections_per_ip: Option<u32>,
    /// `server.max_in_flight`.
    pub max_in_flight: u32,
    /// `server.header_read_timeout`.
    pub header_read_timeout: &'a str,
    /// `server.request_timeout`.
    pub request_timeout: &'a str,
    /// `server.max_header_bytes`.
    pub max_header_bytes: &'a str,
    /// `server.max_request_body`.
    pub max_request_body: &'a str,
    /// `server.shutdown_grace`.
    pub shutdown_grace: &'a str,
    /// `server.tls.cert`, relative to the policy file.
    pub cert: &'a str,
    /// `server.tls.key`, relative to the policy file.
    pub key: &'a str,
    /// The partners' CA: client certificates optional and checked against it, and the
    /// `jd-marketplace` partner known by its certificate; `None`: no client certificates asked
    /// for (`client_auth = "off"`) and no partner.
    pub client_ca: Option<&'a str>,
    /// The order service as `host:port` (plain HTTP).
    pub upstream: &'a str,
    /// `upstream.connect_timeout`.
    pub connect_timeout: &'a str,
    /// `upstream.timeout`.
    pub upstream_timeout: &'a str,
    /// `upstream.pool_idle_per_host`.
    pub pool_idle_per_host: Option<u32>,
    /// `upstream.circuit_breaker.open_for`.
    pub open_for: &'a str,
    /// `auth.jwt.issuer`.
    pub issuer: &'a str,
    /// `auth.jwt.jwks_file`, relative to the policy file.
    pub jwks_file: &'a str,
    /// The API keys.
    pub api_keys: &'a [ApiKeyEntry<'a>],
    /// Write a `summary` on the routes (what `ordergate openapi` shows).
    pub summaries: bool,
    /// `customer-orders`: its bucket.
    pub customer_orders_rate: Rate<'a>,
    /// `customer-orders`: accept a `phone` query parameter (a sensitive one, for the audit's
    /// redaction).
    pub phone_query: bool,
    /// `customer-orders`, view `orders:read:contact`: what it removes.
    pub contact_deny: &'a [&'a str],
    /// `customer-orders`, view `orders:read:contact`: what it masks (path, masker).
    pub contact_mask: &'a [(&'a str, &'a str)],
    /// `order-detail`: its bucket.
    pub order_detail_rate: Rate<'a>,
    /// `order-detail`: filter the answer by the caller's view (full, shipping, basic); without
    /// views the order service's answer passes as it is.
    pub order_detail_views: bool,
    /// Further `[[routes]]` tables, written as they are.
    pub extra_routes: &'a str,
    /// `rate_limits.backend`.
    pub backend: Backend<'a>,
    /// `rate_limits.on_backend_error`.
    pub on_backend_error: Option<&'a str>,
    /// `rate_limits.per_principal`.
    pub per_principal_rate: Rate<'a>,
    /// `abuse.max_denials`.
    pub max_denials: u32,
    /// `abuse.freeze_for`.
    pub freeze_for: &'a str,
    /// `audit.rotate_bytes`.
    pub rotate_bytes: &'a str,
}

impl PolicyTemplate<'_> {
    /// The policy text.
    pub fn render(&self) -> String {
        let summary = |text: &str| {
            if self.summaries {
                format!("summary = {}\n", quoted(text))
            } else {
                String::new()
            }
        };
        let client_auth = match self.client_ca {
            Some(ca) => format!("client_auth = \"optional\"\nclient_ca = {}\n", quoted(ca)),
            None => "client_auth = \"off\"\n".to_owned(),
        };
        let mut backend = match self.backend {
            Backend::Local => "backend = \"local\"".to_owned(),
            Backend::Redis(url) => format!("backend = \"redis\"\nredis_url = {}", quoted(url)),
        };
        if let Some(on_error) = self.on_backend_error {
            let _ = write!(backend, "\non_backend_error = {}", quoted(on_error));
        }
        let phone_query = if self.phone_query {
            "[routes.query.phone]\ntype = \"string\"\npattern = \"^1[0-9]{10}$\"\n"
        } else {
            ""
        };
        let mtls_clients = if self.client_ca.is_some() {
            MTLS_CLIENTS
        } else {
            ""
        };
        let order_detail_views = if self.order_detail_views {
            ORDER_DETAIL_VIEWS
        } else {
            ""
        };
        let values: [(&str, String); 37] = [
            ("header", self.header.to_owned()),
            ("listen", escaped(self.listen)),
            ("admin_listen", escaped(self.admin_listen)),
            ("max_connections", self.max_connections.to_string()),
            (
                "max_connections_per_ip",
                self.max_connections_per_ip
                    .map(|n| format!("max_connections_per_ip = {n}\n"))
                    .unwrap_or_default(),
            ),
            ("max_in_flight", self.max_in_flight.to_string()),
            ("header_read_timeout", escaped(self.header_read_timeout)),
            ("request_timeout", escaped(self.request_timeout)),
            ("max_header_bytes", escaped(self.max_header_bytes)),
            ("max_request_body", escaped(self.max_request_body)),
            ("shutdown_grace", escaped(self.shutdown_grace)),
            ("cert", escaped(self.cert)),
            ("key", escaped(self.key)),
            ("client_auth", client_auth),
            ("upstream", escaped(self.upstream)),
            ("connect_timeout", escaped(self.connect_timeout)),
            ("upstream_timeout", escaped(self.upstream_timeout)),
            (
                "pool_idle_per_host",
                self.pool_idle_per_host
                    .map(|n| format!("pool_idle_per_host = {n}\n"))
                    .unwrap_or_default(),
            ),
            ("open_for", escaped(self.open_for)),
            ("issuer", escaped(self.issuer)),
            ("jwks_file", escaped(self.jwks_file)),
            ("api_keys", api_keys(self.api_keys)),
            ("mtls_clients", mtls_clients.to_owned()),
            (
                "customer_orders_summary",
                summary("A customer's order history"),
            ),
            ("customer_orders_rate", rate(self.customer_orders_rate)),
            ("phone_query", phone_query.to_owned()),
            ("contact_deny", array(self.contact_deny)),
            ("contact_mask", table(self.contact_mask)),
            ("order_detail_summary", summary("One order")),
            ("order_detail_rate", rate(self.order_detail_rate)),
            ("order_detail_views", order_detail_views.to_owned()),
            ("extra_routes", self.extra_routes.to_owned()),
            ("rate_limit_backend", backend),
            ("per_principal_rate", rate(self.per_principal_rate)),
            ("max_denials", self.max_denials.to_string()),
            ("freeze_for", escaped(self.freeze_for)),
            ("rotate_bytes", escaped(self.rotate_bytes)),
        ];
        fill(TEMPLATE, &values)
    }
}

/// The template with each `${name}` replaced by its value, in one pass: a value is never read
/// as template, so one that holds `${...}` stays as written. An unknown name stays as it is.
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let value = after.find('}').and_then(|end| {
            let name = &after[..end];
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (v, end))
        });
        match value {
            Some((value, end)) => {
                out.push_str(value);
                rest = &after[end + 1..];
            }
            None => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The inside of a TOML basic string.
fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

fn quoted(text: &str) -> String {
    format!("\"{}\"", escaped(text))
}

fn array(items: &[&str]) -> String {
    let items: Vec<String> = items.iter().map(|i| quoted(i)).collect();
    format!("[{}]", items.join(", "))
}

fn table(pairs: &[(&str, &str)]) -> String {
    let pairs: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{} = {}", quoted(k), quoted(v)))
        .collect();
    format!("{{ {} }}", pairs.join(", "))
}

fn rate(rate: Rate<'_>) -> String {
    format!("{{ rate = {}, burst = {} }}", quoted(rate.rate), rate.burst)
}

fn api_keys(keys: &[ApiKeyEntry<'_>]) -> String {
    let mut out = String::new();
    for key in keys {
        let _ = writeln!(out, "[[auth.api_keys.keys]]");
        let _ = writeln!(out, "id = {}", quoted(key.id));
        let _ = writeln!(out, "hash = {}", quoted(key.hash));
        let _ = writeln!(out, "roles = {}", array(key.roles));
        for (name, value) in [
            ("tenant", key.tenant),
            ("not_before", key.not_before),
            ("not_after", key.not_after),
        ] {
            if let Some(value) = value {
                let _ = writeln!(out, "{name} = {}", quoted(value));
            }
        }
        if let Some(signature) = key.signature {
            let _ = writeln!(out, "signature = {signature}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PolicyTemplate<'static> {
        PolicyTemplate {
            header: "",
            listen: "127.0.0.1:0",
            admin_listen: "127.0.0.1:0",
            max_connections: 10,
            max_connections_per_ip: Some(5),
            max_in_flight: 4,
            header_read_timeout: "1s",
            request_timeout: "1s",
            max_header_bytes: "8KiB",
            max_request_body: "1KiB",
            shutdown_grace: "1s",
            cert: "server.crt",
            key: "server.key",
            client_ca: Some("ca.pem"),
            upstream: "127.0.0.1:9",
            connect_timeout: "1s",
            upstream_timeout: "1s",
            pool_idle_per_host: Some(8),
            open_for: "1s",
            issuer: "https://idp.example/",
            jwks_file: "jwks.json",
            api_keys: &[ApiKeyEntry {
                id: "k",
                hash: "sha256:00",
                roles: &["erp"],
                tenant: Some("acme"),
                not_before: None,
                not_after: None,
                signature: None,
            }],
            summaries: true,
            customer_orders_rate: Rate::new("1/min", 1),
            phone_query: true,
            contact_deny: &["orders[].payment"],
            contact_mask: &[("orders[].customer.phone", "phone")],
            order_detail_rate: Rate::new("1/min", 1),
            order_detail_views: true,
            extra_routes: "",
            backend: Backend::Redis("redis://127.0.0.1:1/0"),
            on_backend_error: Some("local"),
            per_principal_rate: Rate::new("1/min", 1),
            max_denials: 1,
            freeze_for: "1m",
            rotate_bytes: "1MiB",
        }
    }

    #[test]
    fn every_placeholder_is_filled_and_the_text_is_toml() {
        let text = sample().render();
        assert!(!text.contains("${"), "{text}");
        let parsed: Result<toml::Table, _> = text.parse();
        assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[test]
    fn a_value_is_not_read_as_template() {
        let mut template = sample();
        // `rotate_bytes` is filled after `issuer`: a replace-per-name loop would fill it here.
        template.issuer = "${rotate_bytes}";
        let parsed: toml::Table = template.render().parse().unwrap_or_default();
        assert_eq!(
            parsed["auth"]["jwt"]["issuer"].as_str(),
            Some("${rotate_bytes}")
        );
    }

    #[test]
    fn a_value_cannot_break_out_of_its_string() {
        let mut template = sample();
        template.issuer = "x\"\nadmin_listen = \"0.0.0.0:1";
        let parsed: toml::Table = template.render().parse().unwrap_or_default();
        assert_eq!(
            parsed["auth"]["jwt"]["issuer"].as_str(),
            Some("x\"\nadmin_listen = \"0.0.0.0:1")
        );
        assert_eq!(
            parsed["server"]["admin_listen"].as_str(),
            Some("127.0.0.1:0")
        );
    }
}
