//! `lethe decisions verify`: re-checks a tenant's evidence. Opens the
//! database directly (no server needed), so an auditor can run it years
//! later with the config and the database alone.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use lethe::config::Config;
use lethe::db::Db;
use lethe::deploy::Deployments;
use lethe::policy::{Runtime, RuntimeConfig};

#[derive(Debug, Subcommand)]
pub enum DecisionsCommand {
    /// Re-decide every decision record of a tenant with the exact component
    /// version that made it; exits 1 if any record does not reproduce.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[arg(long, env = "LETHE_CONFIG")]
    config: PathBuf,
    #[arg(long)]
    tenant: String,
    /// Only records at or after this unix time.
    #[arg(long)]
    since: Option<i64>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: DecisionsCommand) -> anyhow::Result<ExitCode> {
    let DecisionsCommand::Verify(args) = cmd;
    super::block_on(async move {
        let cfg = Config::load(&args.config)?;
        let db = Db::connect(&cfg.database_url)
            .await
            .context("connecting to the database")?;
        let mut runtime_config = cfg.runtime.clone();
        if runtime_config.cache_dir.is_none() {
            runtime_config.cache_dir = RuntimeConfig::default_cache_dir();
        }
        let deployments = Deployments::new(db, Runtime::new(runtime_config)?);
        let report = deployments.verify(&args.tenant, args.since).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!(
                "tenant {}: {} decision records re-decided, {} reproduced, {} did not",
                report.tenant,
                report.checked,
                report.reproduced,
                report.mismatches.len()
            );
            for m in &report.mismatches {
                println!(
                    "  NOT REPRODUCED {} (subject {}, at {}, version {}, sha256 {}): {}",
                    m.action_id,
                    m.subject,
                    m.at,
                    m.policy_version
                        .map_or_else(|| "-".to_owned(), |v| v.to_string()),
                    &m.policy_sha256[..m.policy_sha256.len().min(12)],
                    m.reason
                );
            }
            for (sha, n) in &report.unverifiable {
                println!(
                    "  {n} records made by component {} which this database does not hold: not verifiable",
                    &sha[..sha.len().min(12)]
                );
            }
        }
        Ok(if report.passed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}
