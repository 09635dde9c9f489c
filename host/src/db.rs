//! Database backends: SQLite (embedded default) and PostgreSQL.
//!
//! Lethe works on the platform's own database through `sqlx::Any`, so one
//! code path serves both backends. The few places where the dialects differ
//! (JSON construction, replaying JSON into rows, row locks, how a write
//! transaction starts) are methods on [`Backend`], so a reader finds every
//! backend difference here.
//!
//! Lethe's own tables (`lethe_*`) are created by the portable migrations in
//! `host/migrations`, in the same database as the platform data, so an
//! action's changes and its evidence commit atomically.

use std::collections::BTreeMap;
use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::ConnectOptions;
use sqlx::{Any, AnyPool, Row, Transaction};

/// Lethe's migrations; they run on both backends.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The sample platform's schema (`examples/platform/schema.sql`), applied by
/// `lethe seed` when the tables are missing.
pub const PLATFORM_SCHEMA: &str = include_str!("../../examples/platform/schema.sql");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL `{0}` (expected sqlite:… or postgres://…)")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl DbError {
    /// A unique or primary-key constraint refused the write (a concurrent
    /// writer took the key first).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            DbError::Sql(sqlx::Error::Database(e)) => e.is_unique_violation(),
            _ => false,
        }
    }
}

/// Which SQL dialect a database speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Backend, DbError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(DbError::UnsupportedUrl(url.to_owned()))
        }
    }

    /// The statement that opens a write transaction. On SQLite `IMMEDIATE`
    /// takes the write lock up front, so two actions on one database never
    /// interleave and never fail late with `SQLITE_BUSY` on upgrade.
    fn begin_statement(self) -> &'static str {
        match self {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }

    /// A statement that keeps the rest of a transaction's statements
    /// serial, if the backend would otherwise run them in parallel. A bulk
    /// batch's statements read a few hundred rows each; on PostgreSQL the
    /// planner still chose parallel plans for the holdings read at 10,000
    /// users (auto_explain: `Parallel Append`), whose workers cost more to
    /// start than the whole query on a busy machine.
    pub fn serial_transaction(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some("SET LOCAL max_parallel_workers_per_gather = 0"),
        }
    }

    /// A statement refreshing the planner's statistics of `table`, on a
    /// backend whose plans depend on them. PostgreSQL plans a query on a
    /// table it has not analyzed since a large insert from a guess (a
    /// dozen rows per value): a fresh bulk job's 10,000 items looked like a
    /// dozen, and each batch's item update scanned every item of the job
    /// through an index prefix instead of looking its 100 items up by key
    /// (EXPLAIN ANALYZE). SQLite's planner needs no statistics for that.
    pub fn analyze(self, table: &str) -> Option<String> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some(format!("ANALYZE {}", quote_ident(table))),
        }
    }

    /// Suffix that locks the selected rows until commit. SQLite needs none:
    /// the immediate transaction already holds the database write lock.
    pub fn row_lock(self, lock: RowLock) -> &'static str {
        match (self, lock) {
            (Backend::Sqlite, _) | (_, RowLock::None) => "",
            (Backend::Postgres, RowLock::Share) => " FOR SHARE",
            (Backend::Postgres, RowLock::Update) => " FOR UPDATE",
        }
    }

    /// Like [`Backend::row_lock`], locking only the rows of the table
    /// aliased `alias` (PostgreSQL refuses to lock the nullable side of an
    /// outer join, and there is no reason to lock it).
    pub fn row_lock_of(self, lock: RowLock, alias: &str) -> String {
        match self.row_lock(lock) {
            "" => String::new(),
            clause => format!("{clause} OF {alias}"),
        }
    }

    /// A SQL expression building a JSON object (as text) from `columns` of
    /// the row aliased `alias`.
    pub fn json_object(self, alias: &str, columns: &[&str]) -> String {
        let fun = match self {
            Backend::Sqlite => "json_object",
            Backend::Postgres => "json_build_object",
        };
        let args: Vec<String> = columns
            .iter()
            .map(|c| format!("'{c}', {alias}.{}", quote_ident(c)))
            .collect();
        match self {
            Backend::Sqlite => format!("{fun}({})", args.join(", ")),
            Backend::Postgres => format!("{fun}({})::text", args.join(", ")),
        }
    }

    /// The FROM clause that reads restore-log rows (alias `r`) for
    /// replaying into `table`; pair it with [`Backend::logged_field`].
    /// PostgreSQL decodes each logged row once, typed like `table`, so
    /// integers, booleans and nulls round-trip exactly.
    pub fn replay_from(self, table: &str) -> String {
        match self {
            Backend::Sqlite => "lethe_restore_log r".to_owned(),
            Backend::Postgres => format!(
                "lethe_restore_log r CROSS JOIN LATERAL jsonb_populate_record(NULL::{}, r.data::jsonb) p",
                quote_ident(table)
            ),
        }
    }

    /// The value of `column` in the logged row of [`Backend::replay_from`].
    pub fn logged_field(self, column: &str) -> String {
        match self {
            Backend::Sqlite => format!("json_extract(r.data, '$.\"{column}\"')"),
            Backend::Postgres => format!("p.{}", quote_ident(column)),
        }
    }
}

