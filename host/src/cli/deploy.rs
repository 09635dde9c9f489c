//! `lethe policy deploy|versions|activate|rollback|status|tenants|
//! create-tenant|replay|replays`: the operator's side of `lethe policy`,
//! through a running `lethe serve`.
//!
//! Like `lethe bulk`, this opens no database: versions are uploaded to the
//! server, which runs the validation gate and keeps them, activations are
//! switched there, so every replica follows them, and replays run there,
//! on the decisions it recorded. The module only translates between the
//! command line and the operator API (`/v1/admin/...`, an operator key):
//! - [`client`]: the operator API and what its refusals mean;
//! - [`wire`]: the server's documents, read leniently;
//! - [`render`]: the text shown for them.
//!
//! The HTTP client, the server flags, problem documents, time flags and
//! tables are shared with `lethe bulk` ([`super::http`]).

mod client;
mod render;
mod wire;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use lethe::clock::unix_now;
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::json;

use super::http::{self, parse, sh, show, Failure, Http, TimeArg, SHORT_REQUEST};
use client::{connect, explain, fail, failure_error, Asked, Refused};
use render::{
    render_activation, render_created, render_replay, render_replays, render_status,
    render_tenants, render_version, render_versions,
};
use wire::{Activation, ReplayList, Status, TenantList, Version, VersionList};

/// Exit status when the server refused the request (a 4xx answer: a
/// rejected upload, a version already active, an unknown tenant…).
const EXIT_REFUSED: u8 = 1;
/// Exit status when nothing usable was answered: the server could not be
/// reached, failed (5xx) or answered something unreadable; also clap's
/// status for a usage error.
const EXIT_ERROR: u8 = 2;

pub(super) const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the server refused the request (4xx): e.g. the upload failed validation
     (policy-rejected), the version is already active, or no such tenant;
     the problem's code and detail are printed
  2  usage error, the server could not be reached, the server failed (5xx)
     or its answer could not be read";

#[derive(Debug, Subcommand)]
pub enum DeployCommand {
    /// Upload a component as the tenant's next version.
    ///
    /// The server validates it (and runs --cases) before accepting it; a
    /// rejected version is kept to show why, and can never be activated.
    /// Prints the version and its checks; a rejected upload exits 1.
    #[command(after_help = EXIT_CODES)]
    Deploy(DeployArgs),
    /// List a tenant's versions, newest first, marking the active one.
    #[command(after_help = EXIT_CODES)]
    Versions(TenantArgs),
    /// Make an accepted version the tenant's active one.
    ///
    /// Every replica of `lethe serve` follows within seconds (see `lethe
    /// policy status`).
    #[command(after_help = EXIT_CODES)]
    Activate(ActivateArgs),
    /// Activate an earlier version again: by default the one active before
    /// the current one.
    #[command(after_help = EXIT_CODES)]
    Rollback(RollbackArgs),
    /// Show a tenant's active version, latest activations and what each
    /// running replica serves.
    #[command(after_help = EXIT_CODES)]
    Status(StatusArgs),
    /// List the tenants and their active versions.
    #[command(after_help = EXIT_CODES)]
    Tenants(ListArgs),
    /// Create a tenant, to deploy a policy for.
    #[command(after_help = EXIT_CODES)]
    CreateTenant(CreateTenantArgs),
    /// Replay a tenant's recorded decisions on a version, before activating
    /// it: what would it have decided?
    ///
    /// The server re-decides the requests its decision records kept (the
    /// newest --last, within --since and --until) with the version, and
    /// compares: outcomes that change (allow → deny, a fault…), plans that
    /// change per category, rules that change, with examples. Nothing is
    /// applied; the report is kept (`lethe policy replays`). Any accepted
    /// version may be replayed, active or not.
    #[command(after_help = EXIT_CODES)]
    Replay(ReplayArgs),
    /// List a tenant's replay reports, newest first, or show one.
    #[command(after_help = EXIT_CODES)]
    Replays(ReplaysArgs),
}

/// Where the server is, and the operator's key.
#[derive(Debug, clap::Args)]
#[command(mut_args(http::key_help("An operator key (`lethe keys create --operator`)")))]
pub struct OperatorServerArgs {
    #[command(flatten)]
    http: http::ServerArgs,
}

