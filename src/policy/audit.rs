//! `[audit]`: where records go, rotation, durability (`fsync`), what a failed write does
//! (`on_error`) and the queue in front of the writer.

use crate::config::files;
use crate::config::problems::KeyPath;
use crate::config::raw;
use crate::policy::compile::Ctx;
use crate::stage::audit::{AuditSettings, AuditTarget, FsyncMode, OnError};

pub(super) fn compile(ctx: &mut Ctx<'_>, at: &KeyPath, raw: &raw::Audit) -> AuditSettings {
    let target = match raw.path.as_str() {
        "" => {
            ctx.bad(
                &at.k("path"),
                "`path` must name a file, or \"-\" for stdout",
            );
            AuditTarget::Stdout
        }
        "-" => AuditTarget::Stdout,
        p => {
            let path = files::resolve(ctx.base, p);
            if path.is_dir() {
                ctx.bad(&at.k("path"), format!("{} is a directory", path.display()));
            }
            AuditTarget::File(path)
        }
    };
    let rotate_bytes = ctx.size(
        &at.k("rotate_bytes"),
        raw.rotate_bytes.as_deref(),
        100 * 1024 * 1024,
    );
    let fsync = match raw.fsync.as_deref().unwrap_or("batch") {
        "always" => FsyncMode::Always,
        "batch" => FsyncMode::Batch,
        "never" => FsyncMode::Never,
        other => {
            ctx.bad(
                &at.k("fsync"),
                format!("`{other}` must be \"always\", \"batch\" or \"never\""),
            );
            FsyncMode::Batch
        }
    };
    let on_error = match raw.on_error.as_deref().unwrap_or("reject") {
        "reject" => OnError::Reject,
        "continue" => OnError::Continue,
        other => {
            ctx.bad(
                &at.k("on_error"),
                format!("`{other}` must be \"reject\" or \"continue\""),
            );
            OnError::Reject
        }
    };
    AuditSettings {
        target,
        rotate_bytes: (rotate_bytes > 0).then_some(rotate_bytes),
        keep_files: raw.keep_files.unwrap_or(30) as usize,
        hash_chain: raw.hash_chain,
        fsync,
        on_error,
        sensitive_params: raw.sensitive_params.clone(),
        queue_capacity: ctx.positive(&at.k("queue_capacity"), raw.queue_capacity, 65_536) as usize,
    }
}
