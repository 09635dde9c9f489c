//! `lethe policy run|test|inspect`: what a policy author needs to check a
//! component before an operator deploys it. The operator's commands
//! (`deploy`, `versions`, `activate`, `rollback`, `status`, `replay`, …)
//! are in [`super::deploy`].

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use lethe::cases::CasesFile;
use lethe::contract::Outcome;
use lethe::policy::{Limits, Policy, Runtime, RuntimeConfig};

use super::deploy;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Ask a component for one decision and print it as JSON.
    Run {
        component: PathBuf,
        /// The request, in the contract's JSON form (`-` for stdin).
        #[arg(long)]
        input: PathBuf,
        #[command(flatten)]
        opts: RuntimeOpts,
    },
    /// Run a cases file against a component; exits 1 if any case fails.
    Test {
        component: PathBuf,
        cases: PathBuf,
        #[command(flatten)]
        opts: RuntimeOpts,
    },
    /// Print what a component says of itself, its contract version, imports
    /// and exports.
    Inspect {
        component: PathBuf,
        #[command(flatten)]
        opts: RuntimeOpts,
    },
    /// Operator commands (deploy, versions, activate, rollback, status,
    /// tenants, create-tenant, replay, replays): through a running `lethe
    /// serve`.
    #[command(flatten)]
    Operate(deploy::DeployCommand),
}

#[derive(Debug, Args)]
pub struct RuntimeOpts {
    /// Fuel budget per decision.
    #[arg(long)]
    fuel: Option<u64>,
    /// Wall-clock deadline per decision, in milliseconds.
    #[arg(long)]
    deadline_ms: Option<u64>,
    /// Memory cap per linear memory, in MiB.
    #[arg(long)]
    memory_mib: Option<usize>,
    /// Directory for compiled components (default: $LETHE_CACHE_DIR,
    /// $XDG_CACHE_HOME/lethe or ~/.cache/lethe).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Compile every time instead of using the cache.
    #[arg(long)]
    no_cache: bool,
}

impl RuntimeOpts {
    fn load(&self, component: &Path) -> anyhow::Result<Policy> {
        let defaults = Limits::default();
        let limits = Limits {
            fuel: self.fuel.unwrap_or(defaults.fuel),
            deadline_ms: self.deadline_ms.unwrap_or(defaults.deadline_ms),
            memory_bytes: self.memory_mib.map_or(defaults.memory_bytes, |m| m << 20),
            output_bytes: defaults.output_bytes,
        };
        let cache_dir = if self.no_cache {
            None
        } else {
            self.cache_dir
                .clone()
                .or_else(RuntimeConfig::default_cache_dir)
        };
        let runtime = Runtime::new(RuntimeConfig {
            limits,
            cache_dir,
            pool: lethe::policy::PoolConfig {
                instances: 8,
                ..Default::default()
            },
        })?;
        runtime
            .load_file(component)
            .with_context(|| format!("loading {}", component.display()))
    }
}

pub fn run(cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PolicyCommand::Run {
            component,
            input,
            opts,
        } => {
            let text = if input.as_os_str() == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                s
            } else {
                std::fs::read_to_string(&input)
                    .with_context(|| format!("reading {}", input.display()))?
            };
            let request = lethe::policy::parse_request(&text).context("invalid request JSON")?;
            let policy = opts.load(&component)?;
            match policy.decide(&request) {
                Ok(decision) => {
                    println!("{}", serde_json::to_string_pretty(&decision)?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(fault) => {
                    let body = serde_json::json!({
                        "outcome": "fault",
                        "code": fault.code(),
                        "message": fault.to_string(),
                    });
                    println!("{}", serde_json::to_string_pretty(&body)?);
                    Ok(ExitCode::from(3))
                }
            }
        }
        PolicyCommand::Test {
            component,
            cases,
            opts,
        } => {
            let file = CasesFile::load(&cases)?;
            let policy = opts.load(&component)?;
            let reports = file.run(&policy)?;
            let mut failed = 0;
            for report in &reports {
                let summary = match &report.result {
                    Ok(d) => {
                        let detail = match &d.outcome {
                            Outcome::Allow { .. } => String::new(),
                            Outcome::Escalate { queue, .. } => format!(" → {queue}"),
                            Outcome::Deny { code, .. } => format!(" ({code})"),
                        };
                        format!(
                            "{}{detail}, fuel {}, {} µs",
                            d.outcome.kind(),
                            d.fuel_used,
                            d.elapsed_us
                        )
                    }
                    Err(fault) => format!("fault: {}", fault.code()),
                };
                if report.passed() {
                    println!("ok    {} [{summary}]", report.name);
                } else {
                    failed += 1;
                    println!("FAIL  {} [{summary}]", report.name);
                    for f in &report.failures {
                        println!("        {f}");
                    }
                }
            }
            println!(
                "{}: {} cases, {} passed, {failed} failed",
                policy.info().name,
                reports.len(),
                reports.len() - failed
            );
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        PolicyCommand::Inspect { component, opts } => {
            let size = std::fs::metadata(&component).map(|m| m.len()).unwrap_or(0);
            let policy = opts.load(&component)?;
            let body = serde_json::json!({
                "sha256": policy.sha256(),
                "size_bytes": size,
                "contract": policy.contract_version().as_str(),
                "describe": policy.info(),
                "imports": policy.imports(),
                "exports": policy.exports(),
            });
            println!("{}", serde_json::to_string_pretty(&body)?);
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Operate(cmd) => deploy::run(cmd),
    }
}
