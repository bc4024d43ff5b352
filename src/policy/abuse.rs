//! `[abuse]`: how many denials in which window freeze a principal, and for how long.

use crate::config::problems::KeyPath;
use crate::config::raw;
use crate::policy::compile::Ctx;
use crate::stage::abuse::AbuseSettings;

pub(super) fn compile(ctx: &mut Ctx<'_>, at: &KeyPath, raw: Option<&raw::Abuse>) -> AbuseSettings {
    let d = AbuseSettings::default();
    let Some(raw) = raw else { return d };
    AbuseSettings {
        window: ctx.duration(&at.k("window"), raw.window.as_deref(), d.window),
        max_denials: ctx.positive(&at.k("max_denials"), raw.max_denials, d.max_denials),
        freeze_for: ctx.duration(&at.k("freeze_for"), raw.freeze_for.as_deref(), d.freeze_for),
    }
}