/// Options of `lethe policy deploy`.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    #[command(flatten)]
    server: OperatorServerArgs,
    /// The tenant whose policy this is.
    #[arg(long)]
    tenant: String,
    /// The policy component (`.wasm`).
    component: PathBuf,
    /// A cases file (TOML, as for `lethe policy test`); the upload is
    /// rejected unless every case passes.
    #[arg(long)]
    cases: Option<PathBuf>,
    /// Why this version: shown in `lethe policy versions`.
    #[arg(long, short)]
    message: Option<String>,
    /// Activate the new version once it is accepted.
    #[arg(long)]
    activate: bool,
    /// With --activate: recorded with the activation.
    #[arg(long, requires = "activate")]
    reason: Option<String>,
    /// Print the server's PolicyVersion JSON instead of the summary (with
    /// --activate: `{"version": …, "activation": …}`, and `"problem"` when
    /// the activation was refused); a refused upload prints the problem
    /// document.
    #[arg(long)]
    json: bool,
}

/// Options of `lethe policy versions`.
#[derive(Debug, clap::Args)]
pub struct TenantArgs {
    #[command(flatten)]
    server: OperatorServerArgs,
    /// The tenant.
    #[arg(long)]
    tenant: String,
    /// Print the server's JSON instead of the table.
    #[arg(long)]
    json: bool,
}

/// Options of `lethe policy activate`.
#[derive(Debug, clap::Args)]
pub struct ActivateArgs {
    #[command(flatten)]
    server: OperatorServerArgs,
    /// The tenant.
    #[arg(long)]
    tenant: String,
    /// An accepted version (`lethe policy versions`).
    #[arg(long, value_name = "N")]
    version: i64,
    /// Why: recorded with the activation.
    #[arg(long)]
    reason: Option<String>,
    /// Print the server's Activation JSON instead of the summary.
    #[arg(long)]
    json: bool,
}

/// Options of `lethe policy rollback`.
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    server: OperatorServerArgs,
    /// The tenant.
    #[arg(long)]
    tenant: String,
    /// The version to return to; by default the one active before the
    /// current one.
    #[arg(long, value_name = "N")]
    version: Option<i64>,
    /// Why: recorded with the activation.
    #[arg(long)]
    reason: Option<String>,
    /// Print the server's Activation JSON instead of the summary.
    #[arg(long)]
    json: bool,
}

/// Options of `lethe policy status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    server: OperatorServerArgs,
    /// The tenant.
    #[arg(long)]
    tenant: String,
    /// How many of the latest activations to show.
    #[arg(long, value_name = "N", default_value_t = 10)]
    history: usize,
    /// Print the server's PolicyStatus JSON instead of the summary.
    #[arg(long)]
    json: bool,
}

/// Options of `lethe policy tenants`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    server: OperatorServerArgs,
    /// Print the server's JSON instead of the table.
    #[arg(long)]
    json: bool,
}

/// Options of `lethe policy create-tenant`.
#[derive(Debug, clap::Args)]
pub struct CreateTenantArgs {
    #[command(flatten)]
    server: OperatorServerArgs,
    /// The value of `tenant_id` in the platform's tables: letters, digits,
    /// `-`, `_`, `.`; at most 64.
    #[arg(long)]
    id: String,
    /// For people; defaults to the id.
    #[arg(long)]
    name: Option<String>,
    /// Print the server's Tenant JSON instead of the summary.
    #[arg(long)]
    json: bool,
}

/// Options of `lethe policy replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    server: OperatorServerArgs,
    /// The tenant whose recorded decisions are replayed.
    #[arg(long)]
    tenant: String,
    /// The version to replay them on (`lethe policy versions`).
    #[arg(long, value_name = "N")]
    version: i64,
    /// How many recorded decisions: the newest N (at most the server's
    /// limit).
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..))]
    last: u32,
    /// Only decisions recorded at or after TIME: unix seconds, or an age
    /// such as 7d or 1w 3d (s, m = minutes, h, d, w) meaning that long
    /// before now.
    #[arg(long, value_name = "TIME", value_parser = TimeArg::parse)]
    since: Option<TimeArg>,
    /// Only decisions recorded at or before TIME (unix seconds or an age
    /// such as 1d).
    #[arg(long, value_name = "TIME", value_parser = TimeArg::parse)]
    until: Option<TimeArg>,
    /// Print the server's ReplayReport JSON instead of the summary.
    #[arg(long)]
    json: bool,
}

