//! [`RedisStore`]: a [`Store`] in Redis (feature `redis`).
//!
//! Values live under `{prefix}{key}` (prefix `larder:` unless configured), written with
//! `SET key value PX ttl` (no `PX` without a TTL), read with `GET` and `MGET`, deleted with
//! `UNLINK`; stamps raised by a Lua script (never lowered, whatever the order of concurrent
//! raises); values replaced with `SET … XX KEEPTTL` (Redis 6 or later); prefix deletes and key listings walk the keyspace with
//! `SCAN MATCH {escaped prefix}* COUNT 500` (never `KEYS`), deleting each page with one
//! `UNLINK`.
//!
//! The connection is a redis-rs [`ConnectionManager`]: one multiplexed connection shared by
//! all clones of the store, re-established by itself after the server restarts or the
//! network drops it (the call that finds the connection broken fails; later calls use the
//! new one). Every call is bounded: it fails after the connect timeout plus the response
//! timeout at most (per round trip for `SCAN` walks), so a dead server makes calls fail fast
//! instead of hanging them.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, RedisResult, cmd};

use crate::error::Error;
use crate::stores::store::{Store, StoreFuture};

/// The key prefix of a [`RedisStore`] unless configured otherwise.
pub const DEFAULT_PREFIX: &str = "larder:";
/// How long a [`RedisStore`] waits for a TCP connection (and handshake) by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a [`RedisStore`] waits for a reply to a command by default.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// How many keys one `SCAN` step asks for.
const SCAN_COUNT: usize = 500;

/// A [`Store`] in Redis, through a connection that reconnects by itself.
///
/// Build one with [`RedisStore::connect`] (defaults) or [`RedisStore::builder`]. Clones
/// share the connection. Errors are [`Error::Store`] values saying what failed (the URL's
/// password is never in them); a call never panics and never waits longer than its
/// timeouts. A value of another Redis type under a key (a hash, a list) is a miss for
/// [`get`](Store::get), not an error.
///
/// ```no_run
/// # async fn run() -> Result<(), cache_runtime::Error> {
/// use cache_runtime::RedisStore;
/// use std::time::Duration;
///
/// let store = RedisStore::builder("redis://127.0.0.1:6379/")
///     .prefix("myapp:")
///     .connect_timeout(Duration::from_millis(500))
///     .response_timeout(Duration::from_millis(250))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: Arc<str>,
    /// The bound of one round trip, reconnecting included.
    op_timeout: Duration,
    /// The URL without its password, for messages.
    target: Arc<str>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("target", &self.target)
            .field("prefix", &self.prefix)
            .field("op_timeout", &self.op_timeout)
            .finish()
    }
}

/// Options of a [`RedisStore`]; finish with [`connect`](RedisStoreBuilder::connect) or
/// [`connect_lazy`](RedisStoreBuilder::connect_lazy).
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `connect` or `connect_lazy`"]
pub struct RedisStoreBuilder {
    url: String,
    prefix: String,
    connect_timeout: Duration,
    response_timeout: Duration,
}

impl RedisStore {
    /// Connects to the Redis server at `url` (`redis://[[user]:password@]host:port[/db]`;
    /// `redis+unix:///path` for a Unix socket; TLS is not built in) with the default prefix
    /// and timeouts.
    ///
    /// Errors: the URL is invalid, or the server does not answer within the connect
    /// timeout plus the response timeout. Must be called inside a Tokio runtime.
    pub async fn connect(url: &str) -> Result<RedisStore, Error> {
        RedisStore::builder(url).connect().await
    }

