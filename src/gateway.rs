//! The running gateway: state that outlives a policy (buckets, freezes, in-flight count, the
//! audit writer) and the live policy generation, swapped atomically on reload. A request loads
//! the generation once and finishes under it, whatever reloads happen meanwhile.

pub mod release;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use parking_lot::Mutex;

use crate::policy::Policy;
use crate::stage::abuse::AbuseGuard;
use crate::stage::audit::AuditSink;
use crate::stage::authn::jwt::JwtVerifier;
use crate::stage::canary::{CanaryGuard, UpstreamRef};
use crate::stage::events::Webhook;
use crate::stage::load_shed::InFlightLimit;
use crate::stage::proxy::UpstreamRuntime;
use crate::stage::rate_limit::{Backend, RateLimiter, RedisBuckets};
use crate::stage::signature::nonce::StoreError;
use crate::stage::signature::{self, FleetTtl, LocalNonces, NonceStore, SignatureSettings};
use crate::stage::volume::VolumeGuard;
use crate::vocab::cutoff::Cutoff;
use crate::vocab::error::StartError;
use crate::vocab::event::{Event, EventKind, Events};
use crate::vocab::shared_store::SharedStore;

/// One policy generation with the runtime pieces built from it.
pub struct Live {
    /// The compiled policy this generation serves.
    pub policy: Arc<Policy>,
    /// The JWT verifier with its key set and token cache (none without `[auth.jwt]`).
    pub jwt: Option<JwtVerifier>,
    /// The upstream pool and breaker (carried over when `[upstream]` is unchanged).
    pub upstream: Arc<UpstreamRuntime>,
    /// Every named upstream's pool and breaker, indexed like `policy.upstreams` (the first is
    /// `upstream`), each carried over while its settings are unchanged.
    pub upstreams: Vec<Arc<UpstreamRuntime>>,
    /// Per route, indexed like `policy.routes`: its canary guard and stale-if-error store.
    pub releases: Vec<release::RouteRelease>,
}

impl Live {
    /// Builds a generation, keeping the upstream pool and breaker of `previous` when the
    /// upstream settings did not change.
    fn build(
        mut policy: Policy,
        previous: Option<&Live>,
        events: &Events,
    ) -> Result<Self, StartError> {
        // Nonces the running generation recorded keep protecting the window they were kept for
        // (computed again at the swap, `carry_nonces_from`, which is when the old one stops).
        match previous {
            Some(previous) => policy
                .signatures
                .carry_from(&previous.policy.signatures, signature::now_secs()),
            None => policy.signatures.start_at(signature::now_secs()),
        }
        let jwt = jwt_verifier(&policy)?;
        let upstreams = release::upstreams(
            &policy,
            previous.map(|p| (&*p.policy, p.upstreams.as_slice())),
        )?;
        let upstream = match upstreams.first() {
            Some(u) => u.clone(),
            None => Arc::new(UpstreamRuntime::new(&policy.upstream).map_err(|source| {
                StartError::Upstream {
                    name: "default".into(),
                    source,
                }
            })?),
        };
        let releases = release::routes(
            &policy,
            previous.map(|p| (&*p.policy, p.releases.as_slice())),
            events,
        );
        Ok(Self {
            policy: Arc::new(policy),
            jwt,
            upstream,
            upstreams,
            releases,
        })
    }

    /// The signature window this generation inherits, settled at the moment it replaces
    /// `current` (until then `current` still accepts requests and records their nonces).
    fn carry_nonces_from(&mut self, current: &Live) {
        match Arc::get_mut(&mut self.policy) {
            Some(policy) => policy
                .signatures
                .carry_from(&current.policy.signatures, signature::now_secs()),
            // Not shared before it is installed; were it, the carry made at build stands.
            None => tracing::warn!(
                "the new policy was shared before its swap: nonce carry kept from its build"
            ),
        }
    }

