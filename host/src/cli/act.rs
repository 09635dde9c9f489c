//! `lethe act` and `lethe sweep`: apply one action, or the window-expiry
//! sweep, through the tenant's policy and the executor, without a server.

use lethe::clock::unix_now;
use std::path::PathBuf;
use std::process::ExitCode;

use lethe::config::Config;
use lethe::contract::Action;
use lethe::executor::{ActionInput, ActorRef, Executor};
use lethe::tenancy::TenantPolicies;

/// Options of `lethe act`.
#[derive(Debug, clap::Args)]
pub struct ActArgs {
    #[arg(long)]
    config: PathBuf,
    #[arg(long)]
    tenant: String,
    /// The subject: the user the action is about.
    #[arg(long)]
    user: String,
    /// lock, unlock, deactivate, reactivate, delete, restore or erase.
    #[arg(long, value_parser = parse_action)]
    action: Action,
    /// Who asks: a user id of the tenant, `support:<agent>` or `system`.
    #[arg(long)]
    actor: String,
    #[arg(long)]
    transfer_to: Option<String>,
    #[arg(long)]
    reason: Option<String>,
    /// A retried action with the same key applies once.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Decide and compute the effects, write nothing.
    #[arg(long)]
    dry_run: bool,
    /// The time the action happens at, unix seconds (default: now).
    #[arg(long)]
    now: Option<i64>,
}

/// Options of `lethe sweep`.
#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    #[arg(long)]
    config: PathBuf,
    /// The time the sweep runs at, unix seconds (default: now).
    #[arg(long)]
    now: Option<i64>,
}

fn parse_action(s: &str) -> Result<Action, String> {
    s.parse()
        .map_err(|e: lethe::contract::UnknownName| e.to_string())
}

fn actor(s: &str) -> ActorRef {
    match s.split_once(':') {
        Some(("support", agent)) => ActorRef::Support(agent.to_owned()),
        _ if s == "system" => ActorRef::System,
        _ => ActorRef::TenantUser(s.to_owned()),
    }
}

/// The host the config describes, Lethe's tables used as they are.
async fn open(config: &std::path::Path) -> anyhow::Result<(Executor, TenantPolicies)> {
    let host = super::open_host(&Config::load(config)?, super::LetheTables::AsTheyAre).await?;
    Ok((host.executor, host.policies))
}

pub fn act(args: ActArgs) -> anyhow::Result<ExitCode> {
    super::block_on(async move {
        let (executor, policies) = open(&args.config).await?;
        let input = ActionInput {
            tenant: args.tenant,
            subject: args.user,
            action: args.action,
            actor: actor(&args.actor),
            transfer_to: args.transfer_to,
            reason: args.reason,
            bulk: false,
            now: args.now.unwrap_or_else(unix_now),
            idempotency_key: args.idempotency_key,
            dry_run: args.dry_run,
        };
        let report = executor.act(&policies, &input).await?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        Ok(ExitCode::SUCCESS)
    })
}

pub fn sweep(args: SweepArgs) -> anyhow::Result<ExitCode> {
    super::block_on(async move {
        let (executor, policies) = open(&args.config).await?;
        let items = executor
            .sweep(&policies, args.now.unwrap_or_else(unix_now))
            .await?;
        println!("{}", serde_json::to_string_pretty(&items)?);
        Ok(ExitCode::SUCCESS)
    })
}
