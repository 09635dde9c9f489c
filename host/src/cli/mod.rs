//! Subcommands of the `lethe` binary. Each lives in its own module and only
//! translates between the command line and the library (for `bulk`, the
//! HTTP API of a running server).

mod act;
mod bulk;
mod data;
mod decisions;
mod deploy;
mod http;
mod keys;
mod policy;
mod serve;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lethe::config::Config;
use lethe::datamap::DataMap;
use lethe::db::Db;
use lethe::deploy::Deployments;
use lethe::executor::Executor;
use lethe::policy::{Runtime, RuntimeConfig};
use lethe::tenancy::TenantPolicies;

/// What a command does with Lethe's own `lethe_*` tables when it opens the
/// database.
enum LetheTables {
    /// Create or update them first (`lethe serve`).
    Migrate,
    /// Use them as they are (one-off commands).
    AsTheyAre,
}

/// The host `cfg` describes: the database connected, the data map validated
/// against it (the executor refuses a map that does not match), `lethe.toml`'s
/// tenants imported into the deployment tables when new, and every tenant's
/// active version ready to load on first use.
async fn open_host(cfg: &Config, tables: LetheTables) -> anyhow::Result<Host> {
    let map = DataMap::load(&cfg.datamap)?;
    let db = Db::connect(&cfg.database_url)
        .await
        .context("connecting to the database")?;
    if let LetheTables::Migrate = tables {
        db.migrate().await.context("migrating lethe_* tables")?;
    }
    let executor = Executor::new(db.clone(), map).await?;
    let mut runtime_config = cfg.runtime.clone();
    if runtime_config.cache_dir.is_none() {
        runtime_config.cache_dir = RuntimeConfig::default_cache_dir();
    }
    let runtime = Runtime::new(runtime_config)?;
    let deployments = Deployments::new(db.clone(), runtime.clone());
    deployments
        .bootstrap(&cfg.tenants, lethe::clock::unix_now())
        .await
        .context("importing lethe.toml's tenants")?;
    let policies = TenantPolicies::from_database(db, runtime, replica_id()).await?;
    Ok(Host {
        executor,
        policies,
        deployments,
    })
}

/// What [`open_host`] opens.
struct Host {
    executor: Executor,
    policies: TenantPolicies,
    deployments: Deployments,
}

/// This process, as operators see it in a tenant's policy status:
/// `hostname:pid:random`, unique across restarts.
fn replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!(
        "{host}:{}:{}",
        std::process::id(),
        hex::encode(rand::random::<[u8; 3]>())
    )
}

#[derive(Debug, Parser)]
#[command(
    name = "lethe",
    version,
    about = "Programmable, per-tenant user deletion"
)]
pub struct Cli {
    /// Log filter (tracing env-filter syntax), e.g. `info` or `lethe=debug`.
    #[arg(long, global = true, env = "LETHE_LOG")]
    pub log: Option<String>,
    /// `text` for people, `json` (one object per line, with the span fields:
    /// request id, tenant, action id…) for log pipelines.
    #[arg(long, global = true, env = "LETHE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Policy tools: run, test and inspect a component locally (authors);
    /// deploy, activate and roll back tenants' versions through a running
    /// `lethe serve` (operators).
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Fill a database with deterministic demo data (creates the schema).
    Seed(data::SeedArgs),
    /// Data map commands.
    #[command(subcommand)]
    Datamap(data::DatamapCommand),
    /// Apply one lifecycle action through the tenant's policy; prints the
    /// decision and the effects per category as JSON.
    Act(act::ActArgs),
    /// Erase every deleted user whose restore window has passed, as the
    /// system actor and through each tenant's policy.
    Sweep(act::SweepArgs),
    /// Serve the tenant and support HTTP API (runs the sweep periodically).
    Serve(serve::ServeArgs),
    /// Evidence checks: `verify` re-decides a tenant's decision records
    /// with the exact components that made them.
    #[command(subcommand)]
    Decisions(decisions::DecisionsCommand),
    /// API keys for the HTTP API.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Bulk actions through a running `lethe serve`: preview what an action
    /// would do to many users, execute it as a job and follow it, check or
    /// cancel a job.
    #[command(subcommand, after_help = bulk::EXIT_CODES)]
    Bulk(bulk::BulkCommand),
    /// Print the HTTP API's OpenAPI document, exactly as `/openapi.json`
    /// serves it (`host/openapi.json` is the reviewed copy).
    Openapi,
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Policy(cmd) => policy::run(cmd),
        Command::Seed(args) => data::seed_cmd(args),
        Command::Datamap(cmd) => data::datamap_cmd(cmd),
        Command::Act(args) => act::act(args),
        Command::Sweep(args) => act::sweep(args),
        Command::Serve(args) => serve::serve(args),
        Command::Keys(cmd) => keys::run(cmd),
        Command::Decisions(cmd) => decisions::run(cmd),
        Command::Bulk(cmd) => bulk::run(cmd),
        Command::Openapi => {
            let doc = serde_json::to_string_pretty(&lethe::api::openapi::document()?)?;
            println!("{doc}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs an async command on a tokio runtime made for it; commands that only
/// touch WebAssembly stay synchronous.
fn block_on<F: std::future::Future<Output = anyhow::Result<ExitCode>>>(
    fut: F,
) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(fut)
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Logs go to stderr so stdout stays machine-readable JSON.
pub fn init_tracing(filter: Option<&str>, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter.unwrap_or("warn"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}