    /// The runtime of a named upstream.
    pub fn upstream_runtime(&self, upstream: UpstreamRef) -> &Arc<UpstreamRuntime> {
        self.upstreams.get(upstream.0).unwrap_or(&self.upstream)
    }

    /// Every canary guard of this generation.
    pub fn guards(&self) -> Vec<Arc<CanaryGuard>> {
        self.releases
            .iter()
            .filter_map(|r| r.guard.clone())
            .collect()
    }

    /// Drops the kept answers of a frozen principal (`principal:<kind>:<id>`) on every route.
    pub fn drop_stale_of(&self, key: &str) {
        if !key.starts_with("principal:") {
            return;
        }
        for store in self.releases.iter().filter_map(|r| r.stale.as_ref()) {
            store.drop_principal(key);
        }
    }
}

/// A candidate policy that decides every request alongside the live one (`serve --shadow`),
/// without serving anything: its settings and its own JWT verifier (keys, cache).
pub struct Candidate {
    /// The file it was read from (reloaded with the live policy).
    pub path: PathBuf,
    /// The compiled candidate policy.
    pub policy: Arc<Policy>,
    /// Its JWT verifier (none without `[auth.jwt]`).
    pub jwt: Option<JwtVerifier>,
}

impl Candidate {
    /// Loads and validates `path` and every file it names.
    async fn load(path: &Path) -> Result<Self, StartError> {
        let owned = path.to_path_buf();
        let policy = tokio::task::spawn_blocking(move || crate::policy::load(&owned))
            .await
            .map_err(|source| StartError::Load { source })?
            .map_err(|problems| StartError::Policy {
                problems: problems.iter().map(ToString::to_string).collect(),
            })?;
        let jwt = jwt_verifier(&policy)?;
        if let Some(jwt) = &jwt {
            jwt.start().await;
        }
        Ok(Self {
            path: path.to_path_buf(),
            policy: Arc::new(policy),
            jwt,
        })
    }
}

/// The gateway's shared state.
pub struct Gateway {
    live: ArcSwap<Live>,
    /// The rate-limit buckets, local or shared through Redis.
    pub limiter: RateLimiter,
    /// Denial windows and freezes.
    pub abuse: AbuseGuard,
    /// The requests being served, against `max_in_flight`.
    pub in_flight: InFlightLimit,
    /// The audit writer and its queue.
    pub audit: AuditSink,
    /// Reached when the shutdown grace runs out.
    pub cutoff: Cutoff,
    /// Security events (CONTRACT §8.2), reported by every stage that sees one.
    pub events: Events,
    /// The volume and enumeration guard's windows (CONTRACT §8.3).
    pub volume: VolumeGuard,
    /// Signature nonces seen by this instance (`nonce_store = "local"`), kept across reloads.
    pub nonces: LocalNonces,
    /// The widest nonce lifetime of the instances sharing the Redis nonce store.
    pub fleet_ttl: FleetTtl,
    policy_path: PathBuf,
    listening: AtomicBool,
    backend: Mutex<Option<Backend>>,
    reload_lock: tokio::sync::Mutex<()>,
    shadow: ArcSwapOption<Candidate>,
}

