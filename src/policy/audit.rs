//! `[audit]`: where records go, rotation, durability (`fsync`), what a failed write does
//! (`on_error`) and the queue in front of the writer.

use crate::config::files;
use crate::config::problems::KeyPath;
use crate::config::raw;
use crate::policy::compile::Ctx;
use crate::stage::audit::{AuditSettings, AuditTarget, FsyncMode, OnError};

/// `[audit]`.
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
    let fsync = ctx
        .choice(
            &at.k("fsync"),
            raw.fsync.as_ref(),
            raw::Fsync::Batch,
            |other| format!("`{other}` must be \"always\", \"batch\" or \"never\""),
        )
        .map_or(FsyncMode::Batch, |fsync| match fsync {
            raw::Fsync::Always => FsyncMode::Always,
            raw::Fsync::Batch => FsyncMode::Batch,
            raw::Fsync::Never => FsyncMode::Never,
        });
    let on_error = ctx
        .choice(
            &at.k("on_error"),
            raw.on_error.as_ref(),
            raw::OnError::Reject,
            |other| format!("`{other}` must be \"reject\" or \"continue\""),
        )
        .map_or(OnError::Reject, |on_error| match on_error {
            raw::OnError::Reject => OnError::Reject,
            raw::OnError::Continue => OnError::Continue,
        });
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::policy::fixtures::{check, compiled, problems_in};
    use crate::stage::audit::{FsyncMode, OnError};

    #[test]
    fn bad_audit_values_are_reported_at_their_keys() {
        check(&[
            (
                "[audit]\npath = \"\"\n",
                &["2:8: `path` must name a file, or \"-\" for stdout"],
            ),
            (
                r#"[audit]
path = "-"
rotate_bytes = "big"
fsync = "sometimes"
on_error = "ignore"
queue_capacity = 0
"#,
                &[
                    "3:16: size `big` must start with a whole number",
                    "4:9: `sometimes` must be \"always\", \"batch\" or \"never\"",
                    "5:12: `ignore` must be \"reject\" or \"continue\"",
                    "6:18: must be at least 1",
                ],
            ),
            (
                "[audit]\npath = \"-\"\nfsync = \"always\"\non_error = \"continue\"\n",
                &[],
            ),
            (
                "[audit]\npath = \"-\"\nfsync = \"ALWAYS\"\n",
                &["3:9: `ALWAYS` must be \"always\", \"batch\" or \"never\""],
            ),
        ]);
    }

    #[test]
    fn an_audit_path_that_is_a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("logs")).unwrap();
        let out = problems_in(dir.path(), "[audit]\npath = \"logs\"\n");
        assert_eq!(
            out,
            format!("2:8: {} is a directory", dir.path().join("logs").display())
        );
    }

    #[test]
    fn every_fsync_and_on_error_choice_compiles_to_its_mode() {
        let nowhere = Path::new("/nonexistent-ordergate");
        for (fsync, on_error, want) in [
            ("", "", (FsyncMode::Batch, OnError::Reject)),
            (
                "fsync = \"always\"\n",
                "on_error = \"continue\"\n",
                (FsyncMode::Always, OnError::Continue),
            ),
            (
                "fsync = \"batch\"\n",
                "on_error = \"reject\"\n",
                (FsyncMode::Batch, OnError::Reject),
            ),
            (
                "fsync = \"never\"\n",
                "",
                (FsyncMode::Never, OnError::Reject),
            ),
        ] {
            let audit = compiled(
                nowhere,
                &format!("[audit]\npath = \"-\"\n{fsync}{on_error}"),
            )
            .audit;
            assert_eq!((audit.fsync, audit.on_error), want, "{fsync}{on_error}");
        }
    }
}
