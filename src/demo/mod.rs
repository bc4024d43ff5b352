//! `ordergate demo`: the newcomer's first run. It starts the bundled sample order service, makes
//! a dev CA, certificates, a JWT signing key and API keys, writes a demo policy into a state
//! directory, starts the gateway on https://127.0.0.1:8443, walks through the personas (showing
//! what each one gets), and prints curl commands that work when pasted. Ctrl-C stops all.

pub mod events;
pub mod orders;
pub mod pki;
pub mod policy_template;
pub mod release;
pub mod review;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use jsonwebtoken::Algorithm;
use rustls_pki_types::pem::PemObject;
use serde_json::Value;

use orders::OrderStore;
use pki::{Ca, JwtKey};
use policy_template::{ApiKeyEntry, Backend, PolicyTemplate, Rate};

/// `ordergate demo` options.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Where the demo writes its policy, keys, certificates and audit log.
    #[arg(long, default_value = "demo-state")]
    pub state: PathBuf,
    /// The gateway's port on 127.0.0.1.
    #[arg(long, default_value_t = 8443)]
    pub port: u16,
    /// The admin listener's port on 127.0.0.1.
    #[arg(long, default_value_t = 9901)]
    pub admin_port: u16,
    /// Skip the guided tour; only print the curl commands.
    #[arg(long)]
    pub no_tour: bool,
    /// Run the tour and exit instead of serving until Ctrl-C.
    #[arg(long)]
    pub exit_after_tour: bool,
}

const ISSUER: &str = "https://idp.demo.ordergate.dev/";