/// Options of `lethe policy replays`.
#[derive(Debug, clap::Args)]
pub struct ReplaysArgs {
    #[command(flatten)]
    server: OperatorServerArgs,
    /// The tenant.
    #[arg(long)]
    tenant: String,
    /// Show this report in full instead of the list.
    #[arg(value_name = "REPLAY_ID")]
    id: Option<String>,
    /// Print the server's JSON instead of the summary.
    #[arg(long)]
    json: bool,
}

/// Errors are printed here, not in `main`, because these commands document
/// their own exit codes: 1 for a refusal, 2 for everything else.
pub fn run(cmd: DeployCommand) -> anyhow::Result<ExitCode> {
    let result = super::block_on(async move {
        match cmd {
            DeployCommand::Deploy(args) => deploy(args).await,
            DeployCommand::Versions(args) => versions(args).await,
            DeployCommand::Activate(args) => activate(args).await,
            DeployCommand::Rollback(args) => rollback(args).await,
            DeployCommand::Status(args) => status(args).await,
            DeployCommand::Tenants(args) => tenants(args).await,
            DeployCommand::CreateTenant(args) => create_tenant(args).await,
            DeployCommand::Replay(args) => replay(args).await,
            DeployCommand::Replays(args) => replays(args).await,
        }
    });
    Ok(http::exit_status(result, |e| {
        if e.downcast_ref::<Refused>().is_some() {
            EXIT_REFUSED
        } else {
            EXIT_ERROR
        }
    }))
}

// ---------------------------------------------------------------------------
// Commands