impl Gateway {
    /// Starts the audit writer and the first policy generation.
    pub async fn start(policy: Policy, policy_path: &Path) -> Result<Arc<Self>, StartError> {
        let events = Events::default();
        let audit = AuditSink::start(policy.audit.clone(), events.clone()).map_err(|e| {
            StartError::Audit {
                source: Box::new(e),
            }
        })?;
        let webhook = start_webhook(&policy)?;
        let live = Live::build(policy, None, &events)?;
        events.set_deliverer(webhook);
        let mut abuse = AbuseGuard::default();
        abuse.report_to(events.clone());
        let mut volume = VolumeGuard::default();
        volume.report_to(events.clone());
        if let Some(jwt) = &live.jwt {
            jwt.start().await;
        }
        let gateway = Arc::new(Self {
            live: ArcSwap::from_pointee(live),
            limiter: RateLimiter::default(),
            abuse,
            in_flight: InFlightLimit::default(),
            audit,
            cutoff: Cutoff::default(),
            events,
            volume,
            nonces: LocalNonces::default(),
            fleet_ttl: FleetTtl::default(),
            policy_path: policy_path.to_path_buf(),
            listening: AtomicBool::new(false),
            backend: Mutex::new(None),
            reload_lock: tokio::sync::Mutex::new(()),
            shadow: ArcSwapOption::empty(),
        });
        gateway.ensure_backend();
        gateway.spawn_maintenance();
        export_known_series(&gateway.live().policy);
        let weak = Arc::downgrade(&gateway);
        gateway.abuse.on_freeze(Box::new(move |key| {
            if let Some(gateway) = weak.upgrade() {
                gateway.live().drop_stale_of(key);
            }
        }));
        Ok(gateway)
    }

    /// The current generation.
    pub fn live(&self) -> Arc<Live> {
        self.live.load_full()
    }

    /// The policy file this gateway reloads.
    pub fn policy_path(&self) -> &Path {
        &self.policy_path
    }

    /// Marks the listener as up (for `/readyz`).
    pub fn set_listening(&self, up: bool) {
        self.listening.store(up, Ordering::Release);
    }

    /// Ready: listening, able to record what it serves, and not saturated — a free audit queue
    /// slot and a free in-flight slot — so a balancer stops sending before requests get 503.
    pub fn ready(&self) -> bool {
        self.listening.load(Ordering::Acquire)
            && self.audit.accepting()
            && self.audit.has_room()
            && self.in_flight.current() < self.live().policy.server.max_in_flight
    }

    /// The candidate policy of `serve --shadow`, if any.
    pub fn shadow(&self) -> Option<Arc<Candidate>> {
        self.shadow.load_full()
    }

    /// Loads `path` as the candidate policy that decides every request alongside the live one.
    pub async fn start_shadow(&self, path: &Path) -> Result<(), StartError> {
        let candidate = Candidate::load(path).await?;
        tracing::info!(candidate = %path.display(), "shadow policy loaded: it decides every request too, and serves none");
        export_shadow_series(&self.live().policy, &candidate.policy);
        self.shadow.store(Some(Arc::new(candidate)));
        Ok(())
    }