    /// Options for a store at `url`: prefix [`DEFAULT_PREFIX`], connect timeout
    /// [`DEFAULT_CONNECT_TIMEOUT`], response timeout [`DEFAULT_RESPONSE_TIMEOUT`].
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
        }
    }

    /// The prefix put before every key in Redis.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Runs one round trip, bounded by the operation timeout.
    async fn run<T>(&self, what: &str, call: impl Future<Output = RedisResult<T>>) -> Result<T, Error> {
        match tokio::time::timeout(self.op_timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.failed(what, e)),
            Err(_) => Err(self.timed_out(what)),
        }
    }

    fn failed(&self, what: &str, e: ::redis::RedisError) -> Error {
        Error::store(format!("redis store ({}): {what} failed", self.target), e)
    }

    fn timed_out(&self, what: &str) -> Error {
        Error::Store(
            format!(
                "redis store ({}): {what} timed out after {} ms; is the server up?",
                self.target,
                self.op_timeout.as_millis()
            )
            .into(),
        )
    }

    /// The `SCAN MATCH` pattern of the keys that start with `{prefix}{key_prefix}`.
    fn pattern(&self, key_prefix: &str) -> String {
        format!("{}*", escape_glob(&self.full(key_prefix)))
    }

    /// One `SCAN` step: the next cursor (0: done) and a page of keys.
    async fn scan(&self, pattern: &str, cursor: u64) -> Result<(u64, Vec<Vec<u8>>), Error> {
        let mut conn = self.conn.clone();
        let step = cmd("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(SCAN_COUNT).to_owned();
        self.run("SCAN", step.query_async(&mut conn)).await
    }
}

impl RedisStoreBuilder {
    /// The prefix put before every key in Redis (default `larder:`; may be empty). Use one
    /// per application sharing a server.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long to wait for a connection to the server (default 1 s). With the response
    /// timeout, it bounds every call.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long to wait for the reply to a command (default 500 ms).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Connects now, and fails if the server does not answer.
    ///
    /// Errors: the URL is invalid, no Tokio runtime is running, or no connection within the
    /// connect timeout plus the response timeout.
    pub async fn connect(self) -> Result<RedisStore, Error> {
        let (client, config, target) = self.client()?;
        let op_timeout = self.op_timeout();
        let conn = match tokio::time::timeout(op_timeout, ConnectionManager::new_with_config(client, config)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                return Err(Error::store(format!("redis store ({target}): cannot connect"), e));
            }
            Err(_) => {
                return Err(Error::Store(
                    format!("redis store ({target}): cannot connect: no answer within {} ms", op_timeout.as_millis())
                        .into(),
                ));
            }
        };
        Ok(RedisStore { conn, prefix: self.prefix.into(), op_timeout, target: target.into() })
    }

    /// A store that connects on its first call, so that an application can start while
    /// Redis is down; calls fail (fast) until the server answers.
    ///
    /// Errors: the URL is invalid, or no Tokio runtime is running.
    pub fn connect_lazy(self) -> Result<RedisStore, Error> {
        let (client, config, target) = self.client()?;
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| Error::store(format!("redis store ({target})"), e))?;
        Ok(RedisStore { conn, op_timeout: self.op_timeout(), prefix: self.prefix.into(), target: target.into() })
    }

    fn op_timeout(&self) -> Duration {
        self.connect_timeout.saturating_add(self.response_timeout)
    }

    fn client(&self) -> Result<(Client, ConnectionManagerConfig, String), Error> {
        let target = redact(&self.url);
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Store(
                format!(
                    "redis store ({target}): must be created inside a Tokio runtime (it spawns its connection task)"
                )
                .into(),
            ));
        }
        let client = Client::open(self.url.as_str())
            .map_err(|e| Error::store(format!("redis store ({target}): invalid URL"), e))?;
        Ok((client, manager_config(self.connect_timeout, self.response_timeout), target))
    }
}

/// The connection manager's settings: bounded timeouts, and a short reconnect schedule
/// (each call is bounded anyway; a long backoff would only delay recovery).
pub(crate) fn manager_config(connect: Duration, response: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(connect))
        .set_response_timeout(Some(response))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(20))
        .set_max_delay(Duration::from_millis(200))
}

