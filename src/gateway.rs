//! The running gateway: state that outlives a policy (buckets, freezes, in-flight count, the
//! audit writer) and the live policy generation, swapped atomically on reload. A request loads
//! the generation once and finishes under it, whatever reloads happen meanwhile.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::policy::Policy;
use crate::stage::abuse::AbuseGuard;
use crate::stage::audit::AuditSink;
use crate::stage::authn::jwt::JwtVerifier;
use crate::stage::load_shed::InFlightLimit;
use crate::stage::proxy::UpstreamRuntime;
use crate::stage::rate_limit::{Backend, RateLimiter, RedisBuckets};
use crate::vocab::cutoff::Cutoff;
use crate::vocab::event::Events;

/// One policy generation with the runtime pieces built from it.
pub struct Live {
    /// The compiled policy this generation serves.
    pub policy: Arc<Policy>,
    /// The JWT verifier with its key set and token cache (none without `[auth.jwt]`).
    pub jwt: Option<JwtVerifier>,
    /// The upstream pool and breaker (carried over when `[upstream]` is unchanged).
    pub upstream: Arc<UpstreamRuntime>,
}

impl Live {
    /// Builds a generation, keeping the upstream pool and breaker of `previous` when the
    /// upstream settings did not change.
    fn build(policy: Policy, previous: Option<&Live>) -> Result<Self, String> {
        let jwt = policy.auth.jwt.clone().map(JwtVerifier::new).transpose()?;
        let upstream = match previous {
            Some(p) if p.upstream.serves(&policy.upstream) => p.upstream.clone(),
            _ => Arc::new(UpstreamRuntime::new(&policy.upstream)?),
        };
        Ok(Self {
            policy: Arc::new(policy),
            jwt,
            upstream,
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
    policy_path: PathBuf,
    listening: AtomicBool,
    backend: Mutex<Option<Backend>>,
    reload_lock: tokio::sync::Mutex<()>,
}

impl Gateway {
    /// Starts the audit writer and the first policy generation.
    pub async fn start(policy: Policy, policy_path: &Path) -> Result<Arc<Self>, String> {
        let audit = AuditSink::start(policy.audit.clone())?;
        let live = Live::build(policy, None)?;
        if let Some(jwt) = &live.jwt {
            jwt.start().await;
        }
        let gateway = Arc::new(Self {
            live: ArcSwap::from_pointee(live),
            limiter: RateLimiter::default(),
            abuse: AbuseGuard::default(),
            in_flight: InFlightLimit::default(),
            audit,
            cutoff: Cutoff::default(),
            events: Events::default(),
            policy_path: policy_path.to_path_buf(),
            listening: AtomicBool::new(false),
            backend: Mutex::new(None),
            reload_lock: tokio::sync::Mutex::new(()),
        });
        gateway.ensure_backend();
        gateway.spawn_maintenance();
        export_known_series(&gateway.live().policy);
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

    /// Re-reads and validates the policy and every file it names; swaps it in only if all is
    /// well. In-flight requests finish under the generation they started with.
    pub async fn reload(self: &Arc<Self>) -> Result<(), Vec<String>> {
        let _one_at_a_time = self.reload_lock.lock().await;
        let path = self.policy_path.clone();
        let loaded = tokio::task::spawn_blocking(move || crate::policy::load(&path))
            .await
            .map_err(|e| vec![e.to_string()])?;
        let policy = match loaded {
            Ok(p) => p,
            Err(problems) => {
                metrics::counter!("ordergate_reloads_total", "result" => "invalid").increment(1);
                for p in &problems {
                    tracing::error!(problem = %p, "reload refused: the policy is invalid; keeping the running one");
                }
                return Err(problems.iter().map(ToString::to_string).collect());
            }
        };
        let current = self.live();
        if policy.server.listen != current.policy.server.listen
            || policy.server.admin_listen != current.policy.server.admin_listen
        {
            tracing::warn!("listen addresses changed: they take effect at the next restart");
        }
        if policy.server.workers != current.policy.server.workers {
            tracing::warn!("[server] workers changed: it takes effect at the next restart");
        }
        if !self.audit.settings().same_writer(&policy.audit) {
            tracing::warn!(
                "[audit] changes other than sensitive_params take effect at the next restart"
            );
        }
        self.audit
            .set_sensitive(policy.audit.sensitive_params.clone());
        let live = match Live::build(policy, Some(&current)) {
            Ok(l) => l,
            Err(e) => {
                metrics::counter!("ordergate_reloads_total", "result" => "invalid").increment(1);
                tracing::error!(error = %e, "reload refused");
                return Err(vec![e]);
            }
        };
        if let Some(jwt) = &live.jwt {
            jwt.start().await;
        }
        export_known_series(&live.policy);
        self.live.store(Arc::new(live));
        self.ensure_backend();
        metrics::counter!("ordergate_reloads_total", "result" => "ok").increment(1);
        tracing::info!(policy = %self.policy_path.display(), "policy reloaded");
        Ok(())
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
                match connected {
                    Ok(redis) => {
                        tracing::info!("connected to the shared rate-limit backend");
                        gateway.limiter.set_redis(Some(Arc::new(redis)));
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
                if let Some(redis) = gateway.limiter.redis()
                    && let Err(e) = gateway.abuse.sync(redis.store()).await
                {
                    tracing::warn!(error = %e, "could not read the shared frozen set");
                }
                if n.is_multiple_of(10) {
                    let now = gateway.limiter.local().now();
                    gateway.limiter.local().sweep(now);
                    gateway.abuse.sweep(&live.policy.abuse);
                    crate::vocab::metrics::upkeep();
                }
            }
        });
    }
}

/// Every metric series whose labels this policy fixes, at 0 (new routes on reload too).
fn export_known_series(policy: &Policy) {
    let routes: Vec<_> = policy
        .routes
        .iter()
        .map(|r| {
            (
                r.id.clone(),
                r.views.iter().map(|v| v.scope_name.clone()).collect(),
            )
        })
        .collect();
    crate::vocab::metrics::export_known(&routes);
}
