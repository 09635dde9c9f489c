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
}

/// One tenant of the platform and its deletion policy.
#[derive(Debug, Clone, Deserialize)]
pub struct TenantConfig {
    /// The value of `tenant_id` in the platform's tables.
    pub id: String,
    /// The policy component, relative to the config file's directory.
    pub policy: PathBuf,
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
        Ok(config)
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
    fn missing_database_url_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lethe.toml");
        std::fs::write(&path, "datamap = \"d.toml\"\n").unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains("database_url"), "{err}");
    }
}