/// Everything the demo made.
struct Setup {
    state: PathBuf,
    orders_port: u16,
    store: Arc<OrderStore>,
    /// An order of C0000002 paid by card, shown to several personas.
    order_id: String,
    /// Where the gateway's security events go.
    events: Arc<events::DemoReceiver>,
    /// The sample order service (`[upstream]`), stoppable for the stale-if-error step.
    primary: release::SampleService,
    /// Its next release, "orders v2" (`[upstreams.orders-v2]`, the canary).
    v2: release::SampleService,
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let state = args.state.clone();
    for dir in ["certs", "keys", "tokens", "audit"] {
        std::fs::create_dir_all(state.join(dir))
            .with_context(|| format!("cannot create {}", state.join(dir).display()))?;
    }
    let store = Arc::new(OrderStore::seeded());
    let primary = release::SampleService::start(store.clone(), 0).await?;
    let v2 = release::SampleService::start(Arc::new(OrderStore::seeded()), 0).await?;
    let orders_port = primary.port;
    let order_id = store
        .orders()
        .iter()
        .find(|o| o["customer_id"] == "C0000002" && o["payment"]["card_number"].is_string())
        .and_then(|o| o["order_id"].as_str())
        .unwrap_or("O20250101100000")
        .to_owned();
    let setup = Setup {
        state: state.clone(),
        orders_port,
        store,
        order_id,
        events: events::DemoReceiver::start(&state).await?,
        primary,
        v2,
    };
    write_files(&setup, &args).map_err(anyhow::Error::msg)?;
    let policy_path = state.join("policy.toml");
    let policy = crate::policy::load(&policy_path).map_err(|problems| {
        anyhow::anyhow!(
            "the demo policy is invalid:\n{}",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    let running = crate::server::start(policy, &policy_path)
        .await
        .map_err(|e| {
            anyhow::anyhow!("{e}\n(is another demo running? try `--port` and `--admin-port`)")
        })?;
    let port = running.addr.port();
    let admin_port = running.admin_addr.map_or(args.admin_port, |a| a.port());
    println!(
        "\nordergate demo: gateway on https://127.0.0.1:{port}  (admin http://127.0.0.1:{admin_port}, sample order service http://127.0.0.1:{orders_port})"
    );
    println!("state, keys and audit log in {}/", state.display());
    println!(
        "security events → {} (written to {})\n",
        setup.events.url(),
        setup.events.log.display()
    );
    if !args.no_tour
        && let Err(e) = tour(&setup, port, admin_port).await
    {
        println!("(the tour stopped early: {e:#})");
    }
    print_curls(&setup, port, admin_port);
    release::print_curls(admin_port, setup.v2.port);
    if !args.exit_after_tour {
        println!("\nCtrl-C stops the gateway and the sample order service.");
        // Registered only now: until here Ctrl-C ends the tour at once.
        crate::server::signals::Signals::termination()
            .terminated()
            .await;
    }
    running.shutdown().await;
    setup.primary.stop().await;
    setup.v2.stop().await;
    Ok(())
}

/// The carrier's ed25519 signing key (PKCS#8 PEM), under the state directory.
const CARRIER_SIGNING_KEY: &str = "keys/sf-logistics.sign.pem";

/// The signature headers the carrier adds to a GET of `url`, signed now with a fresh nonce.
fn carrier_signature(state: &Path, url: &str) -> anyhow::Result<Vec<(&'static str, String)>> {
    use crate::stage::signature::sign::{ToSign, fresh_nonce, sign};
    let pem = std::fs::read(state.join(CARRIER_SIGNING_KEY))?;
    let key = crate::stage::signature::verify::SigningKey::ed25519_from_pem(&pem)
        .map_err(anyhow::Error::msg)?;
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let url: http::Uri = url.parse()?;
    sign(
        &key,
        "sf-logistics",
        ToSign {
            method: &http::Method::GET,
            url: &url,
            body: None,
            content_type: None,
            created,
            nonce: &fresh_nonce(),
        },
    )
    .map_err(anyhow::Error::msg)
}

fn write(path: &Path, contents: &str) -> Result<(), String> {
    std::fs::write(path, contents).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_files(setup: &Setup, args: &DemoArgs) -> Result<(), String> {
    let s = &setup.state;
    let ca = Ca::new("ordergate demo CA")?;
    let server = ca.server(&["127.0.0.1", "localhost"])?;
    write(&s.join("certs/ca.pem"), ca.pem())?;
    write(&s.join("certs/server.crt"), &server.cert_pem)?;
    write(&s.join("certs/server.key"), &server.key_pem)?;
    let partners = Ca::new("demo partners CA")?;
    let jd = partners.client("jd-marketplace", Some("JD Partner"))?;
    write(&s.join("certs/partners-ca.pem"), partners.pem())?;
    write(&s.join("certs/jd-marketplace.crt"), &jd.cert_pem)?;
    write(&s.join("certs/jd-marketplace.key"), &jd.key_pem)?;
    let jwt_key = JwtKey::generate(Algorithm::ES256, "demo-es256")?;
    write(&s.join("keys/jwt-signing.pem"), &jwt_key.private_pem)?;
    write(&s.join("keys/jwks.json"), &pki::jwks(&[&jwt_key]))?;
    let new_key = |id: &str| {
        let (key, hash) = crate::stage::authn::api_key::generate();
        write(&s.join(format!("keys/{id}.key")), &key).map(|()| hash)
    };
    let (erp, logistics) = (new_key("erp-sync")?, new_key("sf-logistics")?);
    // The carrier signs its requests (CONTRACT §7.1): the gateway holds only the public key.
    let (carrier_private, carrier_public) =
        crate::stage::signature::verify::SigningKey::generate_ed25519()?;
    write(&s.join(CARRIER_SIGNING_KEY), &carrier_private)?;
    write(&s.join("keys/sf-logistics.pub.pem"), &carrier_public)?;
    let acme = |key| ApiKeyEntry {
        tenant: Some("acme"),
        ..key
    };
    let api_keys = [
        acme(ApiKeyEntry::new("erp-sync", &erp, &["erp"])),
        acme(ApiKeyEntry {
            signature: Some(r#"{ alg = "ed25519", public_key = "keys/sf-logistics.pub.pem" }"#),
            ..ApiKeyEntry::new("sf-logistics", &logistics, &["logistics_partner"])
        }),
    ];
    let listen = format!("127.0.0.1:{}", args.port);
    let admin_listen = format!("127.0.0.1:{}", args.admin_port);
    let upstream = format!("127.0.0.1:{}", setup.orders_port);
    let policy = release::with_release(
        demo_policy(&listen, &admin_listen, &upstream, &api_keys).render(),
        setup.v2.port,
    ) + &events::policy_sections(&setup.events.url());
    write(&s.join("policy.toml"), &policy)?;
    let eight_hours = Duration::from_secs(8 * 3600);
    let tenant = ("tenant", Value::from("acme"));
    let alice = jwt_key.token(
        ISSUER,
        "alice",
        &["customer"],
        &[("customer_id", Value::from("C0000001")), tenant.clone()],
        eight_hours,
    )?;
    let agent = jwt_key.token(
        ISSUER,
        "agent-007",
        &["customer_service"],
        std::slice::from_ref(&tenant),
        eight_hours,
    )?;
    // The tour's rate-limit burst is bob's, so alice's bucket is full when the newcomer pastes.
    let bob = jwt_key.token(
        ISSUER,
        "bob",
        &["customer"],
        &[("customer_id", Value::from("C0000004")), tenant.clone()],
        eight_hours,
    )?;
    write(&s.join("tokens/alice.jwt"), &alice)?;
    write(&s.join("tokens/agent.jwt"), &agent)?;
    write(&s.join("tokens/bob.jwt"), &bob)?;
    // The tour's quiet scraper: customer service, walking through customer ids.
    let mallory = jwt_key.token(
        ISSUER,
        "mallory",
        &["customer_service"],
        std::slice::from_ref(&tenant),
        eight_hours,
    )?;
    write(&s.join("tokens/mallory.jwt"), &mallory)?;
    Ok(())
}

/// The demo policy: the reference policy with the demo's files, ports and keys, limits a
/// laptop is comfortable with, and a contact view that also hides `internal` and masks the
/// shipping phone.
pub fn demo_policy<'a>(
    listen: &'a str,
    admin_listen: &'a str,
    upstream: &'a str,
    api_keys: &'a [ApiKeyEntry<'a>],
) -> PolicyTemplate<'a> {
    PolicyTemplate {
        header: "# Written by `ordergate demo`; regenerated on every run.\n",
        listen,
        admin_listen,
        max_connections: 1000,
        max_connections_per_ip: None,
        max_in_flight: 256,
        header_read_timeout: "5s",
        request_timeout: "10s",
        max_header_bytes: "16KiB",
        max_request_body: "64KiB",
        shutdown_grace: "5s",
        cert: "certs/server.crt",
        key: "certs/server.key",
        client_ca: Some("certs/partners-ca.pem"),
        upstream,
        connect_timeout: "1s",
        upstream_timeout: "3s",
        pool_idle_per_host: None,
        open_for: "3s",
        issuer: ISSUER,
        jwks_file: "keys/jwks.json",
        api_keys,
        summaries: true,
        customer_orders_rate: Rate::new("120/min", 20),
        phone_query: false,
        contact_deny: &["orders[].payment", "orders[].internal"],
        contact_mask: &[
            ("orders[].customer.phone", "phone"),
            ("orders[].customer.email", "email"),
            ("orders[].customer.id_number", "id_number"),
            ("orders[].shipping.phone", "phone"),
        ],
        order_detail_rate: Rate::new("300/min", 50),
        order_detail_views: true,
        extra_routes: "",
        backend: Backend::Local,
        on_backend_error: None,
        per_principal_rate: Rate::new("1000/min", 100),
        max_denials: 50,
        freeze_for: "2m",
        rotate_bytes: "10MiB",
    }
}

/// The demo's proposed change, for the tour's `diff`: the carrier view (`orders:read:shipping`)
/// without its phone mask. `None` if the demo policy no longer has that mask.
pub fn next_policy(policy: &str) -> Option<String> {
    const MASK: &str = "mask = { \"orders[].shipping.phone\" = \"phone\" }\n";
    policy.contains(MASK).then(|| policy.replacen(MASK, "", 1))
}

type DemoClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

fn client(state: &Path, with_partner_cert: bool) -> anyhow::Result<DemoClient> {
    let ca = crate::config::files::certificates(&state.join("certs/ca.pem"))
        .map_err(anyhow::Error::msg)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in ca {
        roots.add(cert)?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(crate::vocab::tls_client::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = if with_partner_cert {
        let certs = crate::config::files::certificates(&state.join("certs/jd-marketplace.crt"))
            .map_err(anyhow::Error::msg)?;
        let key =
            rustls_pki_types::PrivateKeyDer::from_pem_file(state.join("certs/jd-marketplace.key"))?;
        builder.with_client_auth_cert(certs, key)?
    } else {
        builder.with_no_client_auth()
    };
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .build();
    Ok(Client::builder(hyper_util::rt::TokioExecutor::new()).build(https))
}

async fn get(
    client: &DemoClient,
    url: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<(u16, Value, http::HeaderMap)> {
    let mut request = http::Request::get(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = client.request(request.body(Empty::new())?).await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((
        status,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
        headers,
    ))
}

fn read(state: &Path, file: &str) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(state.join(file))?.trim().to_owned())
}

fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 220 {
        format!("{}…", text.chars().take(220).collect::<String>())
    } else {
        text
    }
}

async fn tour(setup: &Setup, port: u16, admin_port: u16) -> anyhow::Result<()> {
    let s = &setup.state;
    let base = format!("https://127.0.0.1:{port}");
    let plain = client(s, false)?;
    let partner = client(s, true)?;
    let alice = format!("Bearer {}", read(s, "tokens/alice.jwt")?);
    let agent = format!("Bearer {}", read(s, "tokens/agent.jwt")?);
    let bob = format!("Bearer {}", read(s, "tokens/bob.jwt")?);
    let erp = read(s, "keys/erp-sync.key")?;
    let logistics = read(s, "keys/sf-logistics.key")?;
    let range = "start_date=2025-01-01&end_date=2025-12-31&page_size=2";
    let order = &setup.order_id;
    println!("── Guided tour ─────────────────────────────────────────────────────────────");
    let step = |n: u32, who: &str, what: &str, status: u16, body: &Value| {
        println!("\n{n}. {who}: {what}\n   → {status} {}", short(body));
    };
    let (st, b, h) = get(
        &plain,
        &format!("{base}/v1/customers/C0000001/orders?{range}"),
        &[("authorization", &alice)],
    )
    .await?;
    step(
        1,
        "alice (customer C0000001, JWT)",
        "her own orders — the plain customer view",
        st,
        &b,
    );
    println!(
        "   RateLimit-Remaining: {}",
        h.get("ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
    );
    let (st, b, _) = get(
        &plain,
        &format!("{base}/v1/customers/C0000002/orders?{range}"),
        &[("authorization", &alice)],
    )
    .await?;
    step(
        2,
        "alice",
        "someone else's orders (C0000002) — refused by the owner binding",
        st,
        &b,
    );
    // Customer service sees orders through the list route's view: ask for the day of the order
    // the ERP and the carrier look at next, and show that same order.
    let day = setup
        .store
        .orders()
        .iter()
        .find(|o| o["order_id"] == order.as_str())
        .and_then(|o| o["created_at"].as_str())
        .and_then(|d| d.get(..10))
        .unwrap_or("2025-01-01")
        .to_owned();
    let (st, b, _) = get(
        &plain,
        &format!(
            "{base}/v1/customers/C0000002/orders?start_date={day}&end_date={day}&page_size=100"
        ),
        &[("authorization", &agent)],
    )
    .await?;
    let same = b["orders"]
        .as_array()
        .and_then(|orders| orders.iter().find(|o| o["order_id"] == order.as_str()))
        .cloned()
        .unwrap_or(Value::Null);
    step(
        3,
        "agent-007 (customer service, JWT)",
        &format!(
            "order {order} — contacts masked, no payment (payment present: {})",
            same.get("payment").is_some()
        ),
        st,
        &same["customer"],
    );
    let (st, b, _) = get(
        &plain,
        &format!("{base}/v1/orders/{order}"),
        &[("x-api-key", &erp)],
    )
    .await?;
    step(
        4,
        "erp-sync (API key)",
        &format!("order {order} — everything"),
        st,
        &b["payment"],
    );
    let detail_url = format!("{base}/v1/orders/{order}");
    let signed = carrier_signature(s, &detail_url)?;
    let mut carrier: Vec<(&str, &str)> = vec![("x-api-key", &logistics)];
    carrier.extend(signed.iter().map(|(n, v)| (*n, v.as_str())));
    let (st, b, _) = get(&plain, &detail_url, &carrier).await?;
    step(
        5,
        "sf-logistics (API key, every request signed with its ed25519 key)",
        &format!("order {order} — shipping only, phone masked"),
        st,
        &b,
    );
    let aside = |who: &str, what: &str, status: u16, body: &Value| {
        println!("   ↳ {who}: {what}\n     → {status} {}", short(body));
    };
    let (st, b, _) = get(&plain, &detail_url, &carrier).await?;
    aside(
        "someone who captured that signed request",
        "replays it — refused (signature_replayed in the audit record)",
        st,
        &b["title"],
    );
    let other = setup
        .store
        .orders()
        .iter()
        .filter_map(|o| o["order_id"].as_str())
        .find(|id| *id != order.as_str())
        .unwrap_or("O2099010100001")
        .to_owned();
    let fresh = carrier_signature(s, &detail_url)?;
    let mut tampered: Vec<(&str, &str)> = vec![("x-api-key", &logistics)];
    tampered.extend(fresh.iter().map(|(n, v)| (*n, v.as_str())));
    let (st, b, _) = get(&plain, &format!("{base}/v1/orders/{other}"), &tampered).await?;
    aside(
        "someone in the middle",
        &format!("changes the signed request to order {other} — refused (signature_invalid)"),
        st,
        &b["title"],
    );
    let (st, b, _) = get(
        &partner,
        &format!("{base}/v1/customers/C0000003/orders?{range}"),
        &[],
    )
    .await?;
    step(
        6,
        "jd-marketplace (client certificate)",
        "C0000003's orders — the basic view",
        st,
        &b,
    );
    let (st, b, _) = get(&plain, &format!("{base}/v1/customers/C0000001/orders?start_date=2025-01-01&end_date=2026-06-30&page_size=500&debug=1"), &[("authorization", &alice)]).await?;
    step(
        7,
        "alice",
        "bad parameters — every violation listed, nothing reaches the order service",
        st,
        &b["errors"],
    );
    let (st, b, _) = get(
        &plain,
        &format!("{base}/v1/orders/{order}?api_key={erp}"),
        &[],
    )
    .await?;
    step(
        8,
        "someone",
        "an API key in the query string — refused (and never logged)",
        st,
        &b["detail"],
    );
    let (st, b, h) = get(&plain, &format!("{base}/v1/orders/{order}"), &[]).await?;
    step(9, "someone", "no credential", st, &b["title"]);
    println!(
        "   WWW-Authenticate: {}",
        h.get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
    );
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..25 {
        let (st, _, _) = get(
            &plain,
            &format!("{base}/v1/customers/C0000004/orders?{range}"),
            &[("authorization", &bob)],
        )
        .await?;
        *counts.entry(st).or_insert(0) += 1;
    }
    println!(
        "\n10. bob, 25 requests at once (burst 20, 120/min): {counts:?} — 429s carry Retry-After"
    );
    let fail_url = format!("http://127.0.0.1:{}/__demo/fail", setup.orders_port);
    setup.store.set_failing(true);
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let (st, b, _) = get(
            &plain,
            &format!("{base}/v1/orders/{order}"),
            &[("x-api-key", &erp)],
        )
        .await?;
        statuses.push(format!(
            "{st} {}",
            b["type"]
                .as_str()
                .and_then(|t| t.rsplit('/').next())
                .unwrap_or("")
        ));
    }
    setup.store.set_failing(false);
    println!(
        "\n11. the order service fails (POST {fail_url}): the gateway hides its stack traces, then opens the circuit:"
    );
    println!("   {}", statuses.join(", "));
    // Leave everything healthy before the commands are printed: wait (bounded) for the circuit
    // to half-open and for the probes to close it again.
    let healed = std::time::Instant::now();
    let mut recovered = false;
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (st, _, _) = get(
            &plain,
            &format!("{base}/v1/orders/{order}"),
            &[("x-api-key", &erp)],
        )
        .await?;
        if st == 200 {
            recovered = true;
            break;
        }
    }
    if recovered {
        println!(
            "   healed: the circuit half-opened, the probes succeeded, it closed again ({:.0} s)",
            healed.elapsed().as_secs_f64()
        );
    } else {
        println!("   (the circuit has not closed yet; it half-opens after `open_for`)");
    }
    events::scraper_step(setup, &plain, &base, 12).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let audit = s.join("audit/audit.jsonl");
    let text = std::fs::read_to_string(&audit).unwrap_or_default();
    if let Some(last) = text
        .lines()
        .rev()
        .find(|l| l.contains("\"route\":\"customer-orders\""))
    {
        println!(
            "\n13. the audit log ({}) has one record per request; the last customer-orders one:\n   {last}",
            audit.display()
        );
    }
    match crate::stage::audit::verify::verify(std::slice::from_ref(&audit)) {
        Ok(sum) => println!(
            "   `ordergate audit verify {}` → ok: {} records, seq {}..{}",
            audit.display(),
            sum.records,
            sum.first_seq.unwrap_or(0),
            sum.last_seq.unwrap_or(0)
        ),
        Err(e) => println!("   audit verify: {e}"),
    }
    release::tour(setup, &plain, &base, admin_port, (&alice, &agent), &erp).await?;
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "ordergate".to_owned());
    match review::steps(s, &exe) {
        Ok(text) => print!("{text}"),
        Err(e) => println!("\n16. explain and diff: {e}"),
    }
    println!("────────────────────────────────────────────────────────────────────────────\n");
    Ok(())
}

fn print_curls(setup: &Setup, port: u16, admin_port: u16) {
    let s = setup.state.display();
    // This very binary, so the line works without a second (release) build.
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "ordergate".to_owned());
    let order = &setup.order_id;
    println!(
        r#"Try it yourself (paste into a shell in this directory):

export OG=https://127.0.0.1:{port} CA={s}/certs/ca.pem
export ALICE=$(cat {s}/tokens/alice.jwt) AGENT=$(cat {s}/tokens/agent.jwt)
export ERP_KEY=$(cat {s}/keys/erp-sync.key) CARRIER_KEY=$(cat {s}/keys/sf-logistics.key)

# a customer reads her own orders (200) ...
curl -s --cacert $CA -H "Authorization: Bearer $ALICE" "$OG/v1/customers/C0000001/orders?start_date=2025-01-01&end_date=2025-12-31&page_size=3"
# ... and is refused another customer's (403)
curl -s --cacert $CA -H "Authorization: Bearer $ALICE" "$OG/v1/customers/C0000002/orders?start_date=2025-01-01&end_date=2025-12-31"
# customer service: contacts masked, no payment
curl -s --cacert $CA -H "Authorization: Bearer $AGENT" "$OG/v1/customers/C0000002/orders?start_date=2025-01-01&end_date=2025-12-31&page_size=1"
# the ERP sees everything
curl -s --cacert $CA -H "X-Api-Key: $ERP_KEY" "$OG/v1/orders/{order}"
# the logistics partner signs every request (only shipping, phone masked): `ordergate sign`
# writes the signature headers, curl reads them from the file (-H @file) ...
{exe} sign --key {s}/keys/sf-logistics.sign.pem --keyid sf-logistics "$OG/v1/orders/{order}" > {s}/carrier.sig
curl -s --cacert $CA -H "X-Api-Key: $CARRIER_KEY" -H @{s}/carrier.sig "$OG/v1/orders/{order}"
# ... the same request again is a replay (401), and an unsigned one is refused too (401)
curl -s --cacert $CA -H "X-Api-Key: $CARRIER_KEY" -H @{s}/carrier.sig "$OG/v1/orders/{order}"
curl -s --cacert $CA -H "X-Api-Key: $CARRIER_KEY" "$OG/v1/orders/{order}"
# a marketplace partner by client certificate
curl -s --cacert $CA --cert {s}/certs/jd-marketplace.crt --key {s}/certs/jd-marketplace.key "$OG/v1/customers/C0000003/orders?start_date=2025-01-01&end_date=2025-12-31&page_size=1"
# a bad parameter (400, every violation listed)
curl -s --cacert $CA -H "Authorization: Bearer $ALICE" "$OG/v1/customers/C0000001/orders?start_date=2025-02-30&end_date=2025-03-01&page_size=1000"
# a rate-limit hit (burst 20): watch the 429s
for i in $(seq 25); do curl -s -o /dev/null -w "%{{http_code}} " --cacert $CA -H "Authorization: Bearer $ALICE" "$OG/v1/customers/C0000001/orders?start_date=2025-01-01&end_date=2025-01-31"; done; echo
# make the order service fail, watch upstream_error then circuit_open, then heal it
curl -s -X POST "http://127.0.0.1:{orders}/__demo/fail?on=true"; for i in $(seq 7); do curl -s -o /dev/null -w "%{{http_code}} " --cacert $CA -H "X-Api-Key: $ERP_KEY" "$OG/v1/orders/{order}"; done; echo; curl -s -X POST "http://127.0.0.1:{orders}/__demo/fail?on=false"
# operations: metrics, frozen callers, the audit trail and its verification
curl -s http://127.0.0.1:{admin_port}/metrics | grep ^ordergate_requests_total
curl -s http://127.0.0.1:{admin_port}/admin/frozen
# the security events the gateway pushed to the demo's webhook receiver (signed)
tail -n 3 {s}/events.jsonl
tail -n 2 {s}/audit/audit.jsonl
{exe} audit verify {s}/audit/audit.jsonl*"#,
        orders = setup.orders_port,
        exe = exe,
    );
}
