//! Redis connection for scaled mode. For now it answers readiness; the cache and change feed of
//! later work build on the same client.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

/// The admission script, hashed once.
static ADMIT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(ADMIT_SCRIPT));

/// A handle on the configured Redis server.
#[derive(Clone)]
pub struct RedisHandle {
    client: redis::Client,
    /// One reconnecting connection for commands, opened on first use.
    commands: Arc<OnceCell<ConnectionManager>>,
}

/// Two token buckets checked and taken together (GCRA, the state is one number per key):
/// KEYS = caller and tenant keys; ARGV = interval and tolerance (µs) of each, 0 = no limit.
/// Nothing is taken unless both admit. Returns 0, or the µs to wait.
const ADMIT_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local wait = 0
local next = {}
for i = 1, 2 do
  local interval = tonumber(ARGV[i * 2 - 1])
  if interval > 0 then
    local tolerance = tonumber(ARGV[i * 2])
    local tat = tonumber(redis.call('GET', KEYS[i]) or now)
    if tat < now then tat = now end
    if tat - now > tolerance then
      wait = math.max(wait, tat - now - tolerance)
    end
    next[i] = tat + interval
  end
end
if wait > 0 then return wait end
for i = 1, 2 do
  if next[i] then
    redis.call('SET', KEYS[i], string.format('%d', next[i]), 'PX', math.ceil((next[i] - now) / 1000) + 1000)
  end
end
return 0
";

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
        Ok(Self {
            client,
            commands: Arc::new(OnceCell::new()),
        })
    }

    /// The underlying client, for the change feed.
    pub fn client(&self) -> redis::Client {
        self.client.clone()
    }

    /// Takes one request from two token buckets shared by every hub (`(key, interval µs,
    /// tolerance µs)`, `None` for no limit), giving up after `timeout`. `Ok(None)` admits;
    /// `Ok(Some(µs))` says how long to wait.
    pub async fn admit(
        &self,
        buckets: [Option<(&str, i64, i64)>; 2],
        timeout: Duration,
    ) -> Result<Option<i64>, RedisError> {
        let attempt = async {
            let mut connection = self
                .commands
                .get_or_try_init(|| ConnectionManager::new(self.client.clone()))
                .await?
                .clone();
            let mut invocation = ADMIT.prepare_invoke();
            for bucket in buckets {
                let (key, interval, tolerance) = bucket.unwrap_or(("plexhub:rl:none", 0, 0));
                invocation.key(key).arg(interval).arg(tolerance);
            }
            invocation.invoke_async::<i64>(&mut connection).await
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(0)) => Ok(None),
            Ok(Ok(wait)) => Ok(Some(wait)),
            Ok(Err(error)) => Err(RedisError::Unreachable(error.to_string())),
            Err(_) => Err(RedisError::Unreachable(format!(
                "no answer within {timeout:?}"
            ))),
        }
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
