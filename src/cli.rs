//! The command line (CONTRACT.md §1, §7.1, §9): `serve`, `check`, `demo`, `apikey new`, `token`,
//! `audit verify`, `openapi`, `sign`, `explain`, `diff`. Errors go to stderr with a non-zero exit.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// ordergate: an HTTPS gateway that guards an order service.
#[derive(Debug, Parser)]
#[command(name = "ordergate", version, about, propagate_version = true)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway with a policy.
    Serve {
        /// The policy file.
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
        /// Reload when the policy's directory changes (as well as on SIGHUP).
        #[arg(long)]
        watch: bool,
        /// A candidate policy that decides every request too, serving none; disagreements are
        /// counted in `ordergate_shadow_diff_total` and logged (SIGHUP reloads both).
        #[arg(long, value_name = "NEXT")]
        shadow: Option<PathBuf>,
    },
    /// Load and validate a policy and the files it names; print every problem.
    Check {
        /// The policy file.
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
    },
    /// Start a sample order service and the gateway in front of it, with personas to try.
    Demo(crate::demo::DemoArgs),
    /// API key management.
    Apikey {
        #[command(subcommand)]
        command: ApikeyCommand,
    },
    /// Mint a JWT with a local key (tests and demos).
    Token(TokenArgs),
    /// Print the RFC 9421 signature headers for one request (`Name: value` per line).
    Sign(SignArgs),
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Print the OpenAPI 3.1 document of what a policy allows.
    Openapi {
        /// The policy file.
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
    },
    /// What one caller may do: routes, rules, limits, views, a field.
    Explain(ExplainArgs),
    /// The exposure change between two policies (exit 0: none, 2: widened, 3: only narrowed).
    Diff {
        /// The policy as it is.
        old: PathBuf,
        /// The policy as proposed.
        new: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

/// `text` for people, `json` for tools.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
struct ExplainArgs {
    /// The policy file.
    #[arg(short = 'c', long = "config")]
    config: PathBuf,
    /// An API key id, an mTLS client id, or `jwt:roles=r1,r2;scopes=a,b;claim=customer_id=C1`.
    #[arg(long = "as", value_name = "WHO")]
    who: String,
    /// Only this route.
    #[arg(long)]
    route: Option<String>,
    /// A field path (`orders[].customer.phone`): visible, masked or removed on each route.
    #[arg(long)]
    field: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Subcommand)]
