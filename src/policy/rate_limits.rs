//! `[rate_limits]`: where buckets live (local or Redis), what happens when Redis fails, and the
//! per-principal and per-IP (failed authentication) buckets; also each `{ rate, burst }` bucket.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use crate::config::files;
use crate::config::problems::KeyPath;
use crate::config::raw;
use crate::policy::compile::Ctx;
use crate::stage::rate_limit::{Backend, BucketRef, BucketSpec, OnBackendError, RateLimitSettings};
use crate::vocab::secret::Secret;
use crate::vocab::units::parse_rate;

/// `[rate_limits]`; absent, local buckets and no global limits.
pub(super) fn compile(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    raw: Option<&raw::RateLimits>,
) -> Option<RateLimitSettings> {
    let Some(raw) = raw else {
        return Some(RateLimitSettings {
            backend: Backend::Local,
            on_backend_error: OnBackendError::Local,
            per_principal: None,
            per_ip_unauthenticated: None,
        });
    };
    let on_backend_error = ctx
        .choice(
            &at.k("on_backend_error"),
            raw.on_backend_error.as_ref(),
            raw::OnBackendError::Local,
            |other| format!("`{other}` must be \"local\" or \"reject\""),
        )
        .map_or(OnBackendError::Local, |choice| match choice {
            raw::OnBackendError::Local => OnBackendError::Local,
            raw::OnBackendError::Reject => OnBackendError::Reject,
        });
    let backend = ctx.choice(
        &at.k("backend"),
        raw.backend.as_ref(),
        raw::Backend::Local,
        |other| format!("`{other}` must be \"local\" or \"redis\""),
    );
    let backend = match backend {
        Some(raw::Backend::Redis) => redis_backend(ctx, at, raw),
        Some(raw::Backend::Local) | None => Backend::Local,
    };
    let per_principal = raw
        .per_principal
        .as_ref()
        .and_then(|b| bucket(ctx, &at.k("per_principal"), "principal".into(), b));
    let per_ip_unauthenticated = raw.per_ip_unauthenticated.as_ref().and_then(|b| {
        bucket(
            ctx,
            &at.k("per_ip_unauthenticated"),
            "failed-auth".into(),
            b,
        )
    });
    Some(RateLimitSettings {
        backend,
        on_backend_error,
        per_principal,
        per_ip_unauthenticated,
    })
}

/// `backend = "redis"`: the URL with the password filled in from the environment or a file.
fn redis_backend(ctx: &mut Ctx<'_>, at: &KeyPath, raw: &raw::RateLimits) -> Backend {
    let timeout = ctx.duration(
        &at.k("redis_timeout"),
        raw.redis_timeout.as_deref(),
        Duration::from_millis(100),
    );
    let password = files::secret(
        ctx.base,
        raw.redis_password_env.as_deref(),
        raw.redis_password_file.as_deref(),
    )
    .map_err(|e| ctx.bad(&at.k("redis_password_env"), e))
    .ok()
    .flatten();
    match raw
        .redis_url
        .as_deref()
        .map(|u| redis_url(u, password.as_ref()))
    {
        Some(Ok(url)) => Backend::Redis {
            url,
            timeout,
            prefix: raw
                .redis_key_prefix
                .clone()
                .unwrap_or_else(|| "ordergate:".into()),
        },
        Some(Err(e)) => {
            ctx.bad(&at.k("redis_url"), e);
            Backend::Local
        }
        None => {
            ctx.bad(&at.k("backend"), "the redis backend needs `redis_url`");
            Backend::Local
        }
    }
}

/// Checks a Redis URL (no inline password) and fills the password in.
fn redis_url(url: &str, password: Option<&Secret>) -> Result<Secret, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("`redis_url` must look like redis://host:port/db")?;
    if !matches!(scheme, "redis" | "rediss" | "valkey" | "valkeys") {
        return Err("`redis_url` must start with redis:// or rediss://".into());
    }
    let (userinfo, host) = match rest.split_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    if userinfo.is_some_and(|u| u.contains(':')) {
        return Err("`redis_url` must not contain a password: use `redis_password_env` or `redis_password_file`".into());
    }
    let user = userinfo.unwrap_or("");
    let full = match password {
        Some(p) => {
            let mut encoded = String::new();
            crate::vocab::percent::encode_into(p.expose(), &mut encoded);
            format!("{scheme}://{user}:{encoded}@{host}")
        }
        None => url.to_owned(),
    };
    redis::Client::open(full.as_str()).map_err(|e| format!("`redis_url` is not usable: {e}"))?;
    Ok(Secret::new(full))
}

