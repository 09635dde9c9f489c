//! `lethe keys create`: a new API key for a tenant, for support or for an
//! operator. The secret is printed once; only its sha256 is stored.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use lethe::apikeys::{self, Principal};
use lethe::config::Config;
use lethe::db::Db;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints `{"id", "tenant"|"support"|"operator", "secret"}`
    /// as JSON.
    Create(CreateArgs),
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["tenant", "support", "operator"])))]
pub struct CreateArgs {
    #[arg(long, env = "LETHE_CONFIG")]
    config: PathBuf,
    /// The tenant the key acts for.
    #[arg(long)]
    tenant: Option<String>,
    /// A support key: works every tenant's escalation queue.
    #[arg(long)]
    support: bool,
    /// An operator key: manages tenants and deploys their policies
    /// (`/v1/admin/...`, `lethe policy deploy`).
    #[arg(long)]
    operator: bool,
    /// A note stored with the key, e.g. who holds it.
    #[arg(long)]
    label: Option<String>,
}

pub fn run(cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    let KeysCommand::Create(args) = cmd;
    super::block_on(async move {
        let cfg = Config::load(&args.config)?;
        let db = Db::connect(&cfg.database_url)
            .await
            .context("connecting to the database")?;
        db.migrate().await.context("migrating lethe_* tables")?;
        let principal = match args.tenant {
            Some(t) => {
                let known = cfg.tenants.iter().any(|c| c.id == t)
                    || lethe::deploy::store::tenant_exists(&db, &t).await?;
                anyhow::ensure!(
                    known,
                    "tenant `{t}` is neither in {} nor created by an operator",
                    args.config.display()
                );
                Principal::Tenant(t)
            }
            None if args.operator => Principal::Operator(String::new()),
            None => Principal::Support,
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let key = apikeys::create(&db, principal, args.label.as_deref(), now).await?;
        let who = match &key.principal {
            Principal::Tenant(t) => serde_json::json!({"tenant": t}),
            Principal::Support => serde_json::json!({"support": true}),
            Principal::Operator(_) => serde_json::json!({"operator": true}),
        };
        let mut out = serde_json::json!({"id": key.id, "secret": key.secret});
        if let (Some(o), Some(w)) = (out.as_object_mut(), who.as_object()) {
            o.extend(w.clone());
        }
        println!("{out}");
        eprintln!("store the secret now: it is not kept and cannot be shown again");
        Ok(ExitCode::SUCCESS)
    })
}
