//! What a refusal means, for people: the problem's code and status, the
//! server's detail, and what to do next in terms of what was asked (the
//! command to run, the flag to check).
//!
//! Hints switch on the library's [`ErrorCode`], so a code renamed or removed
//! there does not compile here instead of silently losing its hint. A code
//! this build does not know (a newer server) is shown as it came, without a
//! hint.

use std::fmt::Write as _;

use lethe::bulk::Preview;
use lethe::error_code::ErrorCode;
use reqwest::StatusCode;

use super::super::http::{sh, Failure, Problem};

/// What the refused request asked, for messages that say what to do next.
pub(super) enum Asked<'a> {
    Preview,
    Execute { preview_id: &'a str, confirm: u64 },
    Job { job_id: &'a str },
    Cancel { job_id: &'a str },
}

/// One message for a refusal: the problem code and status, the server's
/// detail, and what to do about it.
pub(super) fn explain(f: &Failure, tenant: &str, asked: &Asked<'_>) -> String {
    let mut msg = f.headline();
    let Some(p) = &f.problem else {
        if f.status == StatusCode::NOT_FOUND {
            msg.push_str("\n  the server may predate bulk jobs; check --server");
        }
        return msg;
    };
    let hint = p
        .code
        .parse::<ErrorCode>()
        .ok()
        .and_then(|code| hint(code, p, tenant, asked));
    if let Some(hint) = hint {
        let _ = write!(msg, "\n  {hint}");
    }
    msg
}

/// What to do about `code` after `asked`; `None` where there is nothing to
/// add to the server's own detail.
fn hint(code: ErrorCode, p: &Problem, tenant: &str, asked: &Asked<'_>) -> Option<String> {
    let ext_str = |k: &str| p.extensions.get(k).and_then(|v| v.as_str()).unwrap_or("?");
    let t = sh(tenant);
    let hint = match (code, asked) {
        (ErrorCode::PreviewStale, Asked::Execute { preview_id, .. }) => stale(p, &t, preview_id),
        (
            ErrorCode::ConfirmCountMismatch,
            Asked::Execute {
                preview_id,
                confirm,
            },
        ) => {
            let expected = p
                .extensions
                .get("expected")
                .and_then(|v| v.as_u64())
                .map_or_else(|| "?".to_owned(), |n| n.to_string());
            format!(
                "--confirm {confirm} but preview {preview_id} would apply {expected} users; \
                 nothing was executed. If that is what you mean, run: \
                 lethe bulk execute --tenant {t} {} --confirm {expected}",
                sh(preview_id)
            )
        }
        (ErrorCode::PreviewUsed, Asked::Execute { preview_id, .. }) => {
            let job = ext_str("job_id");
            format!(
                "preview {preview_id} was already executed as job {job}. See it: \
                 lethe bulk status --tenant {t} {}",
                sh(job)
            )
        }
        (ErrorCode::PreviewExpired, _) => {
            "the preview expired; make a new one with `lethe bulk preview` and execute that"
                .to_owned()
        }
        (ErrorCode::NotFound, Asked::Execute { preview_id, .. }) => format!(
            "no preview {preview_id} for tenant {tenant}: check the id and that --tenant is the \
             tenant of the key and of the preview"
        ),
        (ErrorCode::NotFound, Asked::Job { job_id } | Asked::Cancel { job_id }) => format!(
            "no job {job_id} for tenant {tenant}: check the id and that --tenant is the tenant \
             of the key and of the job"
        ),
        (ErrorCode::NotFound, Asked::Preview) => {
            format!("no tenant {tenant} for this key: check --tenant and --key")
        }
        (ErrorCode::JobFinished, Asked::Cancel { job_id }) => format!(
            "job {job_id} has already ended; nothing to cancel. See it: \
             lethe bulk status --tenant {t} {}",
            sh(job_id)
        ),
        (ErrorCode::Unauthorized, _) => {
            "the server does not accept the key: check --key / LETHE_KEY".to_owned()
        }
        (ErrorCode::TenantKeyRequired, _) => {
            "this needs the tenant's key; support keys may only read (`lethe bulk status`)"
                .to_owned()
        }
        _ => return None,
    };
    Some(hint)
}

/// A stale preview: nothing was executed. The server sends a fresh preview
/// with the refusal; its counts and the command that executes it are shown,
/// so the user decides on what would happen now.
fn stale(p: &Problem, t: &str, preview_id: &str) -> String {
    let fresh: Option<Preview> = p
        .extensions
        .get("preview")
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    match fresh {
        Some(n) => format!(
            "the users matched by preview {preview_id}, or their outcomes, changed since \
             it was made; nothing was executed. The server made a fresh preview {}: \
             matched {}, allow {}, escalate {}, deny {}, fault {}; it would apply {} \
             users.\n  If that is right, run: \
             lethe bulk execute --tenant {t} {} --confirm {}",
            n.preview_id,
            n.matched,
            n.outcomes.allow,
            n.outcomes.escalate,
            n.outcomes.deny,
            n.outcomes.fault,
            n.confirm_count,
            sh(&n.preview_id),
            n.confirm_count
        ),
        None => format!(
            "the users matched by preview {preview_id}, or their outcomes, changed since \
             it was made; nothing was executed. Run `lethe bulk preview` again."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::http::failure;
    use super::super::fixtures::PREVIEW;
    use super::*;

    #[test]
    fn problem_messages() {
        let execute = Asked::Execute {
            preview_id: "bp-1",
            confirm: 31,
        };
        let stale = format!(
            r#"{{"type":"urn:lethe:problem:preview-stale","title":"Conflict","status":409,
                "code":"preview-stale","detail":"changed","preview":{}}}"#,
            PREVIEW.replace("bp-1", "bp-2")
        );
        let msg = explain(&failure(409, &stale), "t4", &execute);
        assert!(msg.starts_with("preview-stale (409): changed"), "{msg}");
        assert!(
            msg.contains("matched 37, allow 30, escalate 5, deny 2, fault 0"),
            "{msg}"
        );
        assert!(
            msg.contains("lethe bulk execute --tenant t4 bp-2 --confirm 30"),
            "{msg}"
        );

        let mismatch = r#"{"status":422,"code":"confirm-count-mismatch","expected":30}"#;
        let msg = explain(&failure(422, mismatch), "t4", &execute);
        assert!(msg.starts_with("confirm-count-mismatch (422)"), "{msg}");
        assert!(
            msg.contains("--confirm 31 but preview bp-1 would apply 30 users"),
            "{msg}"
        );

        let used = r#"{"status":409,"code":"preview-used","job_id":"job-7"}"#;
        let msg = explain(&failure(409, used), "t4", &execute);
        assert!(msg.contains("lethe bulk status --tenant t4 job-7"), "{msg}");

        let gone = r#"{"status":410,"code":"preview-expired"}"#;
        assert!(explain(&failure(410, gone), "t4", &execute).contains("lethe bulk preview"));

        let msg = explain(&failure(404, ""), "t4", &execute);
        assert!(msg.starts_with("HTTP 404 Not Found"), "{msg}");
    }

    #[test]
    fn hints_follow_what_was_asked() {
        let cancel = Asked::Cancel { job_id: "job 7" };
        let finished = r#"{"code":"job-finished","title":"Conflict"}"#;
        let msg = explain(&failure(409, finished), "t4", &cancel);
        assert_eq!(
            msg,
            "job-finished (409): Conflict\n  job job 7 has already ended; nothing to cancel. \
             See it: lethe bulk status --tenant t4 'job 7'"
        );
        let not_found = r#"{"code":"not-found"}"#;
        let msg = explain(&failure(404, not_found), "t4", &Asked::Preview);
        assert!(
            msg.ends_with("no tenant t4 for this key: check --tenant and --key"),
            "{msg}"
        );
        // A code with no hint for what was asked: the server's words only.
        let msg = explain(&failure(409, finished), "t4", &Asked::Job { job_id: "j" });
        assert_eq!(msg, "job-finished (409): Conflict");
    }

    #[test]
    fn unknown_codes_are_shown_raw() {
        let newer = r#"{"code":"quota-exceeded","detail":"too many jobs"}"#;
        let msg = explain(&failure(429, newer), "t4", &Asked::Preview);
        assert_eq!(msg, "quota-exceeded (429): too many jobs");
    }
}
