//! The operator's configuration file (`lethe.toml`).
//!
//! Kept in its own module so the server can add its settings (listen
//! address, policy registry…) without touching the executor. Unknown keys
//! are accepted for the same reason: a config written for a newer host must
//! still load in tools that only need the database and the data map.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config `{path}`: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("environment variable {name}={value:?} is not a valid number")]
    Env { name: &'static str, value: String },
}

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// `sqlite:path/to/file.db` or `postgres://user@host/db`: the platform's
    /// database, where Lethe's own tables live too.
    pub database_url: String,
    /// The data map, relative to the config file's directory.
    pub datamap: PathBuf,
    /// The policy runtime: limits, pool sizing, compile cache directory.
    #[serde(default)]
    pub runtime: crate::policy::RuntimeConfig,
    /// Tenants and the policy component each one has deployed.
    #[serde(default, rename = "tenant")]
    pub tenants: Vec<TenantConfig>,
    /// Where `lethe serve` listens (`LETHE_LISTEN`).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// How often the server runs the window-expiry sweep, in seconds
    /// (`LETHE_SWEEP_INTERVAL_SECS`); 0 turns the in-server sweep off.
    #[serde(default = "default_sweep_interval")]
    pub sweep_interval_secs: u64,
    /// Largest request body the API reads, in bytes
    /// (`LETHE_BODY_LIMIT_BYTES`); larger bodies get 413.
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: usize,
    /// sha256 (hex) of support (operator) API keys accepted besides those
    /// in the `lethe_api_keys` table. Hashes only: a leaked config file
    /// gives no usable key.
    #[serde(default)]
    pub support_key_sha256: Vec<String>,
    /// sha256 (hex) of operator keys accepted besides those in the table
    /// (operators manage tenants and deploy their policies).
    #[serde(default)]
    pub operator_key_sha256: Vec<String>,
    /// Largest policy component an operator may upload, in bytes (a
    /// Python or JavaScript component is 12 to 40 MB).
    #[serde(default = "default_upload_limit")]
    pub policy_upload_limit_bytes: usize,
    /// Bulk jobs: batch size, lease, preview lifetime (`[bulk]`).
    #[serde(default)]
    pub bulk: crate::bulk::BulkSettings,
    /// Webhook delivery: timeouts, backoff, horizon (`[webhooks]`).
    #[serde(default)]
    pub webhooks: crate::events::WebhookSettings,
    /// The console's sessions: idle limit, Secure cookie (`[console]`).
    #[serde(default)]
    pub console: crate::console::ConsoleSettings,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_sweep_interval() -> u64 {
    300
}
fn default_upload_limit() -> usize {
    64 << 20
}
fn default_body_limit() -> usize {
    64 * 1024
}

/// One tenant of the platform and its deletion policy.
#[derive(Debug, Clone, Deserialize)]
pub struct TenantConfig {
    /// The value of `tenant_id` in the platform's tables.
    pub id: String,
    /// The policy component, relative to the config file's directory.
    pub policy: PathBuf,
    /// sha256 (hex) of this tenant's API keys accepted besides those in the
    /// `lethe_api_keys` table.
    #[serde(default)]
    pub api_key_sha256: Vec<String>,
}

impl Config {
    /// Load `path`, resolving relative paths inside it against the file's
    /// directory so a config works from any working directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        if config.datamap.is_relative() {
            config.datamap = base.join(&config.datamap);
        }
        for tenant in &mut config.tenants {
            if tenant.policy.is_relative() {
                tenant.policy = base.join(&tenant.policy);
            }
        }
        if let Some(dir) = &mut config.runtime.cache_dir {
            if dir.is_relative() {
                *dir = base.join(&*dir);
            }
        }
        if let Some(rest) = config.database_url.strip_prefix("sqlite:") {
            let file = rest.trim_start_matches("//");
            let (file, query) = match file.split_once('?') {
                Some((f, q)) => (f, Some(q)),
                None => (file, None),
            };
            if !file.is_empty() && file != ":memory:" && Path::new(file).is_relative() {
                let abs = base.join(file);
                config.database_url = match query {
                    Some(q) => format!("sqlite:{}?{q}", abs.display()),
                    None => format!("sqlite:{}", abs.display()),
                };
            }
        }
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    /// `LETHE_DATABASE_URL`, `LETHE_LISTEN`, `LETHE_DATAMAP`,
    /// `LETHE_SWEEP_INTERVAL_SECS` and `LETHE_BODY_LIMIT_BYTES` override the
    /// file, so one config serves every environment and secrets such as a
    /// database password need not be written into it. `var` is the
    /// environment, passed in so tests need not mutate the process's.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = var("LETHE_DATABASE_URL") {
            self.database_url = v;
        }
        if let Some(v) = var("LETHE_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = var("LETHE_DATAMAP") {
            self.datamap = PathBuf::from(v);
        }
        let number = |name: &'static str, v: String| {
            v.trim().parse::<u64>().map_err(|_| ConfigError::Env {
                name,
                value: v.clone(),
            })
        };
        if let Some(v) = var("LETHE_SWEEP_INTERVAL_SECS") {
            self.sweep_interval_secs = number("LETHE_SWEEP_INTERVAL_SECS", v)?;
        }
        if let Some(v) = var("LETHE_BODY_LIMIT_BYTES") {
            self.body_limit_bytes =
                usize::try_from(number("LETHE_BODY_LIMIT_BYTES", v)?).unwrap_or(usize::MAX);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lethe.toml");
        std::fs::write(
            &path,
            "database_url = \"sqlite:demo.db\"\ndatamap = \"datamap.toml\"\nlisten = \"0.0.0.0:8080\"\n",
        )
        .unwrap();
        let cfg = Config::load(&path).unwrap();
        assert_eq!(cfg.datamap, dir.path().join("datamap.toml"));
        assert_eq!(
            cfg.database_url,
            format!("sqlite:{}", dir.path().join("demo.db").display())
        );
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lethe.toml");
        std::fs::write(
            &path,
            "database_url = \"sqlite:demo.db\"\ndatamap = \"d.toml\"\nlisten = \"127.0.0.1:1\"\n\
             [[tenant]]\nid = \"t1\"\npolicy = \"p.wasm\"\napi_key_sha256 = [\"ab\"]\n",
        )
        .unwrap();
        let mut cfg = Config::load(&path).unwrap();
        assert_eq!(cfg.tenants[0].api_key_sha256, vec!["ab".to_string()]);
        assert_eq!(cfg.sweep_interval_secs, 300);
        let env = |name: &str| match name {
            "LETHE_LISTEN" => Some("0.0.0.0:9".to_string()),
            "LETHE_DATABASE_URL" => Some("postgres://x@h/db".to_string()),
            "LETHE_SWEEP_INTERVAL_SECS" => Some("7".to_string()),
            _ => None,
        };
        cfg.apply_env(env).unwrap();
        assert_eq!(cfg.listen, "0.0.0.0:9");
        assert_eq!(cfg.database_url, "postgres://x@h/db");
        assert_eq!(cfg.sweep_interval_secs, 7);
        let bad = |name: &str| (name == "LETHE_BODY_LIMIT_BYTES").then(|| "lots".to_string());
        assert!(cfg.apply_env(bad).is_err());
    }

    #[test]
    fn missing_database_url_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lethe.toml");
        std::fs::write(&path, "datamap = \"d.toml\"\n").unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains("database_url"), "{err}");
    }
}
