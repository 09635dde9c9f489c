//! What `lethe bulk` shows people: the summaries of a preview and of a job
//! (stdout; `--json` prints the server's documents instead), commands to
//! paste next, and the progress bar of a job being followed (stderr).

use std::fmt::Write as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lethe::bulk::{Job, Preview};

use super::super::http::{sh, span, table, utc};

/// The bar is drawn on stderr, so stdout keeps only the result; indicatif
/// hides it when stderr is not a terminal, so scripts and logs stay clean.
pub(super) fn progress_bar(job: &Job) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(job.total), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    show_progress(&bar, job);
    bar
}

/// Moves the bar to where `job` is.
pub(super) fn show_progress(bar: &ProgressBar, job: &Job) {
    bar.set_length(job.total);
    bar.set_position(job.done);
    bar.set_message(format!(
        "applied {}, escalated {}, denied {}, failed {}",
        job.applied, job.escalated, job.denied, job.failed
    ));
}

/// The summary of a preview: what would happen, why, and the command that
/// executes it. `now` says whether it has expired.
pub(super) fn render_preview(p: &Preview, tenant: &str, now: i64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Preview {} on tenant {tenant}: {} as {} (nothing has been changed)",
        p.preview_id, p.action, p.actor_id
    );
    let o = &p.outcomes;
    let _ = writeln!(
        out,
        "  matched {} users: allow {}, escalate {}, deny {}, fault {}",
        p.matched, o.allow, o.escalate, o.deny, o.fault
    );
    let _ = writeln!(out, "  executing applies {} users", p.confirm_count);
    if !p.unknown_user_ids.is_empty() {
        // Thousands of ids may be given: show the first few only.
        let shown = &p.unknown_user_ids[..p.unknown_user_ids.len().min(20)];
        let more = p.unknown_user_ids.len() - shown.len();
        let _ = write!(
            out,
            "  unknown user ids ({}): {}",
            p.unknown_user_ids.len(),
            shown.join(", ")
        );
        if more > 0 {
            let _ = write!(out, " and {more} more (--json lists them all)");
        }
        out.push('\n');
    }
    if !p.reasons.is_empty() {
        out.push_str("\nReasons:\n");
        let rows: Vec<Vec<String>> = p
            .reasons
            .iter()
            .map(|r| vec![r.outcome.to_string(), r.code.clone(), r.count.to_string()])
            .collect();
        out.push_str(&table(None, &rows));
    }
    if !p.effects.is_empty() {
        out.push_str("\nEffects per category:\n");
        let rows: Vec<Vec<String>> = p
            .effects
            .iter()
            .map(|e| {
                vec![
                    e.category.clone(),
                    e.disposition.clone(),
                    format!("{} rows", e.rows),
                ]
            })
            .collect();
        out.push_str(&table(None, &rows));
    }
    if !p.sample.is_empty() {
        let _ = writeln!(out, "\nSample ({} of {}):", p.sample.len(), p.matched);
        let rows: Vec<Vec<String>> = p
            .sample
            .iter()
            .map(|u| {
                let why = match (&u.code, &u.message) {
                    (Some(c), Some(m)) => format!("{c}: {m}"),
                    (Some(c), None) => c.clone(),
                    (None, Some(m)) => m.clone(),
                    (None, None) => String::new(),
                };
                vec![
                    u.user_id.clone(),
                    u.display_name.clone().unwrap_or_default(),
                    u.state.to_string(),
                    u.outcome.to_string(),
                    why,
                ]
            })
            .collect();
        out.push_str(&table(None, &rows));
    }
    out.push('\n');
    let left = p.expires_at - now;
    if left > 0 {
        let _ = writeln!(out, "Expires {} (in {}).", utc(p.expires_at), span(left));
    } else {
        let _ = writeln!(
            out,
            "Expired {} ({} ago); make a new preview.",
            utc(p.expires_at),
            span(left)
        );
    }
    let _ = write!(
        out,
        "Next: lethe bulk execute --tenant {} {} --confirm {}",
        sh(tenant),
        sh(&p.preview_id),
        p.confirm_count
    );
    out
}

