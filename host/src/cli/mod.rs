//! Subcommands of the `lethe` binary. Each lives in its own module and only
//! translates between the command line and the library (for `bulk`, the
//! HTTP API of a running server).

mod act;
mod bulk;
mod data;
mod keys;
mod policy;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Author tools: run, test and inspect a policy component locally.
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
    /// API keys for the HTTP API.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Bulk actions through a running `lethe serve`: preview what an action
    /// would do to many users, execute it as a job and follow it, check or
    /// cancel a job.
    #[command(subcommand, after_help = bulk::EXIT_CODES)]
    Bulk(bulk::BulkCommand),
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
        Command::Bulk(cmd) => bulk::run(cmd),
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

/// Logs go to stderr so stdout stays machine-readable JSON.
pub fn init_tracing(filter: Option<&str>) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter.unwrap_or("warn"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