enum ApikeyCommand {
    /// Print a new key once, with its policy block.
    New {
        /// The key's id (its principal id).
        #[arg(long)]
        id: String,
        /// Roles, comma-separated.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        /// Tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Days until the key expires (not_after); none: no expiry.
        #[arg(long)]
        days: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the hash chain and seq continuity across (rotated) audit files.
    Verify {
        /// Audit files, in any order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct TokenArgs {
    /// PEM private key (EC, Ed25519 or RSA); for HS* a file holding the secret.
    #[arg(long)]
    key: PathBuf,
    /// Subject (`sub`).
    #[arg(long)]
    sub: String,
    /// Issuer (`iss`).
    #[arg(long)]
    iss: Option<String>,
    /// Audience (`aud`).
    #[arg(long)]
    aud: Option<String>,
    /// Key id (`kid` header).
    #[arg(long)]
    kid: Option<String>,
    /// Algorithm (default: from the key).
    #[arg(long)]
    alg: Option<String>,
    /// Space-separated scopes (`scope`).
    #[arg(long)]
    scope: Option<String>,
    /// Roles, comma-separated (`roles`).
    #[arg(long, value_delimiter = ',')]
    roles: Vec<String>,
    /// Extra claim, `key=value` (value parsed as JSON when possible); repeatable.
    #[arg(long = "claim")]
    claims: Vec<String>,
    /// Lifetime, e.g. 15m, 1h, 7d.
    #[arg(long, default_value = "1h")]
    ttl: String,
}

#[derive(Debug, clap::Args)]
struct SignArgs {
    /// The signing key: a PEM PKCS#8 private key (ed25519), or a file holding the secret
    /// (hmac-sha256).
    #[arg(long)]
    key: PathBuf,
    /// The key id: the credential's `id` in the policy.
    #[arg(long)]
    keyid: String,
    /// The algorithm.
    #[arg(long, value_enum, default_value_t = SignAlg::Ed25519)]
    alg: SignAlg,
    /// The request method.
    #[arg(short = 'X', long = "request", default_value = "GET")]
    method: String,
    /// A file holding the request body (adds `Content-Digest`).
    #[arg(long)]
    data: Option<PathBuf>,
    /// The body's `Content-Type`, signed too (routes that accept more than one body type
    /// demand it; needs `--data`).
    #[arg(long, requires = "data")]
    content_type: Option<String>,
    /// The full URL, exactly as the request will be sent.
    url: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SignAlg {
    Ed25519,
    #[value(name = "hmac-sha256")]
    HmacSha256,
}

/// Entry point for `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    if let Err(e) = install_crypto() {
        eprintln!("ordergate: {e}");
        return ExitCode::FAILURE;
    }
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ordergate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Installs the one crypto provider for rustls and jsonwebtoken; fails hard otherwise.
pub fn install_crypto() -> Result<(), String> {
    if rustls::crypto::CryptoProvider::get_default().is_none()
        && rustls::crypto::aws_lc_rs::default_provider()
            .install_default()
            .is_err()
        && rustls::crypto::CryptoProvider::get_default().is_none()
    {
        return Err("cannot install the rustls crypto provider".into());
    }
    // Already installed (tests call this more than once) is fine; any other outcome is not.
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    Ok(())
}

/// The filter when `RUST_LOG` is not set: `info`, but rustls only from `error`. rustls warns on
/// every handshake whose SNI is an IP address or not a valid name, so without this any client
/// could write a log line per connection, before authentication, with bytes of its choosing.
const DEFAULT_LOG_FILTER: &str = "info,rustls=error";

fn log_filter() -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::EnvFilter;
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER))
}

fn init_logging(format: LogFormat) {
    let filter = log_filter();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::vocab::redact::make_writer)
        .with_ansi(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// The serving runtime, with the policy's `[server] workers` threads.
/// The runtime `serve` starts on. Under shared threading it serves every request with
/// `workers` threads; under per-core threading the workers have runtimes of their own
/// (`server::start` starts them) and this one thread runs the rest: the admin listener,
/// reloads, key-set refreshes, the Redis and webhook clients.
fn serve_runtime(
    server: &crate::policy::ServerSettings,
) -> anyhow::Result<tokio::runtime::Runtime> {
    let threads = match server.threading {
        crate::vocab::worker::Threading::Shared => server.workers.max(1),
        crate::vocab::worker::Threading::PerCore => 1,
    };
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?)
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve {
            config,
            watch,
            shadow,
        } => serve(config, watch, shadow),
        Command::Check { config } => Ok(check(&config)),
        Command::Demo(args) => runtime()?
            .block_on(crate::demo::run(args))
            .map(|()| ExitCode::SUCCESS),
        Command::Apikey {
            command:
                ApikeyCommand::New {
                    id,
                    roles,
                    tenant,
                    days,
                },
        } => {
            print!("{}", apikey_new(&id, &roles, tenant.as_deref(), days));
            Ok(ExitCode::SUCCESS)
        }
        Command::Token(args) => {
            println!("{}", token(args)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Sign(args) => {
            for (name, value) in sign(args)? {
                println!("{name}: {value}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit {
            command: AuditCommand::Verify { files },
        } => Ok(audit_verify(&files)),
        Command::Explain(args) => Ok(explain(&args)),
        Command::Diff { old, new, format } => Ok(diff(&old, &new, format)),
        Command::Openapi { config } => match crate::policy::load(&config) {
            Ok(policy) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&crate::openapi::document(&policy))?
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(problems) => {
                for p in problems {
                    eprintln!("{p}");
                }
                Ok(ExitCode::FAILURE)
            }
        },
    }
}

/// Loads a policy for `explain` or `diff`, printing its problems.
fn load_or_report(config: &std::path::Path) -> Option<crate::policy::Policy> {
    match crate::policy::load(config) {
        Ok(policy) => Some(policy),
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            None
        }
    }
}

fn print(format: Format, text: String, json: serde_json::Value) {
    match format {
        Format::Text => print!("{text}"),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        ),
    }
}

