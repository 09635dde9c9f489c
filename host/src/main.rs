//! The `lethe` command line.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use lethe::config::Config;
use lethe::datamap::DataMap;
use lethe::db::Db;
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
    }
}
