//! Test databases on both backends.
//!
//! Every executor test runs on SQLite (a temporary file) and PostgreSQL (a
//! uniquely named database created for the test and dropped afterwards).
//! PostgreSQL is found at `LETHE_TEST_PG` (default
//! `postgres://postgres@127.0.0.1:5432`); the tests fail rather than skip
//! when it is unreachable, so a green run means both backends were tested.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use lethe::db::{Backend, Db};

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

pub fn pg_base() -> String {
    std::env::var("LETHE_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A throwaway database; call [`TestDb::drop_db`] at the end of the test
/// (async cleanup cannot run in `Drop`).
pub struct TestDb {
    pub db: Db,
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite:{}", dir.path().join("test.db").display());
                let db = Db::connect(&url).await.unwrap();
                TestDb {
                    db,
                    url,
                    pg_name: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let name = format!(
                    "lethe_test_{}_{}_{}",
                    std::process::id(),
                    n,
                    rand::random::<u32>()
                );
                let admin = Db::connect(&format!("{}/postgres", pg_base()))
                    .await
                    .expect("PostgreSQL reachable at LETHE_TEST_PG");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(admin.pool())
                    .await
                    .unwrap();
                admin.close().await;
                let url = format!("{}/{name}", pg_base());
                let db = Db::connect(&url).await.unwrap();
                TestDb {
                    db,
                    url,
                    pg_name: Some(name),
                    _dir: None,
                }
            }
        }
    }

    pub async fn drop_db(self) {
        self.db.close().await;
        if let Some(name) = self.pg_name {
            let admin = Db::connect(&format!("{}/postgres", pg_base()))
                .await
                .unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(admin.pool())
                .await
                .unwrap();
            admin.close().await;
        }
    }
}
