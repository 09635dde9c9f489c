//! `lethe bulk preview|execute|status|cancel`: bulk lifecycle actions through
//! a running `lethe serve`.
//!
//! Unlike `lethe act`, this opens no database: bulk jobs run on the server,
//! so the same decisions, audit trail and escalations apply as for the API.
//! The module only translates between the command line and the HTTP API
//! (`notes/bulk-contract.md`). Requests and answers are the library's own
//! types (`lethe::bulk`), so the client cannot drift from the server; they
//! do not deny unknown fields, so a field a later server adds does not break
//! an older client. Only the problem document is read into a local struct:
//! the library's `ProblemDetails` is written by the server, never read.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lethe::bulk::{BulkFilter, ExecuteRequest, Job, Preview, PreviewRequest};
use lethe::contract::{Action, LifecycleState, UnknownName};
use reqwest::{Client, RequestBuilder, StatusCode, Url};
use serde::Deserialize;

/// Exit status for an error: an HTTP problem, or the server not reachable.
const EXIT_ERROR: u8 = 1;
/// Exit status for a job that ended cancelled or with failed users: the
/// command worked, but not every user got the outcome the policy allowed.
const EXIT_INCOMPLETE: u8 = 2;

/// How often to ask for the job when its event stream is gone.
const POLL_EVERY: Duration = Duration::from_millis(500);
/// A stream that says nothing for this long is treated as broken (a
/// half-open connection would otherwise hang the CLI); polling takes over,
/// which is always correct, only chattier.
const STREAM_STALL: Duration = Duration::from_secs(30);
/// For the short requests (job reads, cancel). Preview and execute get no
/// overall limit: deciding 10 000 users may legitimately take a while.
const SHORT_REQUEST: Duration = Duration::from_secs(30);

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

/// Where the server is and who asks.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Base URL of `lethe serve` (plain HTTP).
    #[arg(long, env = "LETHE_SERVER", default_value = "http://127.0.0.1:8080")]
    server: Url,
    /// The tenant's API key (`lethe keys create --tenant`); support keys may
    /// only read (`status`).
    #[arg(long, env = "LETHE_KEY", hide_env_values = true)]
    key: String,
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
    server: ServerArgs,
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
    /// (s, m = minutes, h, d, w) meaning that long before now.
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
    server: ServerArgs,
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
    server: ServerArgs,
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
    match result {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(ExitCode::from(EXIT_ERROR))
        }
    }
}

fn parse_name<T: std::str::FromStr<Err = UnknownName>>(s: &str) -> Result<T, String> {
    s.parse().map_err(|e: UnknownName| e.to_string())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
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
    let url = api.url(&["bulk", "preview"])?;
    let text = match api.call(api.client.post(url).json(&body)).await? {
        Ok(text) => text,
        Err(f) => return Err(api.fail(&f, &Asked::Preview, args.json)),
    };
    if args.json {
        println!("{}", text.trim_end());
    } else {
        let p: Preview = parse(&text, "preview")?;
        println!("{}", render_preview(&p, &api.tenant, now));
    }
    Ok(ExitCode::SUCCESS)
}

async fn execute(args: ExecuteArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.server)?;
    let url = api.url(&["bulk", &args.preview_id, "execute"])?;
    let body = ExecuteRequest {
        confirm_count: args.confirm,
    };
    let asked = Asked::Execute {
        preview_id: &args.preview_id,
        confirm: args.confirm,
    };
    let mut text = match api.call(api.client.post(url).json(&body)).await? {
        Ok(text) => text,
        Err(f) => return Err(api.fail(&f, &asked, args.json)),
    };
    let mut job: Job = parse(&text, "job")?;
    if !args.no_wait {
        (job, text) = follow(&api, job, text).await?;
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
    let url = api.url(&["jobs", &args.job_id, "cancel"])?;
    let req = api.client.post(url).timeout(SHORT_REQUEST);
    let text = match api.call(req).await? {
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
    if job.status == "cancelled" || job.failed > 0 {
        ExitCode::from(EXIT_INCOMPLETE)
    } else {
        ExitCode::SUCCESS
    }
}

// ---------------------------------------------------------------------------
// Following a job

/// Follows a job to its end: the event stream while it works, polling when
/// it does not (broken, closed early, stalled, or not offered by the server).
async fn follow(api: &Api, mut job: Job, mut text: String) -> anyhow::Result<(Job, String)> {
    let bar = progress_bar(&job);
    if !job.is_terminal() {
        match watch_events(api, &job.job_id, &bar).await {
            Ok(Some(end)) => (job, text) = end,
            Ok(None) => bar.suspend(|| {
                tracing::warn!("the job's event stream closed before its end; polling instead");
            }),
            Err(e) => bar.suspend(|| {
                tracing::warn!(error = %format!("{e:#}"), "the job's event stream broke; polling instead");
            }),
        }
    }
    while !job.is_terminal() {
        tokio::time::sleep(POLL_EVERY).await;
        (job, text) = match api.get_job(&job.job_id).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(f)) => {
                bar.abandon();
                let asked = Asked::Job {
                    job_id: &job.job_id,
                };
                return Err(anyhow!(explain(&f, &api.tenant, &asked)));
            }
            Err(e) => {
                bar.abandon();
                return Err(e.context(format!(
                    "lost the job; it goes on on the server: \
                     lethe bulk status --tenant {} {}",
                    sh(&api.tenant),
                    sh(&job.job_id)
                )));
            }
        };
        show_progress(&bar, &job);
    }
    bar.finish_and_clear();
    Ok((job, text))
}