/// One token bucket (`{ rate, burst }`); its id carries the spec's fingerprint, so a reload that
/// changes the rate starts a fresh bucket instead of reusing the old state.
pub(super) fn bucket(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    id: String,
    raw: &raw::Bucket,
) -> Option<BucketRef> {
    let rate = match parse_rate(&raw.rate) {
        Ok(r) => r,
        Err(e) => {
            ctx.bad(&at.k("rate"), e);
            return None;
        }
    };
    let burst = match raw.burst {
        Some(b) => match NonZeroU32::new(b) {
            Some(b) => b,
            None => {
                ctx.bad(&at.k("burst"), "must be at least 1");
                return None;
            }
        },
        None => rate.count,
    };
    let spec = BucketSpec { rate, burst };
    Some(BucketRef {
        id: Arc::from(format!("{id}:{}", spec.fingerprint())),
        spec,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::redis_url;
    use crate::policy::fixtures::{check, compiled};
    use crate::stage::rate_limit::{Backend, OnBackendError};
    use crate::vocab::secret::Secret;

    #[test]
    fn bad_rate_limit_values_are_reported_at_their_keys() {
        check(&[
            (
                r#"[rate_limits]
backend = "memcached"
on_backend_error = "ignore"
per_principal = { rate = "many", burst = 1 }
per_ip_unauthenticated = { rate = "10/min", burst = 0 }
"#,
                &[
                    "2:11: `memcached` must be \"local\" or \"redis\"",
                    "3:20: `ignore` must be \"local\" or \"reject\"",
                    "4:26: rate `many` must look like `120/min`",
                    "5:53: must be at least 1",
                ],
            ),
            (
                "[rate_limits]\nbackend = \"redis\"\n",
                &["2:11: the redis backend needs `redis_url`"],
            ),
            (
                "[rate_limits]\nbackend = \"redis\"\nredis_url = \"redis://user:pw@127.0.0.1:6379\"\n",
                &[
                    "3:13: `redis_url` must not contain a password: use `redis_password_env` or `redis_password_file`",
                ],
            ),
            (
                "[rate_limits]\nbackend = \"redis\"\nredis_url = \"http://127.0.0.1:6379\"\nredis_timeout = \"1\"\n",
                &[
                    "3:13: `redis_url` must start with redis:// or rediss://",
                    "4:17: duration `1` needs a unit (ms, s, m, h, d)",
                ],
            ),
            (
                "[rate_limits]\nbackend = \"local\"\non_backend_error = \"reject\"\n",
                &[],
            ),
            (
                "[rate_limits]\nbackend = \"Redis\"\n",
                &["2:11: `Redis` must be \"local\" or \"redis\""],
            ),
        ]);
    }

    #[test]
    fn the_redis_password_is_filled_in_encoded_never_inline() {
        let password = Secret::new("p@ss:w/rd".to_owned());
        let url = redis_url("redis://app@127.0.0.1:6379/0", Some(&password)).unwrap();
        assert_eq!(url.expose(), "redis://app:p%40ss%3Aw%2Frd@127.0.0.1:6379/0");
        assert_eq!(format!("{url:?}"), "<redacted>");
        for bad in [
            "127.0.0.1:6379",
            "https://127.0.0.1",
            "redis://u:pw@127.0.0.1",
        ] {
            assert!(redis_url(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_backend_choice_compiles_to_its_setting() {
        let nowhere = Path::new("/nonexistent-ordergate");
        for (text, want) in [
            ("", OnBackendError::Local),
            ("on_backend_error = \"local\"\n", OnBackendError::Local),
            ("on_backend_error = \"reject\"\n", OnBackendError::Reject),
        ] {
            let limits = compiled(nowhere, &format!("[rate_limits]\n{text}")).rate_limits;
            assert_eq!(limits.on_backend_error, want, "{text}");
            assert!(matches!(limits.backend, Backend::Local), "{text}");
        }
        let redis = compiled(
            nowhere,
            "[rate_limits]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:6379/0\"\n",
        )
        .rate_limits;
        assert!(
            matches!(&redis.backend, Backend::Redis { url, .. } if url.expose() == "redis://127.0.0.1:6379/0"),
            "{:?}",
            redis.backend
        );
    }
}
