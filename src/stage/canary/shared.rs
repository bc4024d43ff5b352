//! The tripped state shared through Redis (with `rate_limits.backend = "redis"`): one hash,
//! `<prefix>{canary}:tripped`, with a field per tripped route. Every instance runs [`sync`]
//! each second: it publishes its own new trips, then mirrors the hash — a route listed there is
//! rolled back here too; a route this instance had published that is no longer listed was reset
//! elsewhere (admin reset or reload) and is reset here. A trip whose publishing failed stays
//! local and is published at the next sync, so a Redis outage never clears a rollback.

use std::collections::HashSet;
use std::sync::Arc;

use super::CanaryGuard;
use crate::vocab::shared_store::SharedStore;

fn key(store: &SharedStore) -> String {
    format!("{}{{canary}}:tripped", store.prefix())
}

/// Publishes this instance's trips and mirrors everyone's.
pub async fn sync(store: &SharedStore, guards: &[Arc<CanaryGuard>]) -> Result<(), String> {
    let key = key(store);
    let mut connection = store.connection();
    for guard in guards {
        if !guard.take_unpublished() {
            continue;
        }
        let set: Result<Result<u64, _>, _> = tokio::time::timeout(
            store.timeout(),
            redis::cmd("HSET")
                .arg(&key)
                .arg(&**guard.route())
                .arg(1)
                .query_async(&mut connection),
        )
        .await;
        if !matches!(set, Ok(Ok(_))) {
            guard.keep_unpublished();
            return Err("could not publish a canary rollback".to_owned());
        }
    }
    let listed: Vec<String> = tokio::time::timeout(
        store.timeout(),
        redis::cmd("HKEYS").arg(&key).query_async(&mut connection),
    )
    .await
    .map_err(|_| "timeout".to_owned())?
    .map_err(|e| e.to_string())?;
    let listed: HashSet<String> = listed.into_iter().collect();
    for guard in guards {
        if listed.contains(&**guard.route()) {
            guard.adopt_shared_trip();
        } else if guard.tripped() && !guard.is_unpublished() {
            guard.reset();
        }
    }
    Ok(())
}

/// Forgets the shared trip of `route`, or of every route (a reload).
pub async fn clear(store: &SharedStore, route: Option<&str>) -> Result<(), String> {
    let key = key(store);
    let mut connection = store.connection();
    let cmd = match route {
        Some(route) => {
            let mut c = redis::cmd("HDEL");
            c.arg(&key).arg(route);
            c
        }
        None => {
            let mut c = redis::cmd("DEL");
            c.arg(&key);
            c
        }
    };
    let done: Result<Result<u64, _>, _> =
        tokio::time::timeout(store.timeout(), cmd.query_async(&mut connection)).await;
    match done {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timeout".to_owned()),
    }
}
