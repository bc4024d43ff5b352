//! `[abuse]`: how many denials in which window freeze a principal, and for how long.

use crate::config::problems::KeyPath;
use crate::config::raw;
use crate::policy::compile::Ctx;
use crate::stage::abuse::AbuseSettings;

/// `[abuse]`; absent, the defaults.
pub(super) fn compile(ctx: &mut Ctx<'_>, at: &KeyPath, raw: Option<&raw::Abuse>) -> AbuseSettings {
    let d = AbuseSettings::default();
    let Some(raw) = raw else { return d };
    AbuseSettings {
        window: ctx.duration(&at.k("window"), raw.window.as_deref(), d.window),
        max_denials: ctx.positive(&at.k("max_denials"), raw.max_denials, d.max_denials),
        freeze_for: ctx.duration(&at.k("freeze_for"), raw.freeze_for.as_deref(), d.freeze_for),
        freeze_on_ip_violation: raw.freeze_on_ip_violation,
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::fixtures::check;

    #[test]
    fn bad_abuse_values_are_reported_at_their_keys() {
        check(&[
            (
                "[abuse]\nwindow = \"1\"\nmax_denials = 0\nfreeze_for = \"a while\"\n",
                &[
                    "2:10: duration `1` needs a unit (ms, s, m, h, d)",
                    "3:15: must be at least 1",
                    "4:14: duration `a while` must start with a whole number",
                ],
            ),
            (
                "[abuse]\nwindow = \"1m\"\nmax_denials = 5\nfreeze_for = \"10m\"\n",
                &[],
            ),
        ]);
    }
}
