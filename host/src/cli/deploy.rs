//! `lethe policy deploy|versions|activate|rollback|status|tenants|create-tenant`:
//! the operator's side of `lethe policy`, through a running `lethe serve`.
//!
//! Like `lethe bulk`, this opens no database: versions are uploaded to the
//! server, which runs the validation gate and keeps them, and activations
//! are switched there, so every replica follows them. The module only
//! translates between the command line and the operator API
//! (`/v1/admin/...`, an operator key):
//! - [`client`]: the HTTP client and what its refusals mean;
//! - [`wire`]: the server's documents, read leniently;
//! - [`render`]: the text shown for them.

mod client;
mod render;
mod wire;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use reqwest::multipart::{Form, Part};
use reqwest::{StatusCode, Url};
use serde_json::json;

use client::{explain, failure_error, parse, Api, Asked, Failure, Refused, SHORT_REQUEST};
use render::{
    render_activation, render_created, render_status, render_tenants, render_version,
    render_versions, sh,
};
use wire::{Activation, Status, Tenant, TenantList, Version, VersionList};

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
}

/// Where the server is and who asks.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Base URL of `lethe serve` (plain HTTP).
    #[arg(long, env = "LETHE_SERVER", default_value = "http://127.0.0.1:8080")]
    server: Url,
    /// An operator key (`lethe keys create --operator`).
    #[arg(long, env = "LETHE_KEY", hide_env_values = true)]
    key: String,
}

/// Options of `lethe policy deploy`.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    #[command(flatten)]
    server: ServerArgs,
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
    server: ServerArgs,
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
    server: ServerArgs,
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
    server: ServerArgs,
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
    server: ServerArgs,
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
    server: ServerArgs,
    /// Print the server's JSON instead of the table.
    #[arg(long)]
    json: bool,
}

/// Options of `lethe policy create-tenant`.
#[derive(Debug, clap::Args)]
pub struct CreateTenantArgs {
    #[command(flatten)]
    server: ServerArgs,
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
        }
    });
    match result {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            let code = if e.downcast_ref::<Refused>().is_some() {
                EXIT_REFUSED
            } else {
                EXIT_ERROR
            };
            Ok(ExitCode::from(code))
        }
    }
}

// ---------------------------------------------------------------------------
// Commands

async fn deploy(args: DeployArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.server)?;
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
        Err(f) => return Err(rejected(&api, &f, tenant, args.json)),
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
fn rejected(api: &Api, f: &Failure, tenant: &str, json: bool) -> anyhow::Error {
    let p = match &f.problem {
        Some(p) if f.status == StatusCode::UNPROCESSABLE_ENTITY && p.code == "policy-rejected" => p,
        _ => return api.fail(f, &Asked::Upload { tenant }, json),
    };
    if json {
        println!("{}", f.body.trim_end());
    }
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
    api: &Api,
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
    let api = Api::new(&args.server)?;
    let tenant = args.tenant.as_str();
    let asked = Asked::Versions { tenant };
    if args.json {
        let text = match api.get(&["tenants", tenant, "versions"]).await? {
            Ok(text) => text,
            Err(f) => return Err(api.fail(&f, &asked, true)),
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
        Err(f) => return Err(api.fail(&f, &asked, false)),
    };
    let status: Status = match status? {
        Ok(text) => parse(&text, "policy status")?,
        Err(f) => return Err(api.fail(&f, &Asked::Status { tenant }, false)),
    };
    let active = status.active.map(|v| v.version);
    print!("{}", render_versions(&list.versions, active, tenant));
    Ok(ExitCode::SUCCESS)
}

async fn activate(args: ActivateArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.server)?;
    let tenant = args.tenant.as_str();
    let body = json!({"version": args.version, "reason": args.reason});
    let asked = Asked::Activate {
        tenant,
        version: args.version,
    };
    switched(
        post_activation(&api, tenant, "activate", &body).await?,
        &api,
        &asked,
        tenant,
        args.json,
    )
}

async fn rollback(args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.server)?;
    let tenant = args.tenant.as_str();
    let body = json!({"version": args.version, "reason": args.reason});
    let asked = Asked::Rollback {
        tenant,
        version: args.version,
    };
    switched(
        post_activation(&api, tenant, "rollback", &body).await?,
        &api,
        &asked,
        tenant,
        args.json,
    )
}

/// Shows an activation or rollback, or explains why there was none.
fn switched(
    answer: Result<(Activation, String), Failure>,
    api: &Api,
    asked: &Asked<'_>,
    tenant: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (activation, text) = answer.map_err(|f| api.fail(&f, asked, json))?;
    if json {
        println!("{}", text.trim_end());
    } else {
        println!("{}", render_activation(&activation, tenant));
    }
    Ok(ExitCode::SUCCESS)
}

async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.server)?;
    let tenant = args.tenant.as_str();
    let text = match api.get(&["tenants", tenant, "policy"]).await? {
        Ok(text) => text,
        Err(f) => return Err(api.fail(&f, &Asked::Status { tenant }, args.json)),
    };
    if args.json {
        println!("{}", text.trim_end());
    } else {
        let status: Status = parse(&text, "policy status")?;
        print!("{}", render_status(&status, now_ms(), args.history));
    }
    Ok(ExitCode::SUCCESS)
}

async fn tenants(args: ListArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.server)?;
    let text = match api.get(&["tenants"]).await? {
        Ok(text) => text,
        Err(f) => return Err(api.fail(&f, &Asked::Tenants, args.json)),
    };
    if args.json {
        println!("{}", text.trim_end());
    } else {
        let list: TenantList = parse(&text, "tenant list")?;
        print!("{}", render_tenants(&list.tenants));
    }
    Ok(ExitCode::SUCCESS)
}

async fn create_tenant(args: CreateTenantArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.server)?;
    let url = api.url(&["tenants"])?;
    let mut body = json!({"id": args.id});
    if let Some(name) = &args.name {
        body["name"] = json!(name);
    }
    let req = api.client.post(url).json(&body).timeout(SHORT_REQUEST);
    let text = match api.call(req).await? {
        Ok(text) => text,
        Err(f) => {
            let asked = Asked::CreateTenant { id: &args.id };
            return Err(api.fail(&f, &asked, args.json));
        }
    };
    if args.json {
        println!("{}", text.trim_end());
    } else {
        let tenant: Tenant = parse(&text, "tenant")?;
        println!("{}", render_created(&tenant));
    }
    Ok(ExitCode::SUCCESS)
}

/// Unix milliseconds, as the replicas' heartbeats are kept.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
