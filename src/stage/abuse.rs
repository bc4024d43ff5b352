//! Stage 4 (and right after stage 5), the abuse guard: the `max_denials`-th denial (401, 403,
//! 429) to one client IP or principal within `window` freezes it for `freeze_for`; frozen
//! callers get 403 `frozen` before authentication (IP) or right after it (principal). Answers
//! that cost nothing but still fill the audit log (400, 404, 405) count as denials of the client
//! address only. Principals are keyed by kind and id, IPv6 addresses by their /64.
//!
//! With the Redis rate-limit backend, denials are counted and freezes kept in Redis (one small
//! script per *denial*, never per admitted request), and every instance mirrors the frozen set
//! every second, so a freeze made on one instance holds on all of them. Locally, denial windows
//! are timestamps per key, capped at `max_denials` and swept on a timer, so memory stays bounded.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use dashmap::DashMap;

use crate::vocab::address::address_group;
use crate::vocab::cause::FrozenCause;
use crate::vocab::error::GatewayError;
use crate::vocab::event::{Event, EventKind, Events};
use crate::vocab::principal_kind::PrincipalKind;
use crate::vocab::shared_store::SharedStore;

/// `[abuse]`, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbuseSettings {
    /// The window in which denials are counted.
    pub window: Duration,
    /// Denials within `window` that trigger a freeze.
    pub max_denials: u32,
    /// How long a freeze lasts.
    pub freeze_for: Duration,
    /// A credential used from outside its IP list is frozen at once (§7.2).
    pub freeze_on_ip_violation: bool,
}

impl Default for AbuseSettings {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(60),
            max_denials: 50,
            freeze_for: Duration::from_secs(900),
            freeze_on_ip_violation: false,
        }
    }
}

/// The key of a principal: `principal:<kind>:<id>` (`principal:jwt:alice`,
/// `principal:api_key:erp-sync`, `principal:mtls:jd-marketplace`). The kind is part of it, so a
/// token whose `sub` equals an API key's id never shares that key's denials or freeze; the kind
/// is one of three fixed words without `:`, so the key stays unambiguous whatever the id holds.
pub fn principal_key(kind: PrincipalKind, id: &str) -> String {
    format!("principal:{}:{id}", kind.as_str())
}

/// The key of a client address's group (see [`address_group`]): `ip:203.0.113.7` for IPv4,
/// `ip:2001:db8:1:2::/64` for IPv6.
pub fn ip_key(ip: IpAddr) -> String {
    match address_group(ip) {
        ipnet::IpNet::V4(net) => format!("ip:{}", net.addr()),
        group @ ipnet::IpNet::V6(_) => format!("ip:{group}"),
    }
}

const DENIAL_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local until_ms = now + tonumber(ARGV[3])
  redis.call('HSET', KEYS[2], ARGV[5], string.format('%.0f', until_ms))
  redis.call('DEL', KEYS[1])
  return until_ms
end
return 0
"#;

/// A freeze made at once (no denial count), timed by Redis's clock like counted ones.
const FREEZE_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = now + tonumber(ARGV[1])
redis.call('HSET', KEYS[1], ARGV[2], string.format('%.0f', until_ms))
return until_ms
"#;
/// Told the key of every new freeze, local or learnt from the shared set.
pub type FreezeHook = Box<dyn Fn(&str) + Send + Sync>;

/// Denial windows and freezes.
pub struct AbuseGuard {
    denials: DashMap<String, VecDeque<u64>>,
    frozen: ArcSwap<DashMap<String, u64>>,
    script: redis::Script,
    freeze_script: redis::Script,
    /// Where freezes are reported (CONTRACT §8.2).
    events: Events,
    on_freeze: std::sync::OnceLock<FreezeHook>,
}

impl Default for AbuseGuard {
    fn default() -> Self {
        Self {
            denials: DashMap::new(),
            frozen: ArcSwap::from_pointee(DashMap::new()),
            script: redis::Script::new(DENIAL_SCRIPT),
            freeze_script: redis::Script::new(FREEZE_SCRIPT),
            events: Events::default(),
            on_freeze: std::sync::OnceLock::new(),
        }
    }
}

