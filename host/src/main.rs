//! The `lethe` command line.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use lethe::config::Config;
use lethe::contract::{Action, Request};
use lethe::datamap::DataMap;
use lethe::db::Db;
use lethe::executor::{ActionInput, ActorRef, Decider, Executor, PolicyFault, Verdict};
use lethe::seed::{seed, SeedOptions};

#[derive(Parser)]
#[command(
    name = "lethe",
    version,
    about = "Programmable, per-tenant user deletion"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Data(DataCommand),
}

/// Commands working on the platform database without a policy runtime
/// (issue 3: data map, seed).
#[derive(Subcommand)]
enum DataCommand {
    /// Fill a database with deterministic demo data (creates the schema).
    Seed {
        #[arg(long)]
        database: String,
        #[arg(long, default_value_t = 2)]
        tenants: u32,
        #[arg(long, default_value_t = 12)]
        users: u32,
        #[arg(long, default_value_t = 8)]
        items: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Data map commands.
    Datamap {
        #[command(subcommand)]
        command: DatamapCommand,
    },
    /// Decide and apply one lifecycle action; prints the decision and the
    /// effects per category as JSON.
    Act {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        user: String,
        /// lock, unlock, deactivate, reactivate, delete, restore, erase
        #[arg(long)]
        action: Action,
        /// A user id of the tenant, `support:<agent>` or `system`.
        #[arg(long)]
        actor: String,
        #[arg(long)]
        transfer_to: Option<String>,
        #[arg(long)]
        reason: Option<String>,
        /// A retried action with the same key applies once.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Run the action and report its effects, then roll back.
        #[arg(long)]
        dry_run: bool,
        /// Unix seconds to act at (default: now).
        #[arg(long)]
        now: Option<i64>,
    },
    /// Erase, through the policy and as the system actor, every deleted user
    /// whose restore window has passed.
    Sweep {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        now: Option<i64>,
    },
}

/// The policy runtime wiring point. `act` and `sweep` ask a [`Decider`];
/// the WebAssembly runtime (`lethe::policy`, being built separately)
/// implements it. Until it is connected here, every decision is a policy
/// fault, which applies nothing.
fn policy_decider(_config: &Config) -> anyhow::Result<impl Decider> {
    Ok(NoPolicyRuntime)
}

struct NoPolicyRuntime;

impl Decider for NoPolicyRuntime {
    async fn decide(&self, _tenant: &str, _request: &Request) -> Result<Verdict, PolicyFault> {
        Err(PolicyFault {
            kind: "unavailable".into(),
            message: "no policy runtime is wired into this build".into(),
        })
    }
}

fn parse_actor(actor: &str) -> ActorRef {
    if actor == "system" {
        ActorRef::System
    } else if let Some(agent) = actor.strip_prefix("support:") {
        ActorRef::Support(agent.to_owned())
    } else {
        ActorRef::TenantUser(actor.to_owned())
    }
}

fn unix_now() -> anyhow::Result<i64> {
    Ok(i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    )?)
}

async fn executor(config: &std::path::Path) -> anyhow::Result<(Config, Executor)> {
    let cfg = Config::load(config)?;
    let map = DataMap::load(&cfg.datamap)?;
    let db = Db::connect(&cfg.database_url).await.context("connecting")?;
    db.migrate().await.context("migrating Lethe's tables")?;
    let ex = Executor::new(db, map).await?;
    Ok((cfg, ex))
}

#[derive(Subcommand)]
enum DatamapCommand {
    /// Validate the data map against the live schema (tables, columns,
    /// coverage of every foreign key to users).
    Check {
        #[arg(long)]
        config: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Data(cmd) => run_data(cmd).await,
    }
}

async fn run_data(cmd: DataCommand) -> anyhow::Result<()> {
    match cmd {
        DataCommand::Seed {
            database,
            tenants,
            users,
            items,
            seed: s,
        } => {
            let db = Db::connect(&database).await.context("connecting")?;
            let report = seed(
                &db,
                &SeedOptions {
                    tenants,
                    users,
                    items,
                    seed: s,
                },
            )
            .await
            .context("seeding")?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        DataCommand::Datamap {
            command: DatamapCommand::Check { config },
        } => {
            let cfg = Config::load(&config)?;
            let map = DataMap::load(&cfg.datamap)?;
            let db = Db::connect(&cfg.database_url).await.context("connecting")?;
            let schema = db.introspect().await?;
            map.validate(&schema)?;
            println!(
                "data map {} is valid: {:?}",
                cfg.datamap.display(),
                lethe::datamap::summary(&map)
            );
            Ok(())
        }
        DataCommand::Act {
            config,
            tenant,
            user,
            action,
            actor,
            transfer_to,
            reason,
            idempotency_key,
            dry_run,
            now,
        } => {
            let (cfg, ex) = executor(&config).await?;
            let decider = policy_decider(&cfg)?;
            let input = ActionInput {
                tenant,
                subject: user,
                action,
                actor: parse_actor(&actor),
                transfer_to,
                reason,
                bulk: false,
                now: match now {
                    Some(n) => n,
                    None => unix_now()?,
                },
                idempotency_key,
                dry_run,
            };
            let report = ex.act(&decider, &input).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        DataCommand::Sweep { config, now } => {
            let (cfg, ex) = executor(&config).await?;
            let decider = policy_decider(&cfg)?;
            let now = match now {
                Some(n) => n,
                None => unix_now()?,
            };
            let items = ex.sweep(&decider, now).await?;
            println!("{}", serde_json::to_string_pretty(&items)?);
            Ok(())
        }
    }
}
