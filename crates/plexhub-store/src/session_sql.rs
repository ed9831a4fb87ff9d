//! The dashboard's sessions in SQL, shared by every backend like [`crate::sql`].

/// Implements [`crate::UiSessionStore`] for `$store` (see [`crate::sql::sql_store!`]).
macro_rules! ui_session_store {
    ($store:ident, $row:ty) => {
        use crate::{UiSession, UiSessionStore};

        fn ui_session_from(row: &$row) -> StoreResult<UiSession> {
            Ok(UiSession {
                id_hash: row.try_get("id_hash")?,
                csrf_token: row.try_get("csrf_token")?,
                created_at_ms: row.try_get("created_at")?,
                expires_at_ms: row.try_get("expires_at")?,
            })
        }

        #[async_trait]
        impl UiSessionStore for $store {
            async fn create_ui_session(&self, session: &UiSession, now_ms: i64) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM ui_sessions WHERE expires_at <= $1")
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO ui_sessions (id_hash, csrf_token, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(session.id_hash.as_str())
                .bind(session.csrf_token.as_str())
                .bind(session.created_at_ms)
                .bind(session.expires_at_ms)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn ui_session(
                &self,
                id_hash: &str,
                now_ms: i64,
            ) -> StoreResult<Option<UiSession>> {
                let row = sqlx::query(
                    "SELECT id_hash, csrf_token, created_at, expires_at FROM ui_sessions \
                     WHERE id_hash = $1 AND expires_at > $2",
                )
                .bind(id_hash)
                .bind(now_ms)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(ui_session_from).transpose()
            }

            async fn delete_ui_session(&self, id_hash: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM ui_sessions WHERE id_hash = $1")
                    .bind(id_hash)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}

pub(crate) use ui_session_store;