/// What a freeze is reported with besides its key (CONTRACT §8.2 event fields).
#[derive(Debug, Clone, Default)]
pub struct FreezeFacts {
    /// The `detail` of the denial or limit that caused it.
    pub detail: Option<&'static str>,
    /// The client address of the request that caused it.
    pub client_ip: Option<IpAddr>,
    /// The route of the request that caused it.
    pub route: Option<Arc<str>>,
}

/// An event of `kind` about the freeze key `key` (`principal:<kind>:<id>` or `ip:<group>`).
pub fn key_event(kind: EventKind, key: &str) -> Event {
    let mut event = Event::new(kind);
    if let Some(principal) = key.strip_prefix("principal:") {
        event.principal = Some(principal.to_owned());
    } else if let Some(ip) = key.strip_prefix("ip:") {
        event.client_ip = ip
            .parse::<IpAddr>()
            .ok()
            .or_else(|| ip.parse::<ipnet::IpNet>().ok().map(|n| n.addr()));
    }
    event
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl AbuseGuard {
    /// True while this client address's group is frozen (no allocation when nothing is frozen).
    pub fn is_ip_frozen(&self, ip: IpAddr) -> bool {
        !self.frozen.load().is_empty() && self.is_frozen(&ip_key(ip))
    }

    /// Stage 4: refuses a frozen client address (403 `frozen`).
    pub fn refuse_frozen_ip(&self, ip: IpAddr) -> Result<(), GatewayError> {
        if self.is_ip_frozen(ip) {
            return Err(GatewayError::Frozen {
                cause: FrozenCause::IpFrozen,
            });
        }
        Ok(())
    }

    /// Right after stage 5: refuses a frozen principal (403 `frozen`).
    pub fn refuse_frozen_principal(
        &self,
        kind: PrincipalKind,
        id: &str,
    ) -> Result<(), GatewayError> {
        if self.is_principal_frozen(kind, id) {
            return Err(GatewayError::Frozen {
                cause: FrozenCause::PrincipalFrozen,
            });
        }
        Ok(())
    }

    /// Counts the refusal `error` of a request from `ip` (by `principal` when known): 401, 403
    /// and 429 against both; 400, 404 and 405 — refusals that cost the caller nothing yet still
    /// write an audit record — against the address only (a partner's buggy query is no attack
    /// on its credential), so a flood of them freezes the address instead of rotating the
    /// evidence out of the log. Other answers are not counted.
    pub async fn count(
        &self,
        settings: &AbuseSettings,
        store: Option<&SharedStore>,
        error: &GatewayError,
        ip: IpAddr,
        principal: Option<(PrincipalKind, &str)>,
    ) {
        let free = matches!(
            error,
            GatewayError::NotFound
                | GatewayError::MethodNotAllowed { .. }
                | GatewayError::BadRequest(_)
                | GatewayError::InvalidParameter { .. }
        );
        if !error.is_denial() && !free {
            return;
        }
        let facts = FreezeFacts {
            detail: error.cause(),
            client_ip: Some(ip),
            route: None,
        };
        self.deny_for(settings, &ip_key(ip), store, &facts).await;
        if let Some((kind, id)) = principal.filter(|_| !free) {
            self.deny_for(settings, &principal_key(kind, id), store, &facts)
                .await;
        }
    }

    /// After the pipeline settled on refusing with `error`: the denial metric of `route`
    /// (`ordergate_denials_total`), then [`count`](Self::count).
    pub async fn refused(
        &self,
        settings: &AbuseSettings,
        store: Option<&SharedStore>,
        error: &GatewayError,
        route: Option<&Arc<str>>,
        caller: (IpAddr, Option<(PrincipalKind, &str)>),
    ) {
        crate::vocab::metrics::denials::count(route, error);
        let (ip, principal) = caller;
        self.count(settings, store, error, ip, principal).await;
    }

    /// True while this principal is frozen (no allocation when nothing is frozen).
    pub fn is_principal_frozen(&self, kind: PrincipalKind, id: &str) -> bool {
        !self.frozen.load().is_empty() && self.is_frozen(&principal_key(kind, id))
    }

    /// True while `key` is frozen.
    pub fn is_frozen(&self, key: &str) -> bool {
        let frozen = self.frozen.load();
        if frozen.is_empty() {
            return false;
        }
        frozen.get(key).is_some_and(|until| *until > now_ms())
    }

    /// Counts one denial against `key`; freezes it at the `max_denials`-th within the window.
    pub async fn deny(&self, settings: &AbuseSettings, key: &str, redis: Option<&SharedStore>) {
        self.deny_for(settings, key, redis, &FreezeFacts::default())
            .await;
    }

    /// [`Self::deny`], with what the freeze it may cause is reported with.
    async fn deny_for(
        &self,
        settings: &AbuseSettings,
        key: &str,
        redis: Option<&SharedStore>,
        facts: &FreezeFacts,
    ) {
        if let Some(redis) = redis {
            match self.deny_shared(settings, key, redis).await {
                Ok(until) => {
                    if until > 0 {
                        self.freeze_locally(key, until, facts);
                    }
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "shared denial count failed; counting locally")
                }
            }
        }
        let now = now_ms();
        let window = settings.window.as_millis() as u64;
        let max = settings.max_denials.max(1) as usize;
        let freeze = {
            let mut times = self.denials.entry(key.to_owned()).or_default();
            while times
                .front()
                .is_some_and(|t| now.saturating_sub(*t) >= window)
            {
                times.pop_front();
            }
            times.push_back(now);
            while times.len() > max {
                times.pop_front();
            }
            times.len() >= max
        };
        if freeze {
            self.denials.remove(key);
            self.freeze_locally(key, now + settings.freeze_for.as_millis() as u64, facts);
        }
    }

    /// Freezes `key` for `freeze_for` now, on this instance only (the local backend).
    pub fn freeze_local(&self, settings: &AbuseSettings, key: &str, facts: &FreezeFacts) {
        self.freeze_locally(
            key,
            now_ms() + settings.freeze_for.as_millis() as u64,
            facts,
        );
    }

    /// Sets where freezes are reported as security events.
    pub fn report_to(&mut self, events: Events) {
        self.events = events;
    }

    async fn deny_shared(
        &self,
        settings: &AbuseSettings,
        key: &str,
        redis: &SharedStore,
    ) -> Result<u64, String> {
        let prefix = redis.prefix();
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(format!("{prefix}{{abuse}}:denials:{key}"))
            .key(format!("{prefix}{{abuse}}:frozen"))
            .arg(settings.window.as_millis() as u64)
            .arg(settings.max_denials.max(1))
            .arg(settings.freeze_for.as_millis() as u64)
            .arg(format!("{}-{}", now_ms(), rand::random::<u64>()))
            .arg(key);
        let mut connection = redis.connection();
        let until: u64 =
            tokio::time::timeout(redis.timeout(), invocation.invoke_async(&mut connection))
                .await
                .map_err(|_| "timeout".to_owned())?
                .map_err(|e| e.to_string())?;
        Ok(until)
    }

    /// Freezes `key` for `freeze_for` now, whatever its denial count (an IP-list violation,
    /// §7.2): here and, with the shared backend, on every instance (locally only when Redis
    /// fails, as for counted denials); `facts` are reported with the freeze. Returns whether it was
    /// not frozen before.
    pub async fn freeze_at_once(
        &self,
        settings: &AbuseSettings,
        key: &str,
        redis: Option<&SharedStore>,
        facts: &FreezeFacts,
    ) -> bool {
        let was = self.is_frozen(key);
        let mut until = now_ms() + settings.freeze_for.as_millis() as u64;
        if let Some(redis) = redis {
            let mut invocation = self.freeze_script.prepare_invoke();
            invocation
                .key(format!("{}{{abuse}}:frozen", redis.prefix()))
                .arg(settings.freeze_for.as_millis() as u64)
                .arg(key);
            let mut connection = redis.connection();
            match tokio::time::timeout(redis.timeout(), invocation.invoke_async(&mut connection))
                .await
            {
                Ok(Ok(shared)) => until = shared,
                Ok(Err(e)) => tracing::warn!(error = %e, "shared freeze failed; freezing locally"),
                Err(_) => tracing::warn!("shared freeze timed out; freezing locally"),
            }
        }
        self.freeze_locally(key, until, facts);
        !was
    }

    /// Sets what is told of each new freeze (once; e.g. to drop a frozen principal's kept
    /// answers, CONTRACT §10).
    pub fn on_freeze(&self, hook: FreezeHook) {
        let _ = self.on_freeze.set(hook);
    }

    fn tell_freeze(&self, key: &str) {
        if let Some(hook) = self.on_freeze.get() {
            hook(key);
        }
    }

    fn freeze_locally(&self, key: &str, until_ms: u64, facts: &FreezeFacts) {
        let frozen = self.frozen.load();
        let previous = frozen.insert(key.to_owned(), until_ms);
        // A lapsed freeze not yet swept makes this one new too.
        if previous.is_none_or(|until| until <= now_ms()) {
            self.tell_freeze(key);
            let kind = key.split(':').next().unwrap_or("unknown").to_owned();
            tracing::warn!(key = %crate::vocab::redact::redact(key), seconds = until_ms.saturating_sub(now_ms()) / 1000, "frozen by the abuse guard");
            metrics::counter!("ordergate_freezes_total", "kind" => kind).increment(1);
            let mut event = key_event(EventKind::Freeze, key);
            event.detail = facts.detail;
            event.client_ip = event.client_ip.or(facts.client_ip);
            event.route = facts.route.clone();
            self.events.emit(event);
        }
        metrics::gauge!("ordergate_frozen").set(frozen.len() as f64);
    }

    /// Every current freeze: `(key, until)`.
    pub fn list(&self) -> Vec<(String, SystemTime)> {
        let now = now_ms();
        let mut out: Vec<(String, SystemTime)> = self
            .frozen
            .load()
            .iter()
            .filter(|e| *e.value() > now)
            .map(|e| {
                (
                    e.key().clone(),
                    UNIX_EPOCH + Duration::from_millis(*e.value()),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// The canonical form of a key an operator names: `principal:<kind>:<id>` with a known kind,
    /// `ip:<addr>` (any address of a group names the group, IPv4-mapped forms included) or
    /// `ip:<IPv6 /64>` as listed. `None` for anything else, so nothing can name a key that no
    /// freeze could ever have.
    pub fn canonical_key(text: &str) -> Option<String> {
        if let Some(rest) = text.strip_prefix("ip:") {
            if let Ok(ip) = rest.parse::<IpAddr>() {
                return Some(ip_key(ip));
            }
            let net = rest.parse::<ipnet::Ipv6Net>().ok()?;
            return (net.prefix_len() == 64).then(|| ip_key(IpAddr::V6(net.addr())));
        }
        let (kind, id) = text.strip_prefix("principal:")?.split_once(':')?;
        let kind = [
            PrincipalKind::Jwt,
            PrincipalKind::ApiKey,
            PrincipalKind::Mtls,
        ]
        .into_iter()
        .find(|k| k.as_str() == kind)?;
        (!id.is_empty()).then(|| principal_key(kind, id))
    }

    /// True while `key` is frozen here or, with the shared backend, on any instance.
    pub async fn holds(&self, key: &str, redis: Option<&SharedStore>) -> bool {
        if self.is_frozen(key) {
            return true;
        }
        let Some(redis) = redis else {
            return false;
        };
        let mut connection = redis.connection();
        let until: Result<Result<Option<u64>, _>, _> = tokio::time::timeout(
            redis.timeout(),
            redis::cmd("HGET")
                .arg(format!("{}{{abuse}}:frozen", redis.prefix()))
                .arg(key)
                .query_async(&mut connection),
        )
        .await;
        matches!(until, Ok(Ok(Some(until))) if until > now_ms())
    }

    /// Lifts a freeze; returns whether there was one.
    pub async fn unfreeze(&self, key: &str, redis: Option<&SharedStore>) -> bool {
        let was = self
            .frozen
            .load()
            .remove(key)
            .is_some_and(|(_, until)| until > now_ms());
        self.denials.remove(key);
        let mut shared = false;
        if let Some(redis) = redis {
            let mut connection = redis.connection();
            let removed: Result<u64, _> = redis::cmd("HDEL")
                .arg(format!("{}{{abuse}}:frozen", redis.prefix()))
                .arg(key)
                .query_async(&mut connection)
                .await;
            shared = removed.is_ok_and(|n| n > 0);
        }
        metrics::gauge!("ordergate_frozen").set(self.frozen.load().len() as f64);
        was || shared
    }

    /// Mirrors the shared frozen set (run every second in redis mode).
    pub async fn sync(&self, redis: &SharedStore) -> Result<(), String> {
        let mut connection = redis.connection();
        let key = format!("{}{{abuse}}:frozen", redis.prefix());
        let all: Vec<(String, u64)> = tokio::time::timeout(
            redis.timeout(),
            redis::cmd("HGETALL").arg(&key).query_async(&mut connection),
        )
        .await
        .map_err(|_| "timeout".to_owned())?
        .map_err(|e| e.to_string())?;
        let now = now_ms();
        let (live, expired): (Vec<_>, Vec<_>) =
            all.into_iter().partition(|(_, until)| *until > now);
        if !expired.is_empty() {
            let mut cmd = redis::cmd("HDEL");
            cmd.arg(&key);
            for (k, _) in &expired {
                cmd.arg(k);
            }
            let _: Result<u64, _> = cmd.query_async(&mut connection).await;
        }
        let map = DashMap::new();
        let before = self.frozen.load();
        for (k, until) in live {
            if before.get(&k).is_none_or(|until| *until <= now) {
                self.tell_freeze(&k);
            }
            map.insert(k, until);
        }
        metrics::gauge!("ordergate_frozen").set(map.len() as f64);
        self.frozen.store(Arc::new(map));
        Ok(())
    }

    /// Forgets expired freezes and empty denial windows.
    pub fn sweep(&self, settings: &AbuseSettings) {
        let now = now_ms();
        let window = settings.window.as_millis() as u64;
        self.denials.retain(|_, times| {
            times
                .back()
                .is_some_and(|t| now.saturating_sub(*t) < window)
        });
        let frozen = self.frozen.load();
        frozen.retain(|_, until| *until > now);
        metrics::gauge!("ordergate_frozen").set(frozen.len() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_name_keys_in_their_canonical_form_only() {
        let key = AbuseGuard::canonical_key;
        assert_eq!(key("ip:127.0.0.1").as_deref(), Some("ip:127.0.0.1"));
        assert_eq!(key("ip:::ffff:127.0.0.1").as_deref(), Some("ip:127.0.0.1"));
        assert_eq!(
            key("ip:2001:db8:1:2::7").as_deref(),
            Some("ip:2001:db8:1:2::/64")
        );
        assert_eq!(
            key("ip:2001:db8:1:2::/64").as_deref(),
            Some("ip:2001:db8:1:2::/64")
        );
        assert_eq!(key("ip:2001:db8::/48"), None);
        assert_eq!(
            key("principal:api_key:erp-sync").as_deref(),
            Some("principal:api_key:erp-sync")
        );
        assert_eq!(
            key("principal:jwt:a:b").as_deref(),
            Some("principal:jwt:a:b")
        );
        for bad in [
            "principal:alice",
            "principal:root:x",
            "principal:jwt:",
            "ip:x",
            "x",
            "",
        ] {
            assert_eq!(key(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn principals_of_different_kinds_never_share_a_freeze() {
        let guard = AbuseGuard::default();
        let settings = AbuseSettings {
            window: Duration::from_secs(60),
            max_denials: 1,
            freeze_for: Duration::from_secs(60),
            freeze_on_ip_violation: false,
        };
        let key = principal_key(PrincipalKind::Jwt, "erp-sync");
        assert_eq!(key, "principal:jwt:erp-sync");
        guard.deny(&settings, &key, None).await;
        assert!(guard.is_principal_frozen(PrincipalKind::Jwt, "erp-sync"));
        assert!(!guard.is_principal_frozen(PrincipalKind::ApiKey, "erp-sync"));
        assert!(!guard.is_principal_frozen(PrincipalKind::Mtls, "erp-sync"));
        assert_ne!(
            principal_key(PrincipalKind::Jwt, "api_key:x"),
            principal_key(PrincipalKind::ApiKey, "x")
        );
    }

    #[tokio::test]
    async fn an_ipv6_client_is_frozen_by_its_64() {
        let guard = AbuseGuard::default();
        let settings = AbuseSettings {
            window: Duration::from_secs(60),
            max_denials: 2,
            freeze_for: Duration::from_secs(60),
            freeze_on_ip_violation: false,
        };
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(ip_key(a), "ip:2001:db8:1:2::/64");
        guard.deny(&settings, &ip_key(a), None).await;
        guard.deny(&settings, &ip_key(b), None).await;
        assert!(guard.is_ip_frozen(a), "two addresses of one /64 add up");
        assert!(!guard.is_ip_frozen("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(
            ip_key("::ffff:203.0.113.7".parse().unwrap()),
            "ip:203.0.113.7"
        );
    }

    #[tokio::test]
    async fn every_new_freeze_is_told_once_and_a_lapsed_one_again() {
        let guard = AbuseGuard::default();
        let told = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let sink = told.clone();
        guard.on_freeze(Box::new(move |key| sink.lock().push(key.to_owned())));
        let settings = AbuseSettings {
            window: Duration::from_secs(60),
            max_denials: 1,
            freeze_for: Duration::from_secs(60),
            freeze_on_ip_violation: false,
        };
        guard.deny(&settings, "principal:jwt:alice", None).await;
        guard.freeze_locally(
            "principal:jwt:alice",
            now_ms() + 60_000,
            &FreezeFacts::default(),
        );
        assert_eq!(
            *told.lock(),
            ["principal:jwt:alice"],
            "a renewal is not new"
        );
        guard.freeze_locally(
            "principal:jwt:bob",
            now_ms().saturating_sub(1),
            &FreezeFacts::default(),
        );
        guard.freeze_locally(
            "principal:jwt:bob",
            now_ms() + 60_000,
            &FreezeFacts::default(),
        );
        assert_eq!(
            told.lock().len(),
            3,
            "a lapsed, unswept freeze made anew is told"
        );
    }

    #[tokio::test]
    async fn the_max_denials_th_denial_freezes() {
        let guard = AbuseGuard::default();
        let settings = AbuseSettings {
            window: Duration::from_secs(60),
            max_denials: 3,
            freeze_for: Duration::from_secs(60),
            freeze_on_ip_violation: false,
        };
        guard.deny(&settings, "ip:127.0.0.1", None).await;
        guard.deny(&settings, "ip:127.0.0.1", None).await;
        assert!(!guard.is_frozen("ip:127.0.0.1"));
        guard.deny(&settings, "ip:127.0.0.1", None).await;
        assert!(guard.is_frozen("ip:127.0.0.1"));
        assert!(!guard.is_frozen("ip:127.0.0.2"));
        assert_eq!(guard.list()[0].0, "ip:127.0.0.1");
        assert!(guard.unfreeze("ip:127.0.0.1", None).await);
        assert!(!guard.is_frozen("ip:127.0.0.1"));
        assert!(!guard.unfreeze("ip:127.0.0.1", None).await);
    }

    #[tokio::test]
    async fn denials_outside_the_window_do_not_count() {
        let guard = AbuseGuard::default();
        let settings = AbuseSettings {
            window: Duration::from_millis(50),
            max_denials: 2,
            freeze_for: Duration::from_secs(60),
            freeze_on_ip_violation: false,
        };
        guard.deny(&settings, "principal:jwt:a", None).await;
        std::thread::sleep(Duration::from_millis(60));
        guard.deny(&settings, "principal:jwt:a", None).await;
        assert!(!guard.is_frozen("principal:jwt:a"));
        guard.sweep(&settings);
    }
}