async fn deploy(args: DeployArgs) -> anyhow::Result<ExitCode> {
    let api = connect(&args.server)?;
    let tenant = args.tenant.as_str();
    let wasm = std::fs::read(&args.component)
        .with_context(|| format!("reading {}", args.component.display()))?;
    let file_name = args.component.file_name().map_or_else(
        || "component.wasm".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut form = Form::new().part(
        "component",
        Part::bytes(wasm)
            .file_name(file_name)
            .mime_str("application/wasm")?,
    );
    if let Some(path) = &args.cases {
        let cases =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        form = form.part("cases", Part::text(cases).mime_str("application/toml")?);
    }
    if let Some(m) = &args.message {
        form = form.text("message", m.clone());
    }
    // No overall timeout: the server compiles the component and runs the
    // cases before it answers.
    let url = api.url(&["tenants", tenant, "versions"])?;
    let text = match api.call(api.client.post(url).multipart(form)).await? {
        Ok(text) => text,
        Err(f) => return Err(rejected(&f, tenant, args.json)),
    };
    let version: Version = parse(&text, "version")?;
    if !args.activate {
        if args.json {
            println!("{}", text.trim_end());
        } else {
            print!("{}", render_version(&version, tenant, true));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !args.json {
        println!("{}", render_version(&version, tenant, false));
    }
    if version.status != "accepted" {
        // A 201 is an accepted version; a status this build does not know is
        // not activated blindly.
        if args.json {
            println!(r#"{{"version":{},"activation":null}}"#, text.trim());
        }
        return Err(anyhow::Error::new(Refused(format!(
            "version {} is `{}`, not accepted: not activated",
            version.version, version.status
        ))));
    }
    let asked = Asked::Activate {
        tenant,
        version: version.version,
    };
    let body = json!({"version": version.version, "reason": args.reason});
    let activation = match post_activation(&api, tenant, "activate", &body).await? {
        Ok(pair) => pair,
        Err(f) => {
            if args.json {
                // One document still: the version, and why it is not active.
                let problem = if f.problem.is_some() {
                    f.body.trim()
                } else {
                    "null"
                };
                println!(
                    r#"{{"version":{},"activation":null,"problem":{problem}}}"#,
                    text.trim()
                );
            }
            let msg = format!(
                "{}\n  version {} is uploaded and accepted but not active; activate it with \
                 `lethe policy activate --tenant {} --version {}`",
                explain(&f, &asked),
                version.version,
                sh(tenant),
                version.version
            );
            return Err(failure_error(&f, msg));
        }
    };
    if args.json {
        // Both documents as the server sent them, in one object.
        println!(
            r#"{{"version":{},"activation":{}}}"#,
            text.trim(),
            activation.1.trim()
        );
    } else {
        println!("{}", render_activation(&activation.0, tenant));
    }
    Ok(ExitCode::SUCCESS)
}

/// The error for a failed upload. A rejection (`policy-rejected`) carries
/// the version as stored: its report is shown like an accepted one's, so
/// each failing check and case is on a line of its own.
fn rejected(f: &Failure, tenant: &str, json: bool) -> anyhow::Error {
    let p = match &f.problem {
        Some(p) if f.status == StatusCode::UNPROCESSABLE_ENTITY && p.code == "policy-rejected" => p,
        _ => return fail(f, &Asked::Upload { tenant }, json),
    };
    f.print_if_json(json);
    let stored: Option<Version> = p
        .extensions
        .get("version")
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    let msg = match stored {
        Some(v) => {
            if !json {
                print!("{}", render_version(&v, tenant, false));
            }
            format!(
                "policy-rejected ({}): version {} of tenant {tenant} failed validation; it is \
                 kept to show why, and can never be activated",
                f.status.as_u16(),
                v.version
            )
        }
        None => {
            let failures: Vec<&str> = p
                .extensions
                .get("failures")
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|s| s.as_str()).collect())
                .unwrap_or_default();
            let mut msg = format!(
                "policy-rejected ({}): the component failed validation",
                f.status.as_u16()
            );
            if failures.is_empty() {
                if let Some(d) = &p.detail {
                    msg = format!("policy-rejected ({}): {d}", f.status.as_u16());
                }
            }
            for failure in failures {
                msg.push_str("\n  ");
                msg.push_str(failure);
            }
            msg
        }
    };
    failure_error(f, msg)
}

/// POSTs an activation or a rollback: the activation, and its JSON as the
/// server sent it.
async fn post_activation(
    api: &Http,
    tenant: &str,
    what: &str,
    body: &serde_json::Value,
) -> anyhow::Result<Result<(Activation, String), Failure>> {
    let url = api.url(&["tenants", tenant, what])?;
    let req = api.client.post(url).json(body).timeout(SHORT_REQUEST);
    match api.call(req).await? {
        Ok(text) => Ok(Ok((parse(&text, "activation")?, text))),
        Err(f) => Ok(Err(f)),
    }
}

async fn versions(args: TenantArgs) -> anyhow::Result<ExitCode> {
    let api = connect(&args.server)?;
    let tenant = args.tenant.as_str();
    let asked = Asked::Versions { tenant };
    if args.json {
        let text = match api.get(&["tenants", tenant, "versions"]).await? {
            Ok(text) => text,
            Err(f) => return Err(fail(&f, &asked, true)),
        };
        println!("{}", text.trim_end());
        return Ok(ExitCode::SUCCESS);
    }
    // The active version comes from the tenant's status.
    let (versions_path, status_path) = (
        ["tenants", tenant, "versions"],
        ["tenants", tenant, "policy"],
    );
    let (list, status) = tokio::join!(api.get(&versions_path), api.get(&status_path));
    let list: VersionList = match list? {
        Ok(text) => parse(&text, "version list")?,
        Err(f) => return Err(fail(&f, &asked, false)),
    };
    let status: Status = match status? {
        Ok(text) => parse(&text, "policy status")?,
        Err(f) => return Err(fail(&f, &Asked::Status { tenant }, false)),
    };
    let active = status.active.map(|v| v.version);
    print!("{}", render_versions(&list.versions, active, tenant));
    Ok(ExitCode::SUCCESS)
}

async fn activate(args: ActivateArgs) -> anyhow::Result<ExitCode> {
    let asked = Asked::Activate {
        tenant: &args.tenant,
        version: args.version,
    };
    let body = json!({"version": args.version, "reason": args.reason});
    switch(&args.server, "activate", &body, &asked, args.json).await
}

async fn rollback(args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let asked = Asked::Rollback {
        tenant: &args.tenant,
        version: args.version,
    };
    let body = json!({"version": args.version, "reason": args.reason});
    switch(&args.server, "rollback", &body, &asked, args.json).await
}

/// Activates or rolls back (`what`) and shows the activation, or explains
/// why there was none.
async fn switch(
    server: &OperatorServerArgs,
    what: &str,
    body: &serde_json::Value,
    asked: &Asked<'_>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let api = connect(server)?;
    let tenant = asked.tenant().unwrap_or_default();
    let (activation, text) = post_activation(&api, tenant, what, body)
        .await?
        .map_err(|f| fail(&f, asked, json))?;
    if json {
        println!("{}", text.trim_end());
    } else {
        println!("{}", render_activation(&activation, tenant));
    }
    Ok(ExitCode::SUCCESS)
}

async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let api = connect(&args.server)?;
    let tenant = args.tenant.as_str();
    reply(
        api.get(&["tenants", tenant, "policy"]).await?,
        &Asked::Status { tenant },
        args.json,
        "policy status",
        |s: &Status| render_status(s, lethe::clock::unix_millis(), args.history),
    )
}

async fn tenants(args: ListArgs) -> anyhow::Result<ExitCode> {
    let api = connect(&args.server)?;
    reply(
        api.get(&["tenants"]).await?,
        &Asked::Tenants,
        args.json,
        "tenant list",
        |l: &TenantList| render_tenants(&l.tenants),
    )
}

async fn create_tenant(args: CreateTenantArgs) -> anyhow::Result<ExitCode> {
    let api = connect(&args.server)?;
    let url = api.url(&["tenants"])?;
    let mut body = json!({"id": args.id});
    if let Some(name) = &args.name {
        body["name"] = json!(name);
    }
    let req = api.client.post(url).json(&body).timeout(SHORT_REQUEST);
    reply(
        api.call(req).await?,
        &Asked::CreateTenant { id: &args.id },
        args.json,
        "tenant",
        render_created,
    )
}

async fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let api = connect(&args.server)?;
    let tenant = args.tenant.as_str();
    let now = unix_now();
    let body = json!({
        "last": args.last,
        "since": args.since.map(|t| t.resolve(now)),
        "until": args.until.map(|t| t.resolve(now)),
    });
    let version = args.version.to_string();
    let url = api.url(&["tenants", tenant, "versions", &version, "replay"])?;
    // No overall timeout: the server re-decides every record before it
    // answers.
    let req = api.client.post(url).json(&body);
    let asked = Asked::Replay {
        tenant,
        version: args.version,
    };
    reply(
        api.call(req).await?,
        &asked,
        args.json,
        "replay report",
        render_replay,
    )
}

async fn replays(args: ReplaysArgs) -> anyhow::Result<ExitCode> {
    let api = connect(&args.server)?;
    let tenant = args.tenant.as_str();
    let asked = Asked::Replays {
        tenant,
        id: args.id.as_deref(),
    };
    match &args.id {
        Some(id) => reply(
            api.get(&["tenants", tenant, "replays", id]).await?,
            &asked,
            args.json,
            "replay report",
            render_replay,
        ),
        None => reply(
            api.get(&["tenants", tenant, "replays"]).await?,
            &asked,
            args.json,
            "replay list",
            |l: &ReplayList| render_replays(&l.replays, tenant),
        ),
    }
}

/// Shows the server's answer to what was `asked` (`what` names its
/// document in errors, `summary` renders it without `--json`), or
/// explains why there was none.
fn reply<T: serde::de::DeserializeOwned>(
    answer: Result<String, Failure>,
    asked: &Asked<'_>,
    json: bool,
    what: &str,
    summary: impl FnOnce(&T) -> String,
) -> anyhow::Result<ExitCode> {
    let text = answer.map_err(|f| fail(&f, asked, json))?;
    show(&text, json, what, summary)?;
    Ok(ExitCode::SUCCESS)
}
