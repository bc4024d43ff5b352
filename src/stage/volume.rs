//! After stage 11, the volume and enumeration guard (CONTRACT §8.3): per principal, the distinct
//! values of one parameter (`distinct`) and the records returned (`records`, from the route's
//! `count` path) within a sliding window. It refuses nothing itself: it runs only for answered
//! requests (an upstream answer was relayed, whatever its status — probing ids that do not exist
//! is enumeration too), and crossing a limit (`max` + 1) fires `volume_exceeded` and counts
//! `ordergate_volume_exceeded_total{limit}`; with `action = "freeze"` it freezes the principal
//! through the abuse guard, whose later requests get 403 `frozen`. Under `alert` a limit fires
//! once when crossed and again only after the principal fell back under it. Under `freeze` a
//! crossing holds the next one back only as long as the freeze lasts (`[abuse] freeze_for`): a
//! scraper that waits out its freeze (15 min) and goes on inside the window (1 h) is still over
//! the limit, and its first answer after the freeze fires again — event and a new freeze — instead
//! of leaving it alone until its window empties. Answers in flight while it is frozen do not.
//!
//! Memory is bounded per principal, never per value: `distinct` keeps the `max` + 1 value hashes
//! seen last, with the time of each — an exact decision over a sliding window, where a
//! HyperLogLog would be approximate exactly at the boundary that matters — and `records`
//! keeps [`SLOTS`] sub-window sums. Values are kept as truncated SHA-256 hashes of parameter name
//! and value, never as the values themselves. Idle principals are swept on a timer.
//!
//! With the Redis rate-limit backend the same windows live in Redis (a sorted set capped at
//! `max` + 1 members, and a hash of sub-window sums, under one hash tag per principal) and are
//! updated and read by one script: one round trip per answered request, which the pipeline runs
//! after the answer is on its way, never before it. When Redis fails the request is counted
//! locally.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use sha2::{Digest, Sha256};

use crate::stage::abuse::{AbuseGuard, AbuseSettings, FreezeFacts, principal_key};
use crate::stage::authn::Principal;
use crate::stage::validate::Validated;
use crate::vocab::event::{Event, EventKind, Events};
use crate::vocab::shared_store::SharedStore;

/// Sub-windows of the `records` window: its sliding sum moves in steps of `window / SLOTS`.
pub const SLOTS: u64 = 10;

/// `[abuse.volume]`, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSettings {
    /// Distinct values of one parameter per principal.
    pub distinct: Option<DistinctLimit>,
    /// Records returned per principal.
    pub records: Option<RecordsLimit>,
    /// What crossing a limit does.
    pub action: VolumeAction,
}

/// `distinct = { param, max, window }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistinctLimit {
    /// The path or query parameter whose values are counted.
    pub param: Arc<str>,
    /// Distinct values allowed within `window`.
    pub max: u32,
    /// The sliding window.
    pub window: Duration,
}

/// `records = { max, window }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordsLimit {
    /// Records allowed within `window`.
    pub max: u64,
    /// The sliding window.
    pub window: Duration,
}

/// `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeAction {
    /// An event and the metric only.
    Alert,
    /// Also freeze the principal, for this long (`[abuse] freeze_for`).
    Freeze(Duration),
}

impl VolumeAction {
    /// How long a crossing holds the next one back, in ms: under `alert` until the principal
    /// falls back under the limit (`None`), under `freeze` as long as the freeze lasts.
    fn hold_ms(self) -> Option<u64> {
        match self {
            VolumeAction::Alert => None,
            VolumeAction::Freeze(d) => Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

/// Whether a window over its limit fires now: once, then again only when `until` (ms) has
/// passed or the window fell back under the limit in between.
#[derive(Debug, Default, Clone, Copy)]
struct Held {
    until: Option<u64>,
}

impl Held {
    /// True when a window that is (or is not) `over` at `now` fires; holds the next for `hold`
    /// ms (`None`: until it is no longer over).
    fn fires(&mut self, over: bool, now: u64, hold: Option<u64>) -> bool {
        if !over {
            self.until = None;
            return false;
        }
        if self.until.is_some_and(|until| now < until) {
            return false;
        }
        self.until = Some(hold.map_or(u64::MAX, |h| now.saturating_add(h)));
        true
    }
}

/// Which limit was crossed; its `detail` in the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crossed {
    /// `distinct`: `volume_distinct`.
    Distinct,
    /// `records`: `volume_records`.
    Records,
}

impl Crossed {
    /// The event `detail` and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Crossed::Distinct => "volume_distinct",
            Crossed::Records => "volume_records",
        }
    }
}

