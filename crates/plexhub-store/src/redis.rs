//! Redis connection for scaled mode. For now it answers readiness; the cache and change feed of
//! later work build on the same client.

use std::time::Duration;

/// A handle on the configured Redis server.
#[derive(Clone)]
pub struct RedisHandle {
    client: redis::Client,
}

/// Redis could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The URL is not a Redis URL.
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(#[source] redis::RedisError),
    /// The server did not answer in time or answered with an error.
    #[error("Redis unreachable: {0}")]
    Unreachable(String),
}

impl RedisHandle {
    /// Checks the URL; does not connect yet.
    pub fn new(url: &str) -> Result<Self, RedisError> {
        let client = redis::Client::open(url).map_err(RedisError::InvalidUrl)?;
        Ok(Self { client })
    }

    /// The underlying client, for the change feed.
    pub fn client(&self) -> redis::Client {
        self.client.clone()
    }

    /// Sends `PING`, giving up after `timeout`.
    pub async fn ping(&self, timeout: Duration) -> Result<(), RedisError> {
        let attempt = async {
            let mut connection = self.client.get_multiplexed_async_connection().await?;
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(RedisError::Unreachable(error.to_string())),
            Err(_) => Err(RedisError::Unreachable(format!(
                "no answer within {timeout:?}"
            ))),
        }
    }
}