/// How a read locks the rows it selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowLock {
    None,
    /// Others may read and share-lock, not update or delete, until commit.
    Share,
    /// Exclusive until commit.
    Update,
}

/// Quote an identifier for both dialects. Identifiers come from the data
/// map, which is validated against the live schema, but quoting keeps a
/// typo from ever becoming SQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A connection pool plus the dialect it speaks.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

impl Db {
    /// Connect to `url`. SQLite files are created when missing and use WAL
    /// with a busy timeout, so readers never block the single writer.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") && !url.contains(":memory:") => {
                if url.contains('?') {
                    format!("{url}&mode=rwc")
                } else {
                    format!("{url}?mode=rwc")
                }
            }
            _ => url.to_owned(),
        };
        // A slow statement is a debug line with sqlx's summary, not a
        // warning carrying tens of kilobytes of a multi-row INSERT into an
        // operator's terminal.
        let options = AnyConnectOptions::from_str(&url)?
            .log_statements(log::LevelFilter::Trace)
            .log_slow_statements(log::LevelFilter::Debug, std::time::Duration::from_secs(1));
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 10000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Db { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Create or update Lethe's own tables.
    pub async fn migrate(&self) -> Result<(), DbError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Create the sample platform's tables when missing.
    pub async fn ensure_platform_schema(&self) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        for stmt in split_statements(PLATFORM_SCHEMA) {
            sqlx::query(&stmt).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Open the transaction one user action runs in.
    pub async fn begin_write(&self) -> Result<Transaction<'static, Any>, DbError> {
        Ok(self.pool.begin_with(self.backend.begin_statement()).await?)
    }

    /// Read the live schema: tables, columns, primary keys and foreign keys.
    pub async fn introspect(&self) -> Result<Schema, DbError> {
        let mut conn = self.pool.acquire().await?;
        let mut schema = Schema::default();
        match self.backend {
            Backend::Sqlite => {
                let names: Vec<String> = sqlx::query_scalar(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
                )
                .fetch_all(&mut *conn)
                .await?;
                for name in names {
                    let mut table = TableInfo::default();
                    let cols = sqlx::query(
                        "SELECT name, type, pk FROM pragma_table_info($1) ORDER BY cid",
                    )
                    .bind(&name)
                    .fetch_all(&mut *conn)
                    .await?;
                    for row in cols {
                        let col: String = row.try_get(0)?;
                        let ty: String = row.try_get(1)?;
                        let pk: i64 = row.try_get(2)?;
                        if pk > 0 {
                            table.primary_key.push(col.clone());
                        }
                        table.order.push(col.clone());
                        table.columns.insert(col, ColumnInfo::new(&ty));
                    }
                    let fks = sqlx::query(
                        r#"SELECT "from", "table", "to" FROM pragma_foreign_key_list($1)"#,
                    )
                    .bind(&name)
                    .fetch_all(&mut *conn)
                    .await?;
                    for row in fks {
                        let column: String = row.try_get(0)?;
                        let ref_table: String = row.try_get(1)?;
                        let ref_column: Option<String> = row.try_get(2)?;
                        table.foreign_keys.push(ForeignKey {
                            column,
                            ref_table,
                            ref_column: ref_column.unwrap_or_else(|| "id".into()),
                        });
                    }
                    schema.tables.insert(name, table);
                }
            }
            Backend::Postgres => {
                let cols = sqlx::query(
                    "SELECT table_name::text, column_name::text, data_type::text \
                     FROM information_schema.columns WHERE table_schema = current_schema() \
                     ORDER BY table_name, ordinal_position",
                )
                .fetch_all(&mut *conn)
                .await?;
                for row in cols {
                    let t: String = row.try_get(0)?;
                    let c: String = row.try_get(1)?;
                    let ty: String = row.try_get(2)?;
                    let table = schema.tables.entry(t).or_default();
                    table.order.push(c.clone());
                    table.columns.insert(c, ColumnInfo::new(&ty));
                }
                let keys = sqlx::query(
                    "SELECT cl.relname::text, a.attname::text, c.contype::text, \
                            fcl.relname::text, fa.attname::text \
                     FROM pg_constraint c \
                     JOIN pg_class cl ON cl.oid = c.conrelid \
                     JOIN pg_namespace n ON n.oid = cl.relnamespace \
                     CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord) \
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum \
                     LEFT JOIN pg_class fcl ON fcl.oid = c.confrelid \
                     LEFT JOIN pg_attribute fa ON fa.attrelid = c.confrelid \
                          AND fa.attnum = c.confkey[k.ord] \
                     WHERE c.contype IN ('p', 'f') AND n.nspname = current_schema() \
                     ORDER BY cl.relname, c.conname, k.ord",
                )
                .fetch_all(&mut *conn)
                .await?;
                for row in keys {
                    let t: String = row.try_get(0)?;
                    let c: String = row.try_get(1)?;
                    let kind: String = row.try_get(2)?;
                    let Some(table) = schema.tables.get_mut(&t) else {
                        continue;
                    };
                    if kind == "p" {
                        table.primary_key.push(c);
                    } else {
                        let ref_table: Option<String> = row.try_get(3)?;
                        let ref_column: Option<String> = row.try_get(4)?;
                        if let (Some(ref_table), Some(ref_column)) = (ref_table, ref_column) {
                            table.foreign_keys.push(ForeignKey {
                                column: c,
                                ref_table,
                                ref_column,
                            });
                        }
                    }
                }
            }
        }
        Ok(schema)
    }

    /// Every row of `table`, each column cast to text, ordered by all
    /// columns: a backend-neutral snapshot for comparing states in tests
    /// and checks.
    pub async fn dump_table(
        &self,
        table: &TableInfo,
        name: &str,
    ) -> Result<Vec<Vec<Option<String>>>, DbError> {
        let cols: Vec<String> = table
            .order
            .iter()
            .map(|c| format!("CAST({} AS TEXT)", quote_ident(c)))
            .collect();
        let order: Vec<String> = (1..=cols.len()).map(|i| i.to_string()).collect();
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {}",
            cols.join(", "),
            quote_ident(name),
            order.join(", ")
        );
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut values = Vec::with_capacity(cols.len());
            for i in 0..cols.len() {
                values.push(row.try_get::<Option<String>, _>(i)?);
            }
            out.push(values);
        }
        Ok(out)
    }

    /// Dump every table whose name passes `include`, keyed by table name.
    pub async fn dump(
        &self,
        include: impl Fn(&str) -> bool,
    ) -> Result<BTreeMap<String, Vec<Vec<Option<String>>>>, DbError> {
        let schema = self.introspect().await?;
        let mut out = BTreeMap::new();
        for (name, table) in &schema.tables {
            if include(name) {
                out.insert(name.clone(), self.dump_table(table, name).await?);
            }
        }
        Ok(out)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Split a SQL script on `;` at line ends, dropping comments and blanks.
fn split_statements(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in script.lines() {
        let line = match line.find("--") {
            Some(i) => &line[..i],
            None => line,
        };
        let trimmed = line.trim_end();
        if trimmed.trim().is_empty() {
            continue;
        }
        current.push_str(trimmed);
        current.push('\n');
        if trimmed.ends_with(';') {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

/// The live schema as introspected.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub tables: BTreeMap<String, TableInfo>,
}

#[derive(Debug, Clone, Default)]
pub struct TableInfo {
    pub columns: BTreeMap<String, ColumnInfo>,
    /// Column names in declaration order.
    pub order: Vec<String>,
    pub primary_key: Vec<String>,
    pub foreign_keys: Vec<ForeignKey>,
}

#[derive(Debug, Clone)]
pub struct ColumnInfo {
    pub decl_type: String,
    pub kind: ColumnKind,
}

impl ColumnInfo {
    fn new(decl_type: &str) -> ColumnInfo {
        ColumnInfo {
            decl_type: decl_type.to_owned(),
            kind: ColumnKind::from_decl(decl_type),
        }
    }
}

/// The coarse type of a column, enough to know how to compare and scrub it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Text,
    Integer,
    Boolean,
    Other,
}

impl ColumnKind {
    fn from_decl(decl: &str) -> ColumnKind {
        let d = decl.to_ascii_lowercase();
        if d.contains("char") || d.contains("text") || d.contains("clob") {
            ColumnKind::Text
        } else if d.contains("bool") {
            ColumnKind::Boolean
        } else if d.contains("int") {
            ColumnKind::Integer
        } else {
            ColumnKind::Other
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    pub column: String,
    pub ref_table: String,
    pub ref_column: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_script_splits_into_statements() {
        let stmts = split_statements(PLATFORM_SCHEMA);
        assert!(stmts.len() > 20, "{} statements", stmts.len());
        assert!(stmts.iter().all(|s| s.trim_end().ends_with(';')));
        assert!(stmts.iter().all(|s| !s.contains("--")));
    }

    #[test]
    fn backend_from_url() {
        assert_eq!(Backend::from_url("sqlite:x.db").unwrap(), Backend::Sqlite);
        assert_eq!(
            Backend::from_url("postgres://u@h/db").unwrap(),
            Backend::Postgres
        );
        assert!(Backend::from_url("mysql://x").is_err());
    }
}
