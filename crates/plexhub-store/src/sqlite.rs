//! SQLite backend: the embedded default (one file, WAL mode).

use std::str::FromStr as _;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::StoreError;

/// The store on a SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    pool: sqlx::SqlitePool,
    /// Ids of the audit log's names.
    call_names: crate::audit_sql::CallNames,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path`), in WAL mode with
    /// foreign keys enforced, and applies migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: every commit is fsynced, so an acknowledged write survives a power loss;
            // group commit (one transaction per batch of writes) keeps that affordable.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self {
            pool,
            call_names: crate::audit_sql::CallNames::default(),
        })
    }
}

crate::sql::sql_store!(SqliteStore, sqlx::Sqlite, sqlx::sqlite::SqliteRow, "sqlite");
crate::registry_sql::registry_store!(SqliteStore, sqlx::Sqlite);
crate::data_sql::data_store!(
    SqliteStore,
    sqlx::Sqlite,
    sqlx::sqlite::SqliteRow,
    "BEGIN IMMEDIATE"
);
crate::session_sql::ui_session_store!(SqliteStore, sqlx::sqlite::SqliteRow);
crate::audit_sql::audit_store!(SqliteStore, sqlx::Sqlite);
crate::events_sql::event_store!(
    SqliteStore,
    sqlx::Sqlite,
    sqlx::sqlite::SqliteRow,
    crate::events_sql::Backend::Sqlite,
    "BEGIN IMMEDIATE",
    "BEGIN IMMEDIATE"
);