fn explain(args: &ExplainArgs) -> ExitCode {
    let Some(policy) = load_or_report(&args.config) else {
        return ExitCode::FAILURE;
    };
    let question = crate::review::explain::Question {
        who: args.who.clone(),
        route: args.route.clone(),
        field: args.field.clone(),
    };
    match crate::review::explain::explain(&policy, &question) {
        Ok(answer) => {
            print(args.format, answer.text(), answer.json());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ordergate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn diff(old: &std::path::Path, new: &std::path::Path, format: Format) -> ExitCode {
    let (Some(old), Some(new)) = (load_or_report(old), load_or_report(new)) else {
        return ExitCode::FAILURE;
    };
    let report = crate::review::diff::diff(&old, &new);
    print(format, report.text(), report.json());
    ExitCode::from(report.exit_code())
}

fn check(config: &std::path::Path) -> ExitCode {
    match crate::policy::load(config) {
        Ok(policy) => {
            for w in &policy.warnings {
                eprintln!(
                    "{}:{}:{}: warning: {}",
                    w.file.display(),
                    w.line,
                    w.col,
                    w.message
                );
            }
            println!("{}", policy.summary());
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!("{} problem(s)", problems.len());
            ExitCode::FAILURE
        }
    }
}

fn serve(config: PathBuf, watch: bool, shadow: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let policy = match crate::policy::load(&config) {
        Ok(p) => p,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    for w in &policy.warnings {
        tracing::warn!(line = w.line, col = w.col, "policy: {}", w.message);
    }
    // The candidate is checked before anything listens: a bad one stops startup.
    if let Some(next) = &shadow
        && load_or_report(next).is_none()
    {
        return Ok(ExitCode::FAILURE);
    }
    serve_runtime(&policy.server)?.block_on(async move {
        let mut signals = crate::server::signals::Signals::register();
        let running = crate::server::start(policy, &config)
            .await
            .map_err(anyhow::Error::msg)?;
        if let Some(next) = &shadow {
            running
                .gateway
                .start_shadow(next)
                .await
                .map_err(anyhow::Error::msg)?;
        }
        signals.reload_on_sighup(running.gateway.clone());
        if watch {
            crate::server::signals::reload_on_change(running.gateway.clone())
                .map_err(anyhow::Error::msg)?;
        }
        signals.terminated().await;
        running.shutdown().await;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// The text `ordergate apikey new` prints.
pub fn apikey_new(id: &str, roles: &[String], tenant: Option<&str>, days: Option<u32>) -> String {
    let (key, hash) = crate::stage::authn::api_key::generate();
    let now = chrono::Utc::now();
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut block = format!(
        "[[auth.api_keys.keys]]\nid = {}\nhash = \"{hash}\"\n",
        quote(id)
    );
    let roles: Vec<String> = roles
        .iter()
        .filter(|r| !r.is_empty())
        .map(|r| quote(r))
        .collect();
    block.push_str(&format!("roles = [{}]\n", roles.join(", ")));
    if let Some(t) = tenant {
        block.push_str(&format!("tenant = {}\n", quote(t)));
    }
    block.push_str(&format!(
        "not_before = \"{}\"\n",
        now.format("%Y-%m-%dT%H:%M:%SZ")
    ));
    if let Some(days) = days {
        let until = now + chrono::Duration::days(i64::from(days));
        block.push_str(&format!(
            "not_after = \"{}\"\n",
            until.format("%Y-%m-%dT%H:%M:%SZ")
        ));
    }
    format!(
        "# API key for `{id}`. It is shown once: store it in your secret manager now.\n# {key}\n\n# Add this block to the policy (it holds only the key's hash):\n{block}"
    )
}

fn token(args: TokenArgs) -> anyhow::Result<String> {
    let key =
        std::fs::read(&args.key).map_err(|e| anyhow::anyhow!("{}: {e}", args.key.display()))?;
    let alg = args
        .alg
        .as_deref()
        .map(|a| {
            a.parse::<jsonwebtoken::Algorithm>()
                .map_err(|_| anyhow::anyhow!("unknown algorithm `{a}`"))
        })
        .transpose()?;
    let key = match alg {
        Some(
            jsonwebtoken::Algorithm::HS256
            | jsonwebtoken::Algorithm::HS384
            | jsonwebtoken::Algorithm::HS512,
        ) => {
            let text = String::from_utf8(key)
                .map_err(|_| anyhow::anyhow!("the secret file is not text"))?;
            text.trim_end_matches(['\r', '\n']).as_bytes().to_vec()
        }
        _ => key,
    };
    let spec = crate::token::TokenSpec {
        sub: args.sub,
        iss: args.iss,
        aud: args.aud,
        kid: args.kid,
        alg,
        scope: args.scope,
        roles: args.roles,
        claims: args
            .claims
            .iter()
            .map(|c| crate::token::parse_claim(c))
            .collect::<Result<_, _>>()
            .map_err(anyhow::Error::msg)?,
        ttl: crate::vocab::units::parse_duration(&args.ttl)
            .map_err(anyhow::Error::msg)?
            .max(Duration::from_secs(1)),
    };
    crate::token::mint(&spec, &key).map_err(anyhow::Error::msg)
}

fn sign(args: SignArgs) -> anyhow::Result<Vec<(&'static str, String)>> {
    use crate::stage::signature::sign::{ToSign, fresh_nonce, sign};
    use crate::stage::signature::verify::SigningKey;
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    };
    let key_bytes = read(&args.key)?;
    let key = match args.alg {
        SignAlg::Ed25519 => SigningKey::ed25519_from_pem(&key_bytes),
        SignAlg::HmacSha256 => {
            let text = String::from_utf8(key_bytes)
                .map_err(|_| anyhow::anyhow!("the secret file is not text"))?;
            SigningKey::hmac(text.trim_end_matches(['\r', '\n']).as_bytes())
        }
    }
    .map_err(|e| anyhow::anyhow!("{}: {e}", args.key.display()))?;
    let method = http::Method::from_bytes(args.method.as_bytes())
        .map_err(|_| anyhow::anyhow!("`{}` is not a method", args.method))?;
    let url: http::Uri = args
        .url
        .parse()
        .map_err(|e| anyhow::anyhow!("`{}` is not a URL: {e}", args.url))?;
    let body = args.data.as_ref().map(read).transpose()?;
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let nonce = fresh_nonce();
    sign(
        &key,
        &args.keyid,
        ToSign {
            method: &method,
            url: &url,
            body: body.as_deref(),
            content_type: args.content_type.as_deref(),
            created,
            nonce: &nonce,
        },
    )
    .map_err(anyhow::Error::msg)
}

fn audit_verify(files: &[PathBuf]) -> ExitCode {
    match crate::stage::audit::verify::verify(files) {
        Ok(summary) => {
            println!(
                "ok: {} record(s) in {} file(s), seq {}..{}",
                summary.records,
                summary.files,
                summary.first_seq.map_or("-".into(), |s| s.to_string()),
                summary.last_seq.map_or("-".into(), |s| s.to_string()),
            );
            // An intact chain that starts later still passes (what is there is untampered),
            // but it cannot prove nothing came before: say so on stderr.
            if let Some(first) = summary.first_seq {
                if summary.starts_late() {
                    println!("chain starts at seq {first} (not 1)");
                    eprintln!(
                        "warning: the chain starts at seq {first}, not 1: earlier records were \
                         pruned (keep_files) or their files were not given, and cannot be verified"
                    );
                } else {
                    println!("chain starts at seq 1 (prev_hash 64 zeros): complete");
                }
            }
            ExitCode::SUCCESS
        }
        Err(broken) => {
            eprintln!("broken: {broken}");
            ExitCode::FAILURE
        }
    }
}
