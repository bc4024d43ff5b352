//! `[auth.signatures]` and the `signature` key of every `[[auth.api_keys.keys]]` and
//! `[[auth.mtls.clients]]` entry (CONTRACT §7.1): the window, the nonce store, and each signing
//! credential's verification key, read from its file or secret now so that a reload with a
//! broken key is refused before anything is swapped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::choice::Choice;
use crate::config::files;
use crate::config::problems::KeyPath;
use crate::config::raw;
use crate::policy::compile::Ctx;
use crate::stage::authn::mtls::Subject;
use crate::stage::signature::{NonceStore, OnStoreError, SignatureSettings, VerifyKey};
use crate::vocab::principal_kind::PrincipalKind;

/// The settings, from `[auth]` (`at`) and `[rate_limits]` (the default nonce store).
pub(super) fn compile(ctx: &mut Ctx<'_>, at: &KeyPath, raw: &raw::Policy) -> SignatureSettings {
    let shared_backend = raw
        .rate_limits
        .as_ref()
        .and_then(|r| r.backend.as_ref())
        .is_some_and(|b| *b == Choice::Known(raw::Backend::Redis));
    let mut settings = SignatureSettings {
        nonce_store: if shared_backend {
            NonceStore::Redis
        } else {
            NonceStore::Local
        },
        ..SignatureSettings::default()
    };
    if let Some(s) = &raw.auth.signatures {
        let at = at.k("signatures");
        settings.max_age = ctx.duration(&at.k("max_age"), s.max_age.as_deref(), settings.max_age);
        if settings.max_age < Duration::from_secs(1) {
            ctx.bad(&at.k("max_age"), "`max_age` must be at least 1s");
        }
        // Bounded, so a nonce's lifetime is a Redis expiry and a signed request cannot be
        // replayable for days.
        if settings.max_age > Duration::from_secs(86_400) {
            ctx.bad(&at.k("max_age"), "`max_age` must be at most 1d");
        }
        settings.clock_skew = ctx.duration(
            &at.k("clock_skew"),
            s.clock_skew.as_deref(),
            settings.clock_skew,
        );
        if settings.clock_skew > Duration::from_secs(3_600) {
            ctx.bad(&at.k("clock_skew"), "`clock_skew` must be at most 1h");
        }
        let default_store = if shared_backend {
            raw::NonceStore::Redis
        } else {
            raw::NonceStore::Local
        };
        settings.nonce_store = match ctx.choice(
            &at.k("nonce_store"),
            s.nonce_store.as_ref(),
            default_store,
            |other| format!("`{other}` must be \"local\" or \"redis\""),
        ) {
            Some(raw::NonceStore::Redis) => {
                if !shared_backend {
                    ctx.bad(
                        &at.k("nonce_store"),
                        "`nonce_store = \"redis\"` uses the [rate_limits] Redis: set `backend = \"redis\"` there",
                    );
                }
                NonceStore::Redis
            }
            Some(raw::NonceStore::Local) | None => NonceStore::Local,
        };
        settings.on_store_error = match ctx.choice(
            &at.k("on_store_error"),
            s.on_store_error.as_ref(),
            raw::OnStoreError::Reject,
            |other| format!("`{other}` must be \"reject\" or \"allow\""),
        ) {
            Some(raw::OnStoreError::Allow) => OnStoreError::Allow,
            Some(raw::OnStoreError::Reject) | None => OnStoreError::Reject,
        };
    }
    let mut keys = HashMap::new();
    if let Some(api_keys) = &raw.auth.api_keys {
        for (i, key) in api_keys.keys.iter().enumerate() {
            let Some(key) = key else { continue };
            let Some(signature) = &key.signature else {
                continue;
            };
            let at = at.k("api_keys").k("keys").i(i).k("signature");
            if let Some(verify) = verify_key(ctx, &at, signature) {
                keys.insert((PrincipalKind::ApiKey, Arc::from(key.id.as_str())), verify);
            }
        }
    }
    // mTLS principals are named by their CN: two clients with one CN cannot hold different keys.
    let mut mtls_ids: HashMap<String, bool> = HashMap::new();
    for (i, client) in raw.auth.mtls_clients.iter().enumerate() {
        let Some(client) = client else { continue };
        let Some(cn) = Subject::parse(&client.subject)
            .ok()
            .and_then(|s| s.common_name().map(str::to_owned))
        else {
            continue; // reported by [auth.mtls]
        };
        let at = at.k("mtls").k("clients").i(i);
        let signs = client.signature.is_some();
        if let Some(earlier_signs) = mtls_ids.insert(cn.clone(), signs)
            && (signs || earlier_signs)
        {
            ctx.bad(
                &at.k("subject"),
                format!("another client has the CN `{cn}`: a signing client needs a CN of its own"),
            );
        }
        if let Some(signature) = &client.signature
            && let Some(verify) = verify_key(ctx, &at.k("signature"), signature)
        {
            keys.insert((PrincipalKind::Mtls, Arc::from(cn.as_str())), verify);
        }
    }
    settings.keys = keys;
    settings
}