    /// Reloads the live policy and, with `--shadow`, the candidate; each is kept as it was when
    /// its file is invalid.
    pub async fn reload(self: &Arc<Self>) -> Result<(), StartError> {
        let live = self.reload_policy().await;
        let Some(current) = self.shadow() else {
            return live;
        };
        let shadow = match Candidate::load(&current.path).await {
            Ok(candidate) => {
                tracing::info!(candidate = %current.path.display(), "shadow policy reloaded");
                export_shadow_series(&self.live().policy, &candidate.policy);
                self.shadow.store(Some(Arc::new(candidate)));
                Ok(())
            }
            Err(refused) => {
                for p in refused.to_string().lines() {
                    tracing::error!(problem = %p, "shadow reload refused: the candidate is invalid; keeping the previous one");
                }
                Err(refused)
            }
        };
        match (live, shadow) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(live), Err(shadow)) => Err(StartError::Both {
                live: Box::new(live),
                shadow: Box::new(shadow),
            }),
            (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
        }
    }

    /// Re-reads and validates the policy and every file it names; swaps it in only if all is
    /// well. In-flight requests finish under the generation they started with.
    async fn reload_policy(self: &Arc<Self>) -> Result<(), StartError> {
        let _one_at_a_time = self.reload_lock.lock().await;
        let path = self.policy_path.clone();
        let loaded = tokio::task::spawn_blocking(move || crate::policy::load(&path))
            .await
            .map_err(|source| StartError::Load { source })?;
        let mut policy = match loaded {
            Ok(p) => p,
            Err(problems) => {
                metrics::counter!("ordergate_reloads_total", "result" => "invalid").increment(1);
                self.report_reload("invalid");
                for p in &problems {
                    tracing::error!(problem = %p, "reload refused: the policy is invalid; keeping the running one");
                }
                return Err(StartError::Policy {
                    problems: problems.iter().map(ToString::to_string).collect(),
                });
            }
        };
        for w in &policy.warnings {
            tracing::warn!(line = w.line, col = w.col, "policy: {}", w.message);
        }
        let current = self.live();
        if policy.server.listen != current.policy.server.listen
            || policy.server.admin_listen != current.policy.server.admin_listen
        {
            tracing::warn!("listen addresses changed: they take effect at the next restart");
        }
        if policy.server.workers != current.policy.server.workers
            || policy.server.threading != current.policy.server.threading
        {
            tracing::warn!(
                "[server] workers or threading changed: it takes effect at the next restart"
            );
        }
        // Start-only settings keep their running values, so what follows from them (one
        // upstream pool per running worker) matches the threads that run.
        policy.keep_threads_of(&current.policy);
        if !self.audit.settings().same_writer(&policy.audit) {
            tracing::warn!(
                "[audit] changes other than sensitive_params take effect at the next restart"
            );
        }
        self.audit
            .set_sensitive(policy.audit.sensitive_params.clone());
        let built = start_webhook(&policy)
            .and_then(|webhook| Ok((Live::build(policy, Some(&current), &self.events)?, webhook)));
        let (live, webhook) = match built {
            Ok(l) => l,
            Err(e) => {
                metrics::counter!("ordergate_reloads_total", "result" => "invalid").increment(1);
                self.report_reload("invalid");
                tracing::error!(error = %e, "reload refused");
                return Err(e);
            }
        };
        if let Some(jwt) = &live.jwt {
            jwt.start().await;
        }
        export_known_series(&live.policy);
        if !current.releases.iter().all(|r| r.guard.is_none())
            || !live.releases.iter().all(|r| r.guard.is_none())
        {
            self.clear_shared_canary(None).await;
        }
        // The fleet records for the new window before this instance accepts with it.
        self.publish_nonce_ttl(&live.policy.signatures).await;
        let mut live = live;
        live.carry_nonces_from(&current);
        self.live.store(Arc::new(live));
        // The old webhook finishes what it queued; events from now on carry the new policy hash.
        self.events.set_deliverer(webhook);
        self.ensure_backend();
        metrics::counter!("ordergate_reloads_total", "result" => "ok").increment(1);
        self.report_reload("ok");
        tracing::info!(policy = %self.policy_path.display(), "policy reloaded");
        Ok(())
    }

    /// Publishes the window of `signatures` to the fleet on the shared Redis, and reads back
    /// the fleet's lifetime and marks ([`signature::fleet`]): only where nonces are recorded
    /// there.
    async fn publish_nonce_ttl(&self, signatures: &SignatureSettings) {
        if let Some(redis) = self.limiter.redis()
            && let Err(e) = self.publish_nonce_ttl_on(redis.store(), signatures).await
        {
            tracing::warn!(error = %e, "could not share the nonce lifetime");
        }
    }

    /// [`Self::publish_nonce_ttl`] on `store`.
    async fn publish_nonce_ttl_on(
        &self,
        store: &SharedStore,
        signatures: &SignatureSettings,
    ) -> Result<(), StoreError> {
        if signatures.nonce_store != NonceStore::Redis || signatures.keys.is_empty() {
            return Ok(());
        }
        self.fleet_ttl.publish(store, signatures).await
    }

    /// Resets the canary guard of `route` here and, with Redis, on every instance (the admin
    /// `POST /admin/canary/<route>/reset`). False when the route has no canary.
    pub async fn reset_canary(&self, route: &str) -> bool {
        let live = self.live();
        let Some(guard) = live.guards().into_iter().find(|g| &**g.route() == route) else {
            return false;
        };
        self.clear_shared_canary(Some(route)).await;
        guard.reset();
        true
    }

    /// Forgets the shared canary trips (of one route, or all on reload).
    async fn clear_shared_canary(&self, route: Option<&str>) {
        if let Some(redis) = self.limiter.redis()
            && let Err(e) = crate::stage::canary::shared::clear(redis.store(), route).await
        {
            tracing::warn!(error = %e, "could not clear the shared canary state");
        }
    }

    /// Connects to (or drops) the shared rate-limit backend to match the live policy.
    fn ensure_backend(self: &Arc<Self>) {
        let wanted = self.live().policy.rate_limits.backend.clone();
        let mut current = self.backend.lock();
        if current.as_ref() == Some(&wanted) {
            return;
        }
        *current = Some(wanted.clone());
        self.limiter.set_redis(None);
        let Backend::Redis {
            url,
            timeout,
            prefix,
        } = wanted
        else {
            return;
        };
        let client = match redis::Client::open(url.expose()) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "redis_url is unusable");
                return;
            }
        };
        let weak = Arc::downgrade(self);
        let wanted = Backend::Redis {
            url,
            timeout,
            prefix: prefix.clone(),
        };
        tokio::spawn(async move {
            loop {
                let connected =
                    RedisBuckets::connect(client.clone(), timeout, prefix.clone()).await;
                let Some(gateway) = weak.upgrade() else {
                    return;
                };
                if gateway.backend.lock().as_ref() != Some(&wanted) {
                    return; // a reload changed the backend meanwhile
                }
                // No nonce goes there before this instance knows the fleet's lifetime.
                let published = match connected {
                    Ok(redis) => {
                        let live = gateway.live();
                        match gateway
                            .publish_nonce_ttl_on(redis.store(), &live.policy.signatures)
                            .await
                        {
                            Ok(()) => Ok(redis),
                            Err(e) => Err(e.to_string()),
                        }
                    }
                    Err(e) => Err(e.to_string()),
                };
                match published {
                    Ok(redis) => {
                        {
                            // Checked again: a reload may have changed the backend while the
                            // lifetime was published.
                            let current = gateway.backend.lock();
                            if current.as_ref() != Some(&wanted) {
                                return;
                            }
                            gateway.limiter.set_redis(Some(Arc::new(redis)));
                        }
                        tracing::info!("connected to the shared rate-limit backend");
                        // A reload meanwhile found no Redis to publish its lifetime on.
                        let live = gateway.live();
                        gateway.publish_nonce_ttl(&live.policy.signatures).await;
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "shared rate-limit backend unavailable; retrying");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
            }
        });
    }

    /// Periodic upkeep: bucket and denial sweeps, the shared frozen set, metrics.
    fn spawn_maintenance(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut n: u64 = 0;
            loop {
                tick.tick().await;
                let Some(gateway) = weak.upgrade() else {
                    return;
                };
                n += 1;
                let live = gateway.live();
                gateway.publish_nonce_ttl(&live.policy.signatures).await;
                if let Some(redis) = gateway.limiter.redis()
                    && let Err(e) = gateway.abuse.sync(redis.store()).await
                {
                    tracing::warn!(error = %e, "could not read the shared frozen set");
                }
                let guards = live.guards();
                if let Some(redis) = gateway.limiter.redis().filter(|_| !guards.is_empty())
                    && let Err(e) = crate::stage::canary::shared::sync(redis.store(), &guards).await
                {
                    tracing::warn!(error = %e, "could not share the canary state");
                }
                if n.is_multiple_of(10) {
                    let now = gateway.limiter.local().now();
                    gateway.limiter.local().sweep(now);
                    gateway.abuse.sweep(&live.policy.abuse);
                    gateway.volume.sweep(live.policy.volume.as_ref());
                    crate::vocab::metrics::upkeep();
                }
            }
        });
    }
}