/// Reads `GET …/jobs/{id}/events` until its `end` event. `Ok(None)`: the
/// stream closed without one.
async fn watch_events(
    api: &Api,
    job_id: &str,
    bar: &ProgressBar,
) -> anyhow::Result<Option<(Job, String)>> {
    let url = api.url(&["jobs", job_id, "events"])?;
    let req = api
        .client
        .get(url)
        .bearer_auth(&api.key)
        .header(reqwest::header::ACCEPT, "text/event-stream");
    let mut resp = req.send().await.context("opening the event stream")?;
    anyhow::ensure!(
        resp.status().is_success(),
        "the event stream answered HTTP {}",
        resp.status()
    );
    let mut parser = SseParser::default();
    loop {
        let chunk = tokio::time::timeout(STREAM_STALL, resp.chunk())
            .await
            .map_err(|_| anyhow!("no event for {} s", STREAM_STALL.as_secs()))?
            .context("reading the event stream")?;
        let Some(chunk) = chunk else {
            return Ok(None);
        };
        for event in parser.push(&chunk) {
            // Other event names are ignored: the server may add some.
            if event.event != "progress" && event.event != "end" {
                continue;
            }
            let job: Job = parse(&event.data, "job event")?;
            show_progress(bar, &job);
            if event.event == "end" {
                return Ok(Some((job, event.data)));
            }
        }
    }
}

/// The bar is drawn on stderr, so stdout keeps only the result; indicatif
/// hides it when stderr is not a terminal.
fn progress_bar(job: &Job) -> ProgressBar {
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

fn show_progress(bar: &ProgressBar, job: &Job) {
    bar.set_length(job.total);
    bar.set_position(job.done);
    bar.set_message(format!(
        "applied {}, escalated {}, denied {}, failed {}",
        job.applied, job.escalated, job.denied, job.failed
    ));
}

// ---------------------------------------------------------------------------
// HTTP

/// A client bound to one server, key and tenant.
struct Api {
    client: Client,
    base: Url,
    key: String,
    tenant: String,
}

/// A non-success answer, kept whole so that the command can explain it in
/// terms of what was asked.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    problem: Option<Problem>,
    body: String,
}

