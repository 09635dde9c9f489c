//! `lethe seed` and `lethe datamap check`: commands on the platform database
//! that need no policy runtime.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use lethe::config::Config;
use lethe::datamap::DataMap;
use lethe::db::Db;
use lethe::seed::{seed, SeedOptions};

#[derive(Debug, Subcommand)]
pub enum DatamapCommand {
    /// Validate the data map against the live schema (tables, columns,
    /// coverage of every foreign key to users).
    Check {
        #[arg(long)]
        config: PathBuf,
    },
}

/// Options of `lethe seed`.
#[derive(Debug, clap::Args)]
pub struct SeedArgs {
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
}

pub fn seed_cmd(args: SeedArgs) -> anyhow::Result<ExitCode> {
    super::block_on(async move {
        let db = Db::connect(&args.database).await.context("connecting")?;
        let report = seed(
            &db,
            &SeedOptions {
                tenants: args.tenants,
                users: args.users,
                items: args.items,
                seed: args.seed,
            },
        )
        .await
        .context("seeding")?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        Ok(ExitCode::SUCCESS)
    })
}

pub fn datamap_cmd(cmd: DatamapCommand) -> anyhow::Result<ExitCode> {
    let DatamapCommand::Check { config } = cmd;
    super::block_on(async move {
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
        Ok(ExitCode::SUCCESS)
    })
}