impl Gateway {
    /// The `reload` security event, `detail` the result (`ok` or `invalid`).
    fn report_reload(&self, result: &'static str) {
        let mut event = Event::new(EventKind::Reload);
        event.detail = Some(result);
        self.events.emit(event);
    }
}

/// The webhook of `policy`'s `[events]`, started, as the events deliverer (none without it).
fn start_webhook(
    policy: &Policy,
) -> Result<Option<Box<dyn crate::vocab::event::Deliver>>, StartError> {
    let Some(settings) = &policy.events else {
        return Ok(None);
    };
    let webhook = Webhook::start(settings, policy.sha256.clone())
        .map_err(|source| StartError::Webhook { source })?;
    Ok(Some(Box::new(webhook)))
}

/// The JWT verifier of `policy`'s `[auth.jwt]` (none without it).
fn jwt_verifier(policy: &Policy) -> Result<Option<JwtVerifier>, StartError> {
    let settings = policy.auth.jwt.clone();
    let verifier = settings.map(JwtVerifier::new).transpose();
    verifier.map_err(|source| StartError::Jwt { source })
}

/// Every metric series whose labels this policy fixes, at 0 (new routes on reload too), and the
/// expiries of its credentials and certificates.
fn export_known_series(policy: &Policy) {
    crate::stage::volume::export_at_zero();
    crate::stage::signature::export_known_series();
    crate::vocab::metrics::export_known(&known_series(policy));
}