impl Api {
    fn new(args: &ServerArgs) -> anyhow::Result<Api> {
        let client = Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("lethe-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        Ok(Api {
            client,
            base: args.server.clone(),
            key: args.key.clone(),
            tenant: args.tenant.clone(),
        })
    }

    /// `{server}/v1/tenants/{tenant}/{tail…}`, each segment percent-encoded.
    fn url(&self, tail: &[&str]) -> anyhow::Result<Url> {
        let mut url = self.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| anyhow!("--server {} is not a base URL", self.base))?;
            path.pop_if_empty()
                .extend(["v1", "tenants", self.tenant.as_str()])
                .extend(tail);
        }
        Ok(url)
    }

    /// Sends with the key. The outer error is the transport (nothing was
    /// answered); the inner one is the server's refusal.
    async fn call(&self, req: RequestBuilder) -> anyhow::Result<Result<String, Failure>> {
        let resp =
            req.bearer_auth(&self.key).send().await.with_context(|| {
                format!("no answer from {} (is `lethe serve` running?)", self.base)
            })?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .with_context(|| format!("reading the answer from {}", self.base))?;
        if status.is_success() {
            return Ok(Ok(body));
        }
        // Only a document with a `code` is a problem; anything else (a
        // proxy's HTML page, an empty 404) is reported as it came.
        let problem = serde_json::from_str::<Problem>(&body)
            .ok()
            .filter(|p| !p.code.is_empty());
        Ok(Err(Failure {
            status,
            problem,
            body,
        }))
    }

    async fn get_job(&self, job_id: &str) -> anyhow::Result<Result<(Job, String), Failure>> {
        let url = self.url(&["jobs", job_id])?;
        match self
            .call(self.client.get(url).timeout(SHORT_REQUEST))
            .await?
        {
            Ok(text) => Ok(Ok((parse(&text, "job")?, text))),
            Err(f) => Ok(Err(f)),
        }
    }

    /// The error for a refusal; with `--json` the problem document also goes
    /// to stdout, so a script can switch on its `code`.
    fn fail(&self, f: &Failure, asked: &Asked<'_>, json: bool) -> anyhow::Error {
        if json && f.problem.is_some() {
            println!("{}", f.body.trim_end());
        }
        anyhow!(explain(f, &self.tenant, asked))
    }
}

fn parse<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> anyhow::Result<T> {
    serde_json::from_str(text)
        .with_context(|| format!("the server's {what} is not what was expected"))
}

// ---------------------------------------------------------------------------
// Problem documents

/// An RFC 9457 problem document; `code` is what the messages switch on.
/// Local because `lethe::api::problem::ProblemDetails` only serializes, and
/// lenient because a refusal may come from a proxy or an older server.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Problem {
    title: String,
    code: String,
    detail: Option<String>,
    #[serde(flatten)]
    extensions: serde_json::Map<String, serde_json::Value>,
}

// ---------------------------------------------------------------------------
// Time flags

/// A time flag as given: a point in time, or an age to subtract from now
/// when the request is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeArg {
    At(i64),
    Ago(i64),
}

impl TimeArg {
    fn parse(s: &str) -> Result<TimeArg, String> {
        let bad = || {
            format!(
                "`{s}`: expected unix seconds (e.g. 1789000000) or an age such as \
                 90d, 12h, 30m, 45s or 2w"
            )
        };
        let s = s.trim();
        let digits = |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
        if digits(s) {
            return s.parse().map(TimeArg::At).map_err(|_| bad());
        }
        let Some(unit) = s.chars().last() else {
            return Err(bad());
        };
        let n = &s[..s.len() - unit.len_utf8()];
        let scale: i64 = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        if !digits(n) {
            return Err(bad());
        }
        n.parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(scale))
            .map(TimeArg::Ago)
            .ok_or_else(bad)
    }

    fn resolve(self, now: i64) -> i64 {
        match self {
            TimeArg::At(t) => t,
            TimeArg::Ago(age) => now.saturating_sub(age),
        }
    }
}

// ---------------------------------------------------------------------------
// Server-sent events

#[derive(Debug, PartialEq, Eq)]
struct SseEvent {
    /// The `event:` name; `message` when the event had none.
    event: String,
    /// The `data:` lines joined with `\n`.
    data: String,
}

/// Incremental `text/event-stream` parser: bytes in, whole events out.
/// Lines may end in `\n`, `\r\n` or `\r` and may be split anywhere between
/// chunks; `:` lines are comments; `id` and `retry` are not used here.
#[derive(Debug, Default)]
struct SseParser {
    pending: Vec<u8>,
    event: String,
    data: Vec<String>,
}