/// The summary of a job: its progress or outcome, and the users that were
/// not applied (escalated, denied, failed, cancelled) with the reason.
pub(super) fn render_job(j: &Job, tenant: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Job {} (preview {}) on tenant {tenant}: {} as {}",
        j.job_id, j.preview_id, j.action, j.actor_id
    );
    let mut status = j.status.to_string();
    if j.cancel_requested && !j.is_terminal() {
        status.push_str(", cancel requested");
    }
    let _ = writeln!(out, "  status    {status}");
    let _ = writeln!(
        out,
        "  users     {} done of {} ({} pending): applied {}, escalated {}, denied {}, \
         failed {}, cancelled {}",
        j.done, j.total, j.pending, j.applied, j.escalated, j.denied, j.failed, j.cancelled
    );
    match (j.started_at, j.finished_at) {
        (Some(s), Some(f)) => {
            let _ = writeln!(out, "  finished  {} (took {})", utc(f), span(f - s));
        }
        (Some(s), None) => {
            let _ = writeln!(out, "  started   {}", utc(s));
        }
        (None, Some(f)) => {
            let _ = writeln!(out, "  finished  {}", utc(f));
        }
        (None, None) => {}
    }
    if !j.not_applied.is_empty() {
        let _ = writeln!(out, "\nNot applied ({}):", j.not_applied.len());
        let rows: Vec<Vec<String>> = j
            .not_applied
            .iter()
            .map(|n| {
                let mut why = n.detail.clone().unwrap_or_default();
                if let Some(e) = &n.escalation_id {
                    let _ = write!(why, " (escalation {e})");
                }
                vec![
                    n.user_id.clone(),
                    n.status.to_string(),
                    n.code.clone().unwrap_or_else(|| "-".to_owned()),
                    why.trim().to_owned(),
                ]
            })
            .collect();
        out.push_str(&table(None, &rows));
    }
    if j.not_applied_truncated {
        let _ = writeln!(
            out,
            "  (list truncated; every item is at GET /v1/tenants/{tenant}/jobs/{}/items)",
            j.job_id
        );
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{bare_preview, JOB, PREVIEW};
    use super::*;

    #[test]
    fn preview_summary() {
        let p: Preview = serde_json::from_str(PREVIEW).expect("contract sample parses");
        let out = render_preview(&p, "t4", 1_790_000_060);
        for want in [
            "Preview bp-1 on tenant t4: delete as t4-u1",
            "matched 37 users: allow 30, escalate 5, deny 2, fault 0",
            "executing applies 30 users",
            "\n  deny      subject-is-admin  1\n",
            "\n  escalate  customer-success  5\n",
            "\n  deals  cascade  120 rows\n",
            "Sample (1 of 37):",
            "\n  t4-u3  Ada L  active  allow\n",
            "Expires 2026-09-21 14:28:20 UTC (in 14m).",
            "Next: lethe bulk execute --tenant t4 bp-1 --confirm 30",
        ] {
            assert!(out.contains(want), "missing {want:?} in:\n{out}");
        }
        assert!(!out.contains("unknown user ids"));

        let ids: Vec<String> = (0..25).map(|i| format!("x{i}")).collect();
        let p = Preview {
            unknown_user_ids: ids,
            expires_at: 1,
            ..bare_preview()
        };
        let out = render_preview(&p, "t 4", 61);
        assert!(out.contains("unknown user ids (25): x0, x1,"), "{out}");
        assert!(
            out.contains("x19 and 5 more (--json lists them all)"),
            "{out}"
        );
        assert!(
            out.contains("Expired 1970-01-01 00:00:01 UTC (1m ago)"),
            "{out}"
        );
        assert!(out.contains("--tenant 't 4' '' --confirm 0"), "{out}");
    }

    #[test]
    fn job_summary() {
        let j: Job = serde_json::from_str(JOB).expect("contract sample parses");
        let out = render_job(&j, "t4");
        for want in [
            "Job job-7 (preview bp-1) on tenant t4: delete as t4-u1",
            "status    completed",
            "37 done of 37 (0 pending): applied 30, escalated 5, denied 1, failed 1, cancelled 0",
            "finished  2026-09-21 14:13:33 UTC (took 12s)",
            "Not applied (1):",
            "\n  t4-u9  escalated  customer-success  the user is linked to 2 platforms (escalation esc-3)\n",
            "list truncated; every item is at GET /v1/tenants/t4/jobs/job-7/items",
        ] {
            assert!(out.contains(want), "missing {want:?} in:\n{out}");
        }
    }
}
