//! PostgreSQL backend: scaled mode, shared by several stateless hub instances.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;

use crate::StoreError;

/// The store on a PostgreSQL database.
#[derive(Clone)]
pub struct PostgresStore {
    pool: sqlx::PgPool,
}

impl PostgresStore {
    /// Connects to `url` and applies migrations (sqlx serialises concurrent migrators with an
    /// advisory lock, so several instances may start at once).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }
}

crate::sql::sql_store!(
    PostgresStore,
    sqlx::Postgres,
    sqlx::postgres::PgRow,
    "postgres"
);
crate::registry_sql::registry_store!(PostgresStore, sqlx::Postgres);
crate::data_sql::data_store!(PostgresStore, sqlx::Postgres, sqlx::postgres::PgRow);