/// One `signature = { alg, public_key | secret_env | secret_file }`.
fn verify_key(ctx: &mut Ctx<'_>, at: &KeyPath, raw: &raw::SignatureKey) -> Option<VerifyKey> {
    let alg = ctx.choice(
        &at.k("alg"),
        Some(&raw.alg),
        raw::SignatureAlg::Ed25519,
        |other| format!("`{other}` must be \"ed25519\" or \"hmac-sha256\""),
    )?;
    match alg {
        raw::SignatureAlg::Ed25519 => {
            if raw.secret_env.is_some() || raw.secret_file.is_some() {
                ctx.bad(
                    at,
                    "ed25519 takes a `public_key` file, not a secret (the gateway holds no private key)",
                );
            }
            let Some(file) = &raw.public_key else {
                ctx.bad(at, "ed25519 needs `public_key` (a PEM file)");
                return None;
            };
            let path = files::resolve(ctx.base, file);
            let key = std::fs::read(&path)
                .map_err(|e| format!("{}: {e}", path.display()))
                .and_then(|pem| {
                    VerifyKey::ed25519_from_pem(&pem)
                        .map_err(|e| format!("{}: {e}", path.display()))
                });
            key.map_err(|e| ctx.bad(&at.k("public_key"), e)).ok()
        }
        raw::SignatureAlg::HmacSha256 => {
            if raw.public_key.is_some() {
                ctx.bad(
                    &at.k("public_key"),
                    "hmac-sha256 takes `secret_env` or `secret_file`, not a public key",
                );
            }
            let secret_at = at.k(if raw.secret_env.is_some() {
                "secret_env"
            } else {
                "secret_file"
            });
            match files::secret(
                ctx.base,
                raw.secret_env.as_deref(),
                raw.secret_file.as_deref(),
            ) {
                Ok(Some(secret)) => VerifyKey::hmac(secret.expose().as_bytes())
                    .map_err(|e| ctx.bad(&secret_at, e))
                    .ok(),
                Ok(None) => {
                    ctx.bad(
                        at,
                        "hmac-sha256 needs `secret_env` or `secret_file` (secrets are never inline)",
                    );
                    None
                }
                Err(e) => {
                    ctx.bad(&secret_at, e);
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::fixtures::{check, compiled};

    #[test]
    fn bad_signature_settings_are_reported_at_their_keys() {
        check(&[
            (
                r#"[auth.signatures]
max_age = "0s"
clock_skew = "5"
nonce_store = "redis"
on_store_error = "ignore"
[auth.api_keys]
[[auth.api_keys.keys]]
id = "k1"
hash = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
signature = { alg = "rsa", public_key = "k.pem" }
[[auth.api_keys.keys]]
id = "k2"
hash = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
signature = { alg = "ed25519" }
[[auth.api_keys.keys]]
id = "k3"
hash = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
signature = { alg = "hmac-sha256", secret_env = "ORDERGATE_TEST_VARIABLE_THAT_IS_NEVER_SET" }
[[auth.api_keys.keys]]
id = "k4"
hash = "sha256:3333333333333333333333333333333333333333333333333333333333333333"
signature = { alg = "ed25519", public_key = "missing.pem" }
"#,
                &[
                    "2:11: `max_age` must be at least 1s",
                    "3:14: duration `5` needs a unit (ms, s, m, h, d)",
                    "4:15: `nonce_store = \"redis\"` uses the [rate_limits] Redis: set `backend = \"redis\"` there",
                    "5:18: `ignore` must be \"reject\" or \"allow\"",
                    "10:21: `rsa` must be \"ed25519\" or \"hmac-sha256\"",
                    "14:13: ed25519 needs `public_key` (a PEM file)",
                    "18:49: environment variable `ORDERGATE_TEST_VARIABLE_THAT_IS_NEVER_SET` is not set",
                    "22:45: /nonexistent-ordergate/missing.pem: No such file or directory (os error 2)",
                ],
            ),
            ("[auth.signatures]\nmax_age = \"2m\"\n", &[]),
            (
                "[auth.signatures]\nmax_age = \"2d\"\nclock_skew = \"2h\"\n",
                &[
                    "2:11: `max_age` must be at most 1d",
                    "3:14: `clock_skew` must be at most 1h",
                ],
            ),
        ]);
    }

    /// A slower Redis gives the fleet longer to learn a reload's nonce lifetime.
    #[test]
    fn the_fleet_propagation_follows_the_redis_timeout() {
        let redis = |timeout: &str| {
            compiled(
                std::path::Path::new("/nonexistent-ordergate"),
                &format!(
                    "[rate_limits]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:6379\"\nredis_timeout = \"{timeout}\"\n"
                ),
            )
            .signatures
        };
        let slow = redis("2s");
        assert_eq!(slow.nonce_store, crate::stage::signature::NonceStore::Redis);
        assert_eq!(slow.fleet_propagation, std::time::Duration::from_secs(10));
        assert_eq!(
            redis("100ms").fleet_propagation,
            std::time::Duration::from_secs(3)
        );
    }

    #[test]
    fn short_hmac_secrets_and_bad_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("short.secret"), "too short\n").unwrap();
        std::fs::write(dir.path().join("long.secret"), "x".repeat(32)).unwrap();
        std::fs::write(dir.path().join("not-a-key.pem"), "hello").unwrap();
        let policy = |signature: &str| {
            format!(
                "[auth.api_keys]\n[[auth.api_keys.keys]]\nid = \"k1\"\nhash = \"sha256:0000000000000000000000000000000000000000000000000000000000000000\"\nsignature = {signature}\n"
            )
        };
        let problems =
            |signature: &str| crate::policy::fixtures::problems_in(dir.path(), &policy(signature));
        assert_eq!(
            problems(r#"{ alg = "hmac-sha256", secret_file = "short.secret" }"#),
            "5:50: the HMAC secret must be at least 32 bytes"
        );
        assert_eq!(
            problems(r#"{ alg = "hmac-sha256", secret_file = "long.secret" }"#),
            ""
        );
        assert!(
            problems(r#"{ alg = "ed25519", public_key = "not-a-key.pem" }"#)
                .ends_with("not-a-key.pem: no PEM `PUBLIC KEY` found"),
        );
        let p = compiled(
            dir.path(),
            &policy(r#"{ alg = "hmac-sha256", secret_file = "long.secret" }"#),
        );
        assert_eq!(p.signatures.keys.len(), 1);
    }
}