impl Store for RedisStore {
    fn name(&self) -> &str {
        "redis"
    }

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let full = self.full(key);
            match tokio::time::timeout(self.op_timeout, cmd("GET").arg(&full).query_async(&mut conn)).await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(e)) if e.code() == Some("WRONGTYPE") => {
                    tracing::warn!(target: "larder", key = %full, "redis store: a value of another type is under the key; a miss");
                    Ok(None)
                }
                Ok(Err(e)) => Err(self.failed("GET", e)),
                Err(_) => Err(self.timed_out("GET")),
            }
        })
    }

    fn get_many<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<Vec<u8>>>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let mut conn = self.conn.clone();
            let full: Vec<String> = keys.iter().map(|k| self.full(k)).collect();
            self.run("MGET", cmd("MGET").arg(&full).query_async(&mut conn)).await
        })
    }

    fn set<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Option<Duration>) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let mut set = cmd("SET");
            set.arg(self.full(key)).arg(value);
            if let Some(ttl) = ttl {
                // `PX 0` is an error in Redis: the shortest TTL is 1 ms.
                let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).clamp(1, i64::MAX as u64);
                set.arg("PX").arg(ms);
            }
            self.run("SET", set.query_async::<()>(&mut conn)).await
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let n: u64 = self.run("UNLINK", cmd("UNLINK").arg(self.full(key)).query_async(&mut conn)).await?;
            Ok(n > 0)
        })
    }

    fn delete_prefix<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let pattern = self.pattern(prefix);
            let (mut cursor, mut deleted) = (0, 0);
            loop {
                let (next, keys) = self.scan(&pattern, cursor).await?;
                if !keys.is_empty() {
                    let mut conn = self.conn.clone();
                    let n: u64 = self.run("UNLINK", cmd("UNLINK").arg(&keys).query_async(&mut conn)).await?;
                    deleted += n;
                }
                if next == 0 {
                    return Ok(deleted);
                }
                cursor = next;
            }
        })
    }

    fn raise<'a>(&'a self, key: &'a str, stamp: u64, ttl: Option<Duration>) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let ttl =
                ttl.map_or(String::new(), |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1).to_string());
            let mut call = RAISE.prepare_invoke();
            call.key(self.full(key)).arg(stamp.to_string()).arg(ttl);
            let now: String = self.run("raise (EVALSHA)", call.invoke_async(&mut conn)).await?;
            Ok(now.parse().unwrap_or(stamp))
        })
    }

    fn replace<'a>(&'a self, key: &'a str, value: Vec<u8>) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let set = cmd("SET").arg(self.full(key)).arg(value).arg("XX").arg("KEEPTTL").to_owned();
            let done: Option<String> = self.run("SET XX KEEPTTL", set.query_async(&mut conn)).await?;
            Ok(done.is_some())
        })
    }

    fn keys<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            let pattern = self.pattern(prefix);
            // SCAN may return a key more than once.
            let mut found = std::collections::BTreeSet::new();
            let mut cursor = 0;
            loop {
                let (next, keys) = self.scan(&pattern, cursor).await?;
                for key in keys {
                    // A key that is not UTF-8 was not written by larder.
                    if let Ok(key) = String::from_utf8(key)
                        && let Some(key) = key.strip_prefix(&*self.prefix)
                    {
                        found.insert(key.to_owned());
                    }
                }
                if next == 0 {
                    return Ok(found.into_iter().collect());
                }
                cursor = next;
            }
        })
    }
}

/// [`Store::raise`] in one step on the server: the stamp is replaced only by a larger one,
/// so concurrent raises (from any number of instances) leave the largest.
static RAISE: std::sync::LazyLock<::redis::Script> = std::sync::LazyLock::new(|| {
    ::redis::Script::new(
        r"
local current = tonumber(redis.call('GET', KEYS[1]) or '')
if current and current >= tonumber(ARGV[1]) then
  return tostring(redis.call('GET', KEYS[1]))
end
if ARGV[2] == '' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return ARGV[1]
",
    )
});

/// Escapes the glob metacharacters of `MATCH` (`*`, `?`, `[`, `]`, `\`), so that a prefix
/// matches only itself.
pub(crate) fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The URL without its user and password, for messages and logs.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_metacharacters_are_escaped() {
        assert_eq!(escape_glob("larder:a*b?c[d]e\\f:"), "larder:a\\*b\\?c\\[d\\]e\\\\f:");
        assert_eq!(escape_glob("plain:key"), "plain:key");
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact("redis://:hunter2@10.0.0.1:6379/0"), "redis://***@10.0.0.1:6379/0");
        assert_eq!(redact("redis://user:pw@host/"), "redis://***@host/");
        assert_eq!(redact("redis://127.0.0.1:6379/"), "redis://127.0.0.1:6379/");
    }

    #[test]
    fn a_store_outside_tokio_is_an_error_not_a_panic() {
        let err = RedisStore::builder("redis://127.0.0.1:1/").connect_lazy().unwrap_err();
        assert!(err.to_string().contains("Tokio runtime"), "{err}");
    }

    #[tokio::test]
    async fn an_invalid_url_is_an_error() {
        let err = RedisStore::builder("http://nope").connect_lazy().unwrap_err();
        assert!(err.to_string().contains("invalid URL"), "{err}");
    }
}