/// One answered request, as the guard counts it.
#[derive(Debug, Clone)]
pub struct Answered {
    /// The principal's freeze key (`principal:<kind>:<id>`).
    pub principal_key: String,
    /// The client address.
    pub client_ip: IpAddr,
    /// The route that answered.
    pub route: Arc<str>,
    /// The hash of the `distinct` parameter's value, when the request had it.
    pub value: Option<u64>,
    /// Records in the answer, when the route counts them.
    pub records: Option<u64>,
}

impl Answered {
    /// What the guard counts of a request answered to `principal`: `None` when `settings` count
    /// nothing it has (no `distinct` parameter in it, no records counted).
    pub fn of(
        settings: &VolumeSettings,
        principal: &Principal,
        client_ip: IpAddr,
        route: &Arc<str>,
        validated: Option<&Validated>,
        records: Option<u64>,
    ) -> Option<Self> {
        let value = settings.distinct.as_ref().and_then(|limit| {
            let value = validated?.get(&limit.param)?;
            let mut text = String::new();
            value.write_canonical(&mut text);
            Some(value_hash(&limit.param, &text))
        });
        let records = records.filter(|_| settings.records.is_some());
        if value.is_none() && records.is_none() {
            return None;
        }
        Some(Self {
            principal_key: principal_key(principal.kind, &principal.id),
            client_ip,
            route: route.clone(),
            value,
            records,
        })
    }

    /// What the freeze for crossing `limit` is reported with.
    fn freeze_facts(&self, limit: Crossed) -> FreezeFacts {
        FreezeFacts {
            detail: Some(limit.as_str()),
            client_ip: Some(self.client_ip),
            route: Some(self.route.clone()),
        }
    }
}

