//! `lethe bulk preview|execute|status|cancel`: bulk lifecycle actions through
//! a running `lethe serve`.
//!
//! Unlike `lethe act`, this opens no database: bulk jobs run on the server,
//! so the same decisions, audit trail and escalations apply as for the API.
//! The module only translates between the command line and the HTTP API
//! (`notes/bulk-contract.md`). Requests and answers are the library's own
//! types (`lethe::bulk`), so the client cannot drift from the server; they
//! do not deny unknown fields, so a field a later server adds does not break
//! an older client.
//!
//! This file holds the command line (clap) and what each command does; the
//! rest is split by concern:
//! - [`client`]: the HTTP client bound to a tenant's part of the API;
//! - [`events`]: following a job to its end (event stream, then polling);
//! - [`render`]: the text shown for previews and jobs, and the progress bar;
//! - [`explain`]: what a refusal means and what to do about it.
//!
//! What it shares with the operator commands (the server flags, the HTTP
//! client and its problem documents, time flags, times and tables for
//! people) is in [`super::http`].

mod client;
mod events;
mod explain;
mod render;

use std::process::ExitCode;

use clap::Subcommand;
use lethe::bulk::{BulkFilter, ExecuteRequest, Job, JobStatus, Preview, PreviewRequest};
use lethe::clock::unix_now;
use lethe::contract::{Action, LifecycleState, UnknownName};

use super::http::{self, parse, sh, show, TimeArg, SHORT_REQUEST};
use client::Api;
use explain::Asked;
use render::{render_job, render_preview};

/// Exit status for an error: an HTTP problem, or the server not reachable.
const EXIT_ERROR: u8 = 1;
/// Exit status for a job that ended cancelled or with failed users: the
/// command worked, but not every user got the outcome the policy allowed.
const EXIT_INCOMPLETE: u8 = 2;

pub(super) const EXIT_CODES: &str = "\
Exit codes:
  0  success; for execute and status: the job completed with no failed users
     (or, with --no-wait / for status, is still queued or running);
     for cancel: the cancel was accepted
  1  error: the server answered with a problem (its code is printed), or
     could not be reached
  2  the job ended cancelled, or some of its users failed
     (a command-line usage error also exits 2, before anything is sent)";

#[derive(Debug, Subcommand)]
pub enum BulkCommand {
    /// Decide a bulk action for every matching user without changing
    /// anything; prints the counts, reasons, effects, a sample and the
    /// command that executes it. Users are chosen by the filter flags (all
    /// must hold; none at all selects every user of the tenant) or by
    /// --user-ids.
    #[command(after_help = EXIT_CODES)]
    Preview(PreviewArgs),
    /// Execute a preview as a background job and follow its progress until
    /// it ends. Interrupting only stops following: the job goes on (see
    /// `lethe bulk cancel`).
    #[command(after_help = EXIT_CODES)]
    Execute(ExecuteArgs),
    /// Show a job's progress or outcome.
    #[command(after_help = EXIT_CODES)]
    Status(JobArgs),
    /// Ask a job to stop: a queued job is cancelled at once, a running one
    /// after the users in flight; users already applied stay applied.
    #[command(after_help = EXIT_CODES)]
    Cancel(JobArgs),
}

/// Where the server is, who asks, and about which tenant.
#[derive(Debug, clap::Args)]
#[command(mut_args(http::key_help(
    "The tenant's API key (`lethe keys create --tenant`); support keys may only read (`status`)"
)))]
pub struct TenantServerArgs {
    #[command(flatten)]
    http: http::ServerArgs,
    /// The tenant whose users the bulk action is about.
    #[arg(long)]
    tenant: String,
}

/// Options of `lethe bulk preview`. Users are chosen either by a filter
/// (all filter flags combine; none at all matches every user of the tenant)
/// or by an explicit list of ids.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("filter").multiple(true).args([
    "state", "role", "q", "domain", "last_login_before", "deleted_after", "deleted_before",
])))]
pub struct PreviewArgs {
    #[command(flatten)]
    server: TenantServerArgs,
    /// lock, unlock, deactivate, reactivate, delete, restore or erase.
    #[arg(long, value_parser = parse_name::<Action>)]
    action: Action,
    /// The tenant user on whose behalf the actions are asked.
    #[arg(long)]
    actor: String,
    /// Filter: users in this lifecycle state (active, locked, deactivated,
    /// deleted, erased).
    #[arg(long, value_parser = parse_name::<LifecycleState>)]
    state: Option<LifecycleState>,
    /// Filter: users with this role.
    #[arg(long)]
    role: Option<String>,
    /// Filter: free-text search, as in the user list of the API.
    #[arg(long)]
    q: Option<String>,
    /// Filter: users of this domain (the data map's domain column).
    #[arg(long)]
    domain: Option<String>,
    /// Filter: last login before TIME: unix seconds, or an age such as 90d
    /// or 1w 3d (s, m = minutes, h, d, w) meaning that long before now.
    #[arg(long, value_name = "TIME", value_parser = TimeArg::parse)]
    last_login_before: Option<TimeArg>,
    /// Filter: deleted after TIME (unix seconds or an age such as 30d).
    #[arg(long, value_name = "TIME", value_parser = TimeArg::parse)]
    deleted_after: Option<TimeArg>,
    /// Filter: deleted before TIME (unix seconds or an age such as 30d).
    #[arg(long, value_name = "TIME", value_parser = TimeArg::parse)]
    deleted_before: Option<TimeArg>,
    /// These users instead of a filter (comma-separated; at most the
    /// server's `[bulk] max_users`).
    #[arg(
        long,
        value_name = "ID,...",
        value_delimiter = ',',
        conflicts_with = "filter"
    )]
    user_ids: Option<Vec<String>>,
    /// Who receives the users' data when the policy transfers it.
    #[arg(long)]
    transfer_to: Option<String>,
    /// Recorded with every action.
    #[arg(long)]
    reason: Option<String>,
    /// Print the server's Preview JSON instead of the summary.
    #[arg(long)]
    json: bool,
}

