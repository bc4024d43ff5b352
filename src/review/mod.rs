//! Safe policy change (CONTRACT §9): `explain` (what one caller may do) and `diff` (what a
//! change widens or narrows). Both read exposure facts computed by the gateway's own code — the
//! compiled policy, [`crate::stage::authz::authorize`] and the view filter — never a second
//! implementation of a decision. See [`exposure`] for how to add a rule kind.

pub mod compare;
pub mod diff;
pub mod explain;
pub mod exposure;
pub mod rules;
pub mod who;
