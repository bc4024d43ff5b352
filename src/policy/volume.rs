//! `[abuse.volume]`: the volume and enumeration guard's limits and action (CONTRACT §8.3).

use crate::config::problems::KeyPath;
use crate::config::raw;
use crate::policy::Route;
use crate::policy::compile::Ctx;
use crate::stage::volume::{DistinctLimit, RecordsLimit, VolumeAction, VolumeSettings};

/// The largest `distinct.max`: the guard keeps up to `max` + 1 hashes per principal.
const MAX_DISTINCT: u32 = 100_000;

/// `[abuse.volume]` (`at` is `[abuse]`); absent, no guard. `freeze_for` is `[abuse]`'s, the
/// length of the freeze `action = "freeze"` applies.
pub(super) fn compile(
    ctx: &mut Ctx<'_>,
    at: &KeyPath,
    raw: Option<&raw::Abuse>,
    routes: &[Route],
    freeze_for: std::time::Duration,
) -> Option<VolumeSettings> {
    let raw = raw?.volume.as_ref()?;
    let at = at.k("volume");
    let distinct = raw.distinct.as_ref().and_then(|d| {
        let here = at.k("distinct");
        let window = window(ctx, &here, &d.window);
        let declared = routes.iter().any(|r| {
            r.params
                .path
                .iter()
                .chain(&r.params.query)
                .any(|p| *p.name == *d.param)
        });
        if !declared {
            ctx.bad(
                &here.k("param"),
                format!(
                    "no route has a parameter `{}`: this limit would never count",
                    d.param
                ),
            );
        }
        if !(1..=MAX_DISTINCT).contains(&d.max) {
            ctx.bad(
                &here.k("max"),
                format!("must be between 1 and {MAX_DISTINCT}"),
            );
            return None;
        }
        Some(DistinctLimit {
            param: d.param.as_str().into(),
            max: d.max,
            window: window?,
        })
    });
    let records = raw.records.as_ref().and_then(|r| {
        let here = at.k("records");
        let window = window(ctx, &here, &r.window);
        if r.max == 0 {
            ctx.bad(&here.k("max"), "must be at least 1");
            return None;
        }
        Some(RecordsLimit {
            max: r.max,
            window: window?,
        })
    });
    if raw.distinct.is_none() && raw.records.is_none() {
        ctx.bad(&at, "[abuse.volume] needs `distinct` or `records`");
    }
    // Freezing is the default: a guard written down without an action should stop the scraper.
    let action = ctx
        .choice(
            &at.k("action"),
            raw.action.as_ref(),
            raw::VolumeAction::Freeze,
            |other| format!("`{other}` must be \"alert\" or \"freeze\""),
        )
        .map(|a| match a {
            raw::VolumeAction::Alert => VolumeAction::Alert,
            raw::VolumeAction::Freeze => VolumeAction::Freeze(freeze_for),
        })?;
    Some(VolumeSettings {
        distinct,
        records,
        action,
    })
}

/// A window of at least a second (the shared windows move in milliseconds of the Redis clock).
fn window(ctx: &mut Ctx<'_>, at: &KeyPath, text: &str) -> Option<std::time::Duration> {
    let here = at.k("window");
    match crate::vocab::units::parse_duration(text) {
        Ok(d) if d.as_secs() >= 1 => Some(d),
        Ok(_) => {
            ctx.bad(&here, "must be at least 1s");
            None
        }
        Err(e) => {
            ctx.bad(&here, e);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::policy::fixtures::{check, compiled};
    use crate::stage::volume::VolumeAction;

    #[test]
    fn bad_volume_values_are_reported_at_their_keys() {
        check(&[
            (
                "[abuse.volume]\ndistinct = { param = \"nope\", max = 0, window = \"1h\" }\nrecords = { max = 0, window = \"10ms\" }\naction = \"shout\"\n",
                &[
                    "2:22: no route has a parameter `nope`: this limit would never count",
                    "2:36: must be between 1 and 100000",
                    "3:19: must be at least 1",
                    "3:31: must be at least 1s",
                    "4:10: `shout` must be \"alert\" or \"freeze\"",
                ],
            ),
            (
                "[abuse.volume]\n",
                &["1:1: [abuse.volume] needs `distinct` or `records`"],
            ),
        ]);
    }

    #[test]
    fn the_guard_compiles_with_freeze_as_its_default_action() {
        let nowhere = Path::new("/nonexistent-ordergate");
        let policy = compiled(
            nowhere,
            "[abuse.volume]\ndistinct = { param = \"id\", max = 200, window = \"1h\" }\n",
        );
        let volume = policy.volume.unwrap();
        assert_eq!(
            volume.action,
            VolumeAction::Freeze(Duration::from_secs(900))
        );
        let distinct = volume.distinct.unwrap();
        assert_eq!((&*distinct.param, distinct.max), ("id", 200));
        assert_eq!(distinct.window, Duration::from_secs(3600));
        assert!(volume.records.is_none());
        let alert = compiled(
            nowhere,
            "[abuse.volume]\nrecords = { max = 50000, window = \"1h\" }\naction = \"alert\"\n",
        )
        .volume
        .unwrap();
        assert_eq!(alert.action, VolumeAction::Alert);
        assert_eq!(alert.records.unwrap().max, 50_000);
        assert!(compiled(nowhere, "").volume.is_none());
    }
}