/// Options of `lethe bulk execute`.
#[derive(Debug, clap::Args)]
pub struct ExecuteArgs {
    #[command(flatten)]
    server: TenantServerArgs,
    /// The `preview_id` printed by `lethe bulk preview`.
    preview_id: String,
    /// How many users you expect to be applied: the preview's
    /// `confirm_count`. A different number is refused, so a preview that
    /// was not read is not executed by accident.
    #[arg(long, value_name = "N")]
    confirm: u64,
    /// Print the job as accepted and return; do not follow it.
    #[arg(long)]
    no_wait: bool,
    /// Print the server's Job JSON (the final one unless --no-wait) instead
    /// of the summary; the progress bar still goes to stderr.
    #[arg(long)]
    json: bool,
}

/// Options of `lethe bulk status` and `lethe bulk cancel`.
#[derive(Debug, clap::Args)]
pub struct JobArgs {
    #[command(flatten)]
    server: TenantServerArgs,
    /// The job id printed by `lethe bulk execute`.
    job_id: String,
    /// Print the server's Job JSON instead of the summary.
    #[arg(long)]
    json: bool,
}

/// Errors are printed here, not in `main`, because `lethe bulk` documents
/// its own exit codes: 1 for errors, 2 for a job that did not fully apply.
pub fn run(cmd: BulkCommand) -> anyhow::Result<ExitCode> {
    let result = super::block_on(async move {
        match cmd {
            BulkCommand::Preview(args) => preview(args).await,
            BulkCommand::Execute(args) => execute(args).await,
            BulkCommand::Status(args) => status(args).await,
            BulkCommand::Cancel(args) => cancel(args).await,
        }
    });
    Ok(http::exit_status(result, |_| EXIT_ERROR))
}

fn parse_name<T: std::str::FromStr<Err = UnknownName>>(s: &str) -> Result<T, String> {
    s.parse().map_err(|e: UnknownName| e.to_string())
}

// ---------------------------------------------------------------------------
// Commands

async fn preview(args: PreviewArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.server)?;
    let now = unix_now();
    let user_ids = match args.user_ids {
        Some(ids) => {
            let ids: Vec<String> = ids
                .iter()
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            anyhow::ensure!(!ids.is_empty(), "--user-ids names no user");
            Some(ids)
        }
        None => None,
    };
    let filter = user_ids.is_none().then(|| BulkFilter {
        state: args.state.map(|s| s.as_str().to_owned()),
        role: args.role,
        q: args.q,
        domain: args.domain,
        last_login_before: args.last_login_before.map(|t| t.resolve(now)),
        deleted_after: args.deleted_after.map(|t| t.resolve(now)),
        deleted_before: args.deleted_before.map(|t| t.resolve(now)),
    });
    let body = PreviewRequest {
        action: args.action,
        actor_id: args.actor,
        filter,
        user_ids,
        transfer_to: args.transfer_to,
        reason: args.reason,
    };
    let url = api.http.url(&["bulk", "preview"])?;
    let text = match api.http.call(api.http.client.post(url).json(&body)).await? {
        Ok(text) => text,
        Err(f) => return Err(api.fail(&f, &Asked::Preview, args.json)),
    };
    show(&text, args.json, "preview", |p: &Preview| {
        render_preview(p, &api.tenant, now)
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn execute(args: ExecuteArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.server)?;
    let url = api.http.url(&["bulk", &args.preview_id, "execute"])?;
    let body = ExecuteRequest {
        confirm_count: args.confirm,
    };
    let asked = Asked::Execute {
        preview_id: &args.preview_id,
        confirm: args.confirm,
    };
    let mut text = match api.http.call(api.http.client.post(url).json(&body)).await? {
        Ok(text) => text,
        Err(f) => return Err(api.fail(&f, &asked, args.json)),
    };
    let mut job: Job = parse(&text, "job")?;
    if !args.no_wait {
        (job, text) = events::follow(&api, job, text).await?;
    }
    if args.json {
        println!("{}", text.trim_end());
    } else {
        println!("{}", render_job(&job, &api.tenant));
        if !job.is_terminal() {
            println!(
                "\nFollow it: lethe bulk status --tenant {} {}",
                sh(&api.tenant),
                sh(&job.job_id)
            );
        }
    }
    Ok(job_exit(&job))
}

async fn status(args: JobArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.server)?;
    let (job, text) = match api.get_job(&args.job_id).await? {
        Ok(pair) => pair,
        Err(f) => {
            let asked = Asked::Job {
                job_id: &args.job_id,
            };
            return Err(api.fail(&f, &asked, args.json));
        }
    };
    if args.json {
        println!("{}", text.trim_end());
    } else {
        println!("{}", render_job(&job, &api.tenant));
    }
    Ok(job_exit(&job))
}