impl SseParser {
    fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        let (mut start, mut i) = (0, 0);
        while i < self.pending.len() {
            let end = match self.pending[i] {
                b'\n' => 1,
                // A `\r` last in the buffer may be the first half of `\r\n`.
                b'\r' if i + 1 == self.pending.len() => break,
                b'\r' if self.pending[i + 1] == b'\n' => 2,
                b'\r' => 1,
                _ => {
                    i += 1;
                    continue;
                }
            };
            let line = String::from_utf8_lossy(&self.pending[start..i]).into_owned();
            self.line(&line, &mut out);
            i += end;
            start = i;
        }
        self.pending.drain(..start);
        out
    }

    fn line(&mut self, line: &str, out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            let event = std::mem::take(&mut self.event);
            let data = std::mem::take(&mut self.data);
            // An event without data is not dispatched (as in browsers).
            if !data.is_empty() {
                out.push(SseEvent {
                    event: if event.is_empty() {
                        "message".to_owned()
                    } else {
                        event
                    },
                    data: data.join("\n"),
                });
            }
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => self.data.push(value.to_owned()),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------
// Messages

/// What the refused request asked, for messages that say what to do next.
enum Asked<'a> {
    Preview,
    Execute { preview_id: &'a str, confirm: u64 },
    Job { job_id: &'a str },
    Cancel { job_id: &'a str },
}

/// One message for a refusal: the problem code and status, the server's
/// detail, and what to do about it.
fn explain(f: &Failure, tenant: &str, asked: &Asked<'_>) -> String {
    let Some(p) = &f.problem else {
        let body: String = f.body.trim().chars().take(200).collect();
        let mut msg = format!("HTTP {}", f.status);
        if !body.is_empty() {
            let _ = write!(msg, ": {body}");
        }
        if f.status == StatusCode::NOT_FOUND {
            msg.push_str("\n  the server may predate bulk jobs; check --server");
        }
        return msg;
    };
    let mut msg = format!("{} ({})", p.code, f.status.as_u16());
    match (p.detail.as_deref(), p.title.as_str()) {
        (Some(d), _) if !d.is_empty() => {
            let _ = write!(msg, ": {d}");
        }
        (_, t) if !t.is_empty() => {
            let _ = write!(msg, ": {t}");
        }
        _ => {}
    }
    let ext_str = |k: &str| p.extensions.get(k).and_then(|v| v.as_str()).unwrap_or("?");
    let t = sh(tenant);
    let hint = match (p.code.as_str(), asked) {
        ("preview-stale", Asked::Execute { preview_id, .. }) => {
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
        (
            "confirm-count-mismatch",
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
        ("preview-used", Asked::Execute { preview_id, .. }) => {
            let job = ext_str("job_id");
            format!(
                "preview {preview_id} was already executed as job {job}. See it: \
                 lethe bulk status --tenant {t} {}",
                sh(job)
            )
        }
        ("preview-expired", _) => {
            "the preview expired; make a new one with `lethe bulk preview` and execute that"
                .to_owned()
        }
        ("not-found", Asked::Execute { preview_id, .. }) => format!(
            "no preview {preview_id} for tenant {tenant}: check the id and that --tenant is the \
             tenant of the key and of the preview"
        ),
        ("not-found", Asked::Job { job_id } | Asked::Cancel { job_id }) => format!(
            "no job {job_id} for tenant {tenant}: check the id and that --tenant is the tenant \
             of the key and of the job"
        ),
        ("not-found", Asked::Preview) => {
            format!("no tenant {tenant} for this key: check --tenant and --key")
        }
        ("job-finished", Asked::Cancel { job_id }) => format!(
            "job {job_id} has already ended; nothing to cancel. See it: \
             lethe bulk status --tenant {t} {}",
            sh(job_id)
        ),
        ("unauthorized", _) => {
            "the server does not accept the key: check --key / LETHE_KEY".to_owned()
        }
        ("tenant-key-required", _) => {
            "this needs the tenant's key; support keys may only read (`lethe bulk status`)"
                .to_owned()
        }
        _ => String::new(),
    };
    if !hint.is_empty() {
        let _ = write!(msg, "\n  {hint}");
    }
    msg
}

/// `s` as one shell word, so a printed command can be pasted as is.
fn sh(s: &str) -> Cow<'_, str> {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/@%+=,".contains(c));
    if plain {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(format!("'{}'", s.replace('\'', r"'\''")))
    }
}

/// `2026-09-21 14:13:20 UTC`: days to civil date after H. Hinnant's
/// `civil_from_days`, to avoid a date crate for one line of output.
fn utc(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// A duration for people: `14m 5s`, `2h 0m`, `3d 4h`.
fn span(secs: i64) -> String {
    let s = secs.unsigned_abs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Rows as left-aligned columns two spaces apart.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let _ = write!(line, "  {cell:<w$}", w = widths[c]);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn render_preview(p: &Preview, tenant: &str, now: i64) -> String {
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
            .map(|r| vec![r.outcome.clone(), r.code.clone(), r.count.to_string()])
            .collect();
        out.push_str(&table(&rows));
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
        out.push_str(&table(&rows));
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
                    u.state.clone(),
                    u.outcome.clone(),
                    why,
                ]
            })
            .collect();
        out.push_str(&table(&rows));
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

fn render_job(j: &Job, tenant: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Job {} (preview {}) on tenant {tenant}: {} as {}",
        j.job_id, j.preview_id, j.action, j.actor_id
    );
    let mut status = j.status.clone();
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
                    n.status.clone(),
                    n.code.clone().unwrap_or_else(|| "-".to_owned()),
                    why.trim().to_owned(),
                ]
            })
            .collect();
        out.push_str(&table(&rows));
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
    use lethe::bulk::OutcomeCounts;

    use super::*;

    const PREVIEW: &str = r#"{"preview_id":"bp-1","tenant":"t4","action":"delete","actor_id":"t4-u1",
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

    const JOB: &str = r#"{"job_id":"job-7","tenant":"t4","preview_id":"bp-1","action":"delete","actor_id":"t4-u1",
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
    fn bare_preview() -> Preview {
        Preview {
            preview_id: String::new(),
            tenant: String::new(),
            action: String::new(),
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

    fn events<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<SseEvent> {
        let mut p = SseParser::default();
        chunks.into_iter().flat_map(|c| p.push(c)).collect()
    }

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.to_owned(),
            data: data.to_owned(),
        }
    }

    #[test]
    fn sse_events_and_data_lines() {
        let got = events([
            b"event: progress\ndata: {\"a\":1}\n\nevent: end\ndata: x\ndata: y\n\n".as_slice(),
        ]);
        assert_eq!(got, vec![ev("progress", "{\"a\":1}"), ev("end", "x\ny")]);
    }

    #[test]
    fn sse_split_anywhere_and_crlf() {
        let text: &[u8] =
            b"event: progress\r\ndata:{\"a\":1}\r\n\r\n: keep-alive\r\ndata: m\r\rdata: n\n\n";
        let whole = events([text]);
        assert_eq!(
            whole,
            vec![
                ev("progress", "{\"a\":1}"),
                ev("message", "m"),
                ev("message", "n")
            ]
        );
        // Every split point, including between `\r` and `\n`.
        for at in 0..text.len() {
            assert_eq!(events([&text[..at], &text[at..]]), whole, "split at {at}");
        }
        // Byte by byte.
        assert_eq!(events(text.chunks(1)), whole);
    }

    #[test]
    fn sse_edge_cases() {
        // No data: not dispatched; its event name does not leak into the next.
        assert_eq!(
            events([b"event: a\n\ndata: 1\n\n".as_slice()]),
            vec![ev("message", "1")]
        );
        // `data` without colon is an empty line of data; one space only is stripped.
        assert_eq!(
            events([b"data\ndata:  two\n\n".as_slice()]),
            vec![ev("message", "\n two")]
        );
        // An unfinished event at the end is not dispatched.
        assert_eq!(events([b"event: end\ndata: 1\n".as_slice()]), vec![]);
        // Unknown fields are ignored; UTF-8 split between chunks survives.
        let s = "id: 3\nretry: 10\ndata: é\n\n".as_bytes();
        let at = s.len() - 4;
        assert_eq!(events([&s[..at], &s[at..]]), vec![ev("message", "é")]);
    }

    #[test]
    fn time_flags() {
        assert_eq!(TimeArg::parse("1789000000"), Ok(TimeArg::At(1_789_000_000)));
        assert_eq!(TimeArg::parse("0"), Ok(TimeArg::At(0)));
        assert_eq!(TimeArg::parse("90d"), Ok(TimeArg::Ago(90 * 86_400)));
        assert_eq!(TimeArg::parse("12h"), Ok(TimeArg::Ago(12 * 3600)));
        assert_eq!(TimeArg::parse("30m"), Ok(TimeArg::Ago(1800)));
        assert_eq!(TimeArg::parse("45s"), Ok(TimeArg::Ago(45)));
        assert_eq!(TimeArg::parse("2w"), Ok(TimeArg::Ago(14 * 86_400)));
        for bad in [
            "",
            "d",
            "-5",
            "-5d",
            "1.5d",
            "90D",
            "90y",
            "9x9d",
            "99999999999999999999d",
            "1é",
        ] {
            assert!(TimeArg::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(
            TimeArg::Ago(90 * 86_400).resolve(1_790_000_000),
            1_790_000_000 - 7_776_000
        );
        assert_eq!(TimeArg::At(5).resolve(1_790_000_000), 5);
    }

    #[test]
    fn preview_summary() {
        let p: Preview = serde_json::from_str(PREVIEW).expect("contract sample parses");
        let out = render_preview(&p, "t4", 1_790_000_060);
        for want in [
            "Preview bp-1 on tenant t4: delete as t4-u1",
            "matched 37 users: allow 30, escalate 5, deny 2, fault 0",
            "executing applies 30 users",
            "deny      subject-is-admin  1",
            "escalate  customer-success  5",
            "deals  cascade  120 rows",
            "Sample (1 of 37):",
            "t4-u3  Ada L  active  allow",
            "Expires 2026-09-21 14:28:20 UTC (in 14m 0s).",
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
            out.contains("Expired 1970-01-01 00:00:01 UTC (1m 0s ago)"),
            "{out}"
        );
        assert!(out.contains("--tenant 't 4' '' --confirm 0"), "{out}");
    }

    #[test]
    fn later_fields_are_ignored() {
        let p: Preview = parse(
            &PREVIEW
                .replace(r#"{"preview_id""#, r#"{"new_field":[1],"preview_id""#)
                .replace(r#"{"user_id""#, r#"{"new":null,"user_id""#),
            "preview",
        )
        .expect("unknown fields are ignored, also in the sample");
        assert_eq!((p.matched, p.sample.len()), (37, 1));
        let j: Job = parse(
            &JOB.replace(r#""status":"completed""#, r#""status":"running","new":{}"#),
            "job",
        )
        .expect("unknown fields are ignored");
        assert!(!j.is_terminal());
        // A field missing is not filled in: a summary with made-up zeroes
        // (`--confirm 0`) would be worse than the error.
        let err = parse::<Preview>(r#"{"preview_id":"bp-2"}"#, "preview").unwrap_err();
        assert!(format!("{err:#}").contains("preview is not what was expected"));
    }

    #[test]
    fn job_summary_and_exit() {
        let j: Job = serde_json::from_str(JOB).expect("contract sample parses");
        assert!(j.is_terminal());
        let out = render_job(&j, "t4");
        for want in [
            "Job job-7 (preview bp-1) on tenant t4: delete as t4-u1",
            "status    completed",
            "37 done of 37 (0 pending): applied 30, escalated 5, denied 1, failed 1, cancelled 0",
            "finished  2026-09-21 14:13:33 UTC (took 12s)",
            "Not applied (1):",
            "t4-u9  escalated  customer-success  the user is linked to 2 platforms (escalation esc-3)",
            "list truncated; every item is at GET /v1/tenants/t4/jobs/job-7/items",
        ] {
            assert!(out.contains(want), "missing {want:?} in:\n{out}");
        }
        assert_eq!(job_exit(&j), ExitCode::from(EXIT_INCOMPLETE));
        let ok = Job { failed: 0, ..j };
        assert_eq!(job_exit(&ok), ExitCode::SUCCESS);
        let cancelled = Job {
            status: "cancelled".into(),
            ..ok
        };
        assert_eq!(job_exit(&cancelled), ExitCode::from(EXIT_INCOMPLETE));
    }

    fn failure(status: u16, body: &str) -> Failure {
        Failure {
            status: StatusCode::from_u16(status).expect("valid status"),
            problem: serde_json::from_str::<Problem>(body)
                .ok()
                .filter(|p| !p.code.is_empty()),
            body: body.to_owned(),
        }
    }

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
    fn shell_words_and_times() {
        assert_eq!(sh("bp-1"), "bp-1");
        assert_eq!(sh("a b"), "'a b'");
        assert_eq!(sh("it's"), r"'it'\''s'");
        assert_eq!(sh(""), "''");
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(-86_400), "1969-12-31 00:00:00 UTC");
        assert_eq!(utc(1_790_000_000), "2026-09-21 14:13:20 UTC");
        assert_eq!(span(59), "59s");
        assert_eq!(span(-840), "14m 0s");
        assert_eq!(span(90_000), "1d 1h");
    }

    #[test]
    fn urls_are_built_per_segment() {
        let api = Api {
            client: Client::new(),
            base: Url::parse("http://127.0.0.1:8080/lethe/").expect("url"),
            key: "k".into(),
            tenant: "t 4".into(),
        };
        let url = api.url(&["jobs", "job/1", "events"]).expect("url");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8080/lethe/v1/tenants/t%204/jobs/job%2F1/events"
        );
    }
}
