//! `lethe serve`: the HTTP API, until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use lethe::api::{self, AppState, ServeOptions};
use lethe::apikeys::StaticKeys;
use lethe::config::Config;

/// Options of `lethe serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[arg(long, env = "LETHE_CONFIG")]
    config: PathBuf,
    /// Overrides `listen` in the config (and `LETHE_LISTEN`).
    #[arg(long)]
    listen: Option<String>,
}

pub fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    super::block_on(async move {
        let mut cfg = Config::load(&args.config)?;
        if let Some(listen) = args.listen {
            cfg.listen = listen;
        }
        // Lethe's own tables (keys, escalations…) are created or updated at
        // start, so a new host version never runs on an old schema.
        let host = super::open_host(&cfg, super::LetheTables::Migrate).await?;
        let tenants = cfg.tenants.iter().map(|t| t.id.clone()).collect();
        let state = AppState::new(
            host.executor,
            host.policies,
            host.deployments,
            StaticKeys::new(&cfg),
            tenants,
            lethe::api::Settings {
                bulk: cfg.bulk.clone(),
                webhooks: cfg.webhooks.clone(),
                console: cfg.console.clone(),
            },
        );
        let listener = tokio::net::TcpListener::bind(&cfg.listen)
            .await
            .with_context(|| format!("binding {}", cfg.listen))?;
        tracing::info!(addr = %listener.local_addr()?, "lethe serving");
        eprintln!("lethe: listening on http://{}", listener.local_addr()?);
        let options = ServeOptions {
            body_limit_bytes: cfg.body_limit_bytes,
            sweep_interval: (cfg.sweep_interval_secs > 0)
                .then(|| Duration::from_secs(cfg.sweep_interval_secs)),
            bulk_worker: true,
            upload_limit_bytes: cfg.policy_upload_limit_bytes,
        };
        api::serve(listener, state, options, shutdown_signal()).await?;
        tracing::info!("lethe stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (what service managers send).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