/// The hash a value is counted by: the first 8 bytes of SHA-256 over name and value (the same
/// on every instance, so the shared set agrees).
pub fn value_hash(param: &str, canonical_value: &str) -> u64 {
    let mut digest = Sha256::new();
    digest.update(param.as_bytes());
    digest.update([0]);
    digest.update(canonical_value.as_bytes());
    let digest = digest.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// One principal's distinct values, at most `max` + 1 of them: the most recently seen, so that
/// "more than `max` within the window" is decided exactly (if more than `max` were seen, the
/// newest `max` + 1 are all inside the window). Indexed both ways, so every step is O(log n).
#[derive(Debug, Default)]
struct DistinctWindow {
    /// Value hash → when it was last seen (ms, and a sequence number to break ties).
    by_value: HashMap<u64, (u64, u64)>,
    /// The same, ordered by when: the oldest first.
    by_time: BTreeMap<(u64, u64), u64>,
    seq: u64,
    held: Held,
}

impl DistinctWindow {
    /// Counts `value` at `now`; true when this fires (see [`Held`]).
    fn see(&mut self, value: u64, now: u64, limit: &DistinctLimit, hold: Option<u64>) -> bool {
        let window = limit.window.as_millis() as u64;
        let max = limit.max as usize;
        while let Some((&stamp, &old)) = self.by_time.first_key_value() {
            if now.saturating_sub(stamp.0) < window {
                break;
            }
            self.by_time.remove(&stamp);
            self.by_value.remove(&old);
        }
        self.seq += 1;
        let stamp = (now, self.seq);
        if let Some(previous) = self.by_value.insert(value, stamp) {
            self.by_time.remove(&previous);
        }
        self.by_time.insert(stamp, value);
        while self.by_value.len() > max + 1 {
            let Some((_, oldest)) = self.by_time.pop_first() else {
                break;
            };
            self.by_value.remove(&oldest);
        }
        self.held.fires(self.by_value.len() > max, now, hold)
    }

    fn idle(&self, now: u64, window: u64) -> bool {
        self.by_time
            .last_key_value()
            .is_none_or(|(stamp, _)| now.saturating_sub(stamp.0) >= window)
    }
}

/// One principal's records: `(sub-window index, sum)` per slot.
#[derive(Debug, Default)]
struct RecordsWindow {
    slots: [(u64, u64); SLOTS as usize],
    held: Held,
}

impl RecordsWindow {
    /// Adds `records` at `now`; true when this fires (see [`Held`]).
    fn add(&mut self, records: u64, now: u64, limit: &RecordsLimit, hold: Option<u64>) -> bool {
        let step = slot_ms(limit.window);
        let current = now / step;
        let slot = &mut self.slots[(current % SLOTS) as usize];
        if slot.0 != current {
            *slot = (current, 0);
        }
        slot.1 = slot.1.saturating_add(records);
        let total = self.total(current);
        self.held.fires(total > limit.max, now, hold)
    }

    fn total(&self, current: u64) -> u64 {
        self.slots
            .iter()
            .filter(|(index, _)| *index + SLOTS > current)
            .fold(0u64, |sum, (_, n)| sum.saturating_add(*n))
    }

    fn idle(&self, now: u64, window: Duration) -> bool {
        self.total(now / slot_ms(window)) == 0
    }
}

fn slot_ms(window: Duration) -> u64 {
    (window.as_millis() as u64 / SLOTS).max(1)
}

const VOLUME_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {0, 0}
local hold = nil
if ARGV[9] ~= '0' then hold = tonumber(ARGV[9]) end
if ARGV[1] == '1' then
  local window = tonumber(ARGV[2])
  local max = tonumber(ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  local n = redis.call('ZCARD', KEYS[1])
  if n > max + 1 then
    redis.call('ZPOPMIN', KEYS[1], n - max - 1)
    n = max + 1
  end
  redis.call('PEXPIRE', KEYS[1], window)
  if n > max then
    if redis.call('SET', KEYS[2], '1', 'NX', 'PX', hold or window) then out[1] = 1 end
  else
    redis.call('DEL', KEYS[2])
  end
end
if ARGV[5] == '1' then
  local window = tonumber(ARGV[6])
  local max = tonumber(ARGV[7])
  local step = math.max(1, math.floor(window / 10))
  local current = math.floor(now / step)
  redis.call('HINCRBY', KEYS[3], string.format('%.0f', current), tonumber(ARGV[8]))
  local all = redis.call('HGETALL', KEYS[3])
  local total = 0
  for i = 1, #all, 2 do
    if tonumber(all[i]) + 10 > current then
      total = total + tonumber(all[i + 1])
    else
      redis.call('HDEL', KEYS[3], all[i])
    end
  end
  redis.call('PEXPIRE', KEYS[3], window + step)
  if total > max then
    if redis.call('SET', KEYS[4], '1', 'NX', 'PX', hold or window) then out[2] = 1 end
  else
    redis.call('DEL', KEYS[4])
  end
end
return out
"#;

/// The guard's windows, local or shared.
pub struct VolumeGuard {
    distinct: DashMap<String, DistinctWindow>,
    records: DashMap<String, RecordsWindow>,
    script: redis::Script,
    events: Events,
}

impl Default for VolumeGuard {
    fn default() -> Self {
        Self {
            distinct: DashMap::new(),
            records: DashMap::new(),
            script: redis::Script::new(VOLUME_SCRIPT),
            events: Events::default(),
        }
    }
}

impl std::fmt::Debug for VolumeGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeGuard")
            .field("principals", &self.distinct.len().max(self.records.len()))
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl VolumeGuard {
    /// Sets where crossings are reported as security events.
    pub fn report_to(&mut self, events: Events) {
        self.events = events;
    }

    /// Counts one answered request in this instance's windows and acts on any limit it
    /// crosses: the event, the metric and, with `action = "freeze"`, the freeze (for
    /// `abuse_settings.freeze_for`). Never waits.
    pub fn observe_local(
        &self,
        settings: &VolumeSettings,
        abuse: &AbuseGuard,
        abuse_settings: &AbuseSettings,
        answered: &Answered,
    ) {
        for limit in self.count_local(settings, now_ms(), answered) {
            if self.report(settings, limit, answered) {
                abuse.freeze_local(
                    abuse_settings,
                    &answered.principal_key,
                    &answered.freeze_facts(limit),
                );
            }
        }
    }

    /// [`Self::observe_local`] with the windows and the freeze shared through `store` (one
    /// round trip; counted locally when it fails).
    pub async fn observe(
        &self,
        settings: &VolumeSettings,
        abuse: &AbuseGuard,
        abuse_settings: &AbuseSettings,
        store: Option<&SharedStore>,
        answered: &Answered,
    ) {
        let Some(store) = store else {
            self.observe_local(settings, abuse, abuse_settings, answered);
            return;
        };
        let crossed = match self.count_shared(settings, store, answered).await {
            Ok(crossed) => crossed,
            Err(e) => {
                tracing::warn!(error = %e, "shared volume count failed; counting locally");
                self.count_local(settings, now_ms(), answered)
            }
        };
        for limit in crossed {
            if self.report(settings, limit, answered) {
                abuse
                    .freeze_at_once(
                        abuse_settings,
                        &answered.principal_key,
                        Some(store),
                        &answered.freeze_facts(limit),
                    )
                    .await;
            }
        }
    }

    /// Reports a crossing (metric and event); true when the principal is to be frozen.
    fn report(&self, settings: &VolumeSettings, limit: Crossed, answered: &Answered) -> bool {
        metrics::counter!("ordergate_volume_exceeded_total", "limit" => limit_label(limit))
            .increment(1);
        let mut event = Event::new(EventKind::VolumeExceeded);
        event.principal = answered
            .principal_key
            .strip_prefix("principal:")
            .map(str::to_owned);
        event.client_ip = Some(answered.client_ip);
        event.route = Some(answered.route.clone());
        event.detail = Some(limit.as_str());
        self.events.emit(event);
        matches!(settings.action, VolumeAction::Freeze(_))
    }

    /// Counts `answered` in the local windows at `now` (ms); returns the limits it crosses.
    pub fn count_local(
        &self,
        settings: &VolumeSettings,
        now: u64,
        answered: &Answered,
    ) -> Vec<Crossed> {
        let hold = settings.action.hold_ms();
        let mut crossed = Vec::new();
        if let (Some(limit), Some(value)) = (&settings.distinct, answered.value) {
            let mut window = self
                .distinct
                .entry(answered.principal_key.clone())
                .or_default();
            if window.see(value, now, limit, hold) {
                crossed.push(Crossed::Distinct);
            }
        }
        if let (Some(limit), Some(records)) = (&settings.records, answered.records) {
            let mut window = self
                .records
                .entry(answered.principal_key.clone())
                .or_default();
            if window.add(records, now, limit, hold) {
                crossed.push(Crossed::Records);
            }
        }
        crossed
    }

    async fn count_shared(
        &self,
        settings: &VolumeSettings,
        store: &SharedStore,
        answered: &Answered,
    ) -> Result<Vec<Crossed>, String> {
        let distinct = settings
            .distinct
            .as_ref()
            .zip(answered.value)
            .map(|(l, v)| (l.window.as_millis() as u64, l.max, format!("{v:016x}")));
        let records = settings
            .records
            .as_ref()
            .zip(answered.records)
            .map(|(l, n)| (l.window.as_millis() as u64, l.max, n));
        if distinct.is_none() && records.is_none() {
            return Ok(Vec::new());
        }
        let tag = crate::vocab::shared_store::hash_tag(&answered.principal_key);
        let base = format!("{}vol:{{{tag}}}", store.prefix());
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(format!("{base}:d"))
            .key(format!("{base}:d:over"))
            .key(format!("{base}:r"))
            .key(format!("{base}:r:over"));
        match &distinct {
            Some((window, max, member)) => invocation.arg("1").arg(*window).arg(*max).arg(member),
            None => invocation.arg("0").arg(0).arg(0).arg(""),
        };
        match records {
            Some((window, max, n)) => invocation.arg("1").arg(window).arg(max).arg(n),
            None => invocation.arg("0").arg(0).arg(0).arg(0),
        };
        // The latch's lifetime: the freeze's under `freeze`; under `alert` ("0") the window.
        invocation.arg(match settings.action.hold_ms() {
            Some(ms) => ms.max(1),
            None => 0,
        });
        let mut connection = store.connection();
        let reply: Vec<i64> =
            tokio::time::timeout(store.timeout(), invocation.invoke_async(&mut connection))
                .await
                .map_err(|_| "timeout".to_owned())?
                .map_err(|e| e.to_string())?;
        let mut crossed = Vec::new();
        if reply.first() == Some(&1) {
            crossed.push(Crossed::Distinct);
        }
        if reply.get(1) == Some(&1) {
            crossed.push(Crossed::Records);
        }
        Ok(crossed)
    }

    /// Forgets principals with nothing left in their windows.
    pub fn sweep(&self, settings: Option<&VolumeSettings>) {
        self.sweep_at(settings, now_ms());
    }

    fn sweep_at(&self, settings: Option<&VolumeSettings>, now: u64) {
        match settings.and_then(|s| s.distinct.as_ref()) {
            Some(limit) => {
                let window = limit.window.as_millis() as u64;
                self.distinct.retain(|_, w| !w.idle(now, window));
            }
            None => self.distinct.clear(),
        }
        match settings.and_then(|s| s.records.as_ref()) {
            Some(limit) => self.records.retain(|_, w| !w.idle(now, limit.window)),
            None => self.records.clear(),
        }
    }
}

fn limit_label(limit: Crossed) -> &'static str {
    match limit {
        Crossed::Distinct => "distinct",
        Crossed::Records => "records",
    }
}

/// `ordergate_volume_exceeded_total` for both limits, at 0.
pub fn export_at_zero() {
    for limit in [Crossed::Distinct, Crossed::Records] {
        metrics::counter!("ordergate_volume_exceeded_total", "limit" => limit_label(limit))
            .increment(0);
    }
}

#[cfg(test)]
mod tests;