async fn cancel(args: JobArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.server)?;
    let url = api.http.url(&["jobs", &args.job_id, "cancel"])?;
    let req = api.http.client.post(url).timeout(SHORT_REQUEST);
    let text = match api.http.call(req).await? {
        Ok(text) => text,
        Err(f) => {
            let asked = Asked::Cancel {
                job_id: &args.job_id,
            };
            return Err(api.fail(&f, &asked, args.json));
        }
    };
    if args.json {
        println!("{}", text.trim_end());
    } else {
        let job: Job = parse(&text, "job")?;
        println!("{}", render_job(&job, &api.tenant));
        if !job.is_terminal() {
            println!(
                "\nCancel requested; users in flight finish first. Follow it: \
                 lethe bulk status --tenant {} {}",
                sh(&api.tenant),
                sh(&job.job_id)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// 0 unless the job ended cancelled or with failed users: a script that
/// executes a bulk action must be able to tell "all done" from "look at it".
fn job_exit(job: &Job) -> ExitCode {
    if job.status == JobStatus::Cancelled || job.failed > 0 {
        ExitCode::from(EXIT_INCOMPLETE)
    } else {
        ExitCode::SUCCESS
    }
}

/// The contract's sample documents, shared by the modules' tests.
#[cfg(test)]
mod fixtures {
    use lethe::bulk::{OutcomeCounts, Preview};

    pub(super) const PREVIEW: &str = r#"{"preview_id":"bp-1","tenant":"t4","action":"delete","actor_id":"t4-u1",
 "matched":37,
 "confirm_count":30,
 "outcomes":{"allow":30,"escalate":5,"deny":2,"fault":0},
 "reasons":[{"outcome":"deny","code":"subject-is-admin","count":1},
            {"outcome":"escalate","code":"customer-success","count":5}],
 "effects":[{"category":"deals","disposition":"cascade","rows":120}],
 "unknown_user_ids":[],
 "sample":[{"user_id":"t4-u3","display_name":"Ada L","state":"active",
            "roles":["mentee"],"last_login_at":null,
            "outcome":"allow","code":null,"message":null}],
 "created_at":1790000000,"expires_at":1790000900}"#;

    pub(super) const JOB: &str = r#"{"job_id":"job-7","tenant":"t4","preview_id":"bp-1","action":"delete","actor_id":"t4-u1",
 "status":"completed",
 "cancel_requested":false,
 "total":37,"done":37,"pending":0,
 "applied":30,"escalated":5,"denied":1,"failed":1,"cancelled":0,
 "created_at":1790000000,"started_at":1790000001,"finished_at":1790000013,
 "not_applied":[{"seq":9,"user_id":"t4-u9","status":"escalated","code":"customer-success",
                 "detail":"the user is linked to 2 platforms","action_id":null,
                 "escalation_id":"esc-3"}],
 "not_applied_truncated":true}"#;

    /// A preview with nothing in it, for the edges of the summary.
    pub(super) fn bare_preview() -> Preview {
        Preview {
            preview_id: String::new(),
            tenant: String::new(),
            action: lethe::contract::Action::Delete,
            actor_id: String::new(),
            matched: 0,
            confirm_count: 0,
            outcomes: OutcomeCounts::default(),
            reasons: Vec::new(),
            effects: Vec::new(),
            unknown_user_ids: Vec::new(),
            sample: Vec::new(),
            created_at: 0,
            expires_at: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::JOB;
    use super::*;

    #[test]
    fn job_exit_codes() {
        let j: Job = serde_json::from_str(JOB).expect("contract sample parses");
        assert!(j.is_terminal());
        assert_eq!(job_exit(&j), ExitCode::from(EXIT_INCOMPLETE));
        let ok = Job { failed: 0, ..j };
        assert_eq!(job_exit(&ok), ExitCode::SUCCESS);
        let cancelled = Job {
            status: JobStatus::Cancelled,
            ..ok
        };
        assert_eq!(job_exit(&cancelled), ExitCode::from(EXIT_INCOMPLETE));
    }
}