/// What the policy tells the metrics (see [`crate::vocab::metrics::Known`]).
fn known_series(policy: &Policy) -> crate::vocab::metrics::Known {
    use crate::vocab::cert_expiry::earliest_not_after;
    use crate::vocab::metrics::KnownRoute;
    use crate::vocab::metrics::expiry::{CertName, CertificateExpiry, CredentialExpiry};
    let routes = policy
        .routes
        .iter()
        .map(|r| KnownRoute {
            id: r.id.clone(),
            views: r.views.iter().map(|v| v.scope_name.clone()).collect(),
            canary: r.canary.is_some(),
        })
        .collect();
    let mut credentials: Vec<CredentialExpiry> = policy
        .auth
        .api_keys
        .iter()
        .flat_map(|t| t.entries())
        .filter_map(|k| {
            Some(CredentialExpiry {
                kind: k.principal.kind.as_str(),
                id: k.principal.id.clone(),
                not_after: k.not_after?,
            })
        })
        .collect();
    credentials.extend(policy.auth.mtls.iter().filter_map(|c| {
        Some(CredentialExpiry {
            kind: c.principal.kind.as_str(),
            id: c.principal.id.clone(),
            not_after: c.not_after?,
        })
    }));
    let tls = policy.server.tls.as_ref();
    let certificates = [
        (CertName::Server, tls.and_then(|t| t.cert_not_after)),
        (CertName::ClientCa, tls.and_then(|t| t.client_ca_not_after)),
        (
            CertName::UpstreamCa,
            policy.upstream.ca.as_deref().and_then(earliest_not_after),
        ),
    ]
    .into_iter()
    .filter_map(|(cert, not_after)| {
        Some(CertificateExpiry {
            cert,
            not_after: not_after?,
        })
    })
    .collect();
    let upstreams = policy
        .upstreams
        .iter()
        .map(|(name, _)| name.clone())
        .collect();
    crate::vocab::metrics::Known {
        routes,
        credentials,
        certificates,
        upstreams,
    }
}

/// `ordergate_shadow_diff_total` at 0 for every route of either policy (and `unmatched`).
fn export_shadow_series(live: &Policy, candidate: &Policy) {
    let routes = live
        .routes
        .iter()
        .chain(&candidate.routes)
        .map(|r| r.id.to_string())
        .chain(["unmatched".to_owned()]);
    for route in routes {
        for kind in ["decision", "status", "view"] {
            metrics::counter!("ordergate_shadow_diff_total", "route" => route.clone(), "kind" => kind)
                .increment(0);
        }
    }
}
