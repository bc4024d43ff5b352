//! The tour's last steps: `ordergate explain` for the carrier, and `ordergate diff` against a
//! proposed policy the demo writes beside its own (`policy-next.toml`: the carrier view without
//! its phone mask), which widens exposure and so exits 2.

use std::path::Path;

use crate::review::diff::diff;
use crate::review::explain::{Question, explain};

/// The carrier, the route and the field the steps look at.
const CARRIER: &str = "sf-logistics";
const ROUTE: &str = "customer-orders";
const FIELD: &str = "orders[].shipping.phone";

/// Writes `policy-next.toml` beside the demo policy and returns what the two steps print.
pub fn steps(state: &Path, exe: &str) -> Result<String, String> {
    let current = state.join("policy.toml");
    let next = state.join("policy-next.toml");
    let text =
        std::fs::read_to_string(&current).map_err(|e| format!("{}: {e}", current.display()))?;
    let proposed = super::next_policy(&text)
        .ok_or("the demo policy no longer masks the carrier's shipping phone")?;
    std::fs::write(&next, proposed).map_err(|e| format!("{}: {e}", next.display()))?;
    let load = |path: &Path| {
        crate::policy::load(path).map_err(|problems| {
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        })
    };
    let (old, new) = (load(&current)?, load(&next)?);
    let answer = explain(
        &old,
        &Question {
            who: CARRIER.to_owned(),
            route: Some(ROUTE.to_owned()),
            field: Some(FIELD.to_owned()),
        },
    )?;
    let report = diff(&old, &new);
    let why = report
        .text()
        .lines()
        .find(|l| l.contains(&format!("key:{CARRIER} ")))
        .unwrap_or("(no change for the carrier)")
        .to_owned();
    let indent = |text: &str| {
        text.lines()
            .map(|l| format!("   {l}\n"))
            .collect::<String>()
    };
    Ok(format!(
        "\n16. what may the carrier do? `{exe} explain -c {} --as {CARRIER} --route {ROUTE} --field '{FIELD}'`\n{}\
         \n17. a proposed change unmasks the carrier's phone: `{exe} diff {} {}` → exit {}\n{}   the line that says why:\n   {why}\n",
        current.display(),
        indent(&answer.text()),
        current.display(),
        next.display(),
        report.exit_code(),
        indent(&report.text()),
    ))
}
