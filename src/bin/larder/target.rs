//! The cache a command works on (a Redis or fs store), the bus to the running instances,
//! and the errors a command ends with.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use larder::FsStore;
use larder::RedisStore;
use larder::Store;
use larder::bus::{Bus, BusEvent, BusMessage, BusOp, BusOptions};

use crate::args::TargetArgs;

/// The prefix of larder's own keys (tag timestamps), beside the entries.
pub const INTERNAL: &str = "_larder:";
/// The bus channel unless `--channel` says otherwise (the runtime's default).
pub const DEFAULT_CHANNEL: &str = "larder:bus";

/// Why a command failed: a message, maybe a hint, and the exit status.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub hint: Option<String>,
    pub code: u8,
}

impl Failure {
    /// Something failed (exit status 1).
    pub fn new(message: impl Into<String>) -> Failure {
        Failure { message: message.into(), hint: None, code: 1 }
    }

    /// The command line is wrong (exit status 2, like clap's own errors).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure { message: message.into(), hint: None, code: 2 }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// The store a command works on.
pub struct Target {
    pub store: Arc<dyn Store>,
    /// What it is, for messages: `redis redis://host:6379/ (prefix "larder:")`, `fs /path`.
    pub describe: String,
    /// Whether clearing everything would clear more than larder's keys (an empty Redis prefix).
    pub unscoped: bool,
    /// Where the bus is, unless `--no-bus` (or `--dir` without `--bus`).
    bus_url: Option<String>,
    channel: String,
    mounts: Vec<String>,
    timeout: Duration,
}

impl Target {
    /// Opens the store that the options name.
    pub async fn open(args: &TargetArgs) -> Result<Target, Failure> {
        let timeout = seconds(args.timeout)?;
        let channel = args.channel.clone().unwrap_or_else(|| DEFAULT_CHANNEL.to_owned());
        // No `--mount`: one message for every mount (`""`), whatever the instances call them.
        let mounts = if args.mounts.is_empty() { vec![String::new()] } else { args.mounts.clone() };
        if let Some(m) = args.mounts.iter().find(|m| m.is_empty()) {
            return Err(Failure::usage(format!("invalid --mount {m:?}: a mount name can't be empty")));
        }
        match (&args.redis, &args.dir) {
            (Some(url), None) => {
                let prefix = args.prefix.clone().unwrap_or_else(|| larder::stores::redis::DEFAULT_PREFIX.to_owned());
                let store = RedisStore::builder(url.as_str())
                    .prefix(prefix.as_str())
                    .connect_timeout(timeout)
                    .response_timeout(timeout)
                    .connect()
                    .await
                    .map_err(|e| {
                        Failure::new(format!("cannot reach Redis: {e}")).hint(
                            "check the URL given with --redis (or LARDER_REDIS_URL) and that the server is up: \
                             `redis-cli -u URL ping` should answer PONG",
                        )
                    })?;
                let bus_url = match (&args.bus, args.no_bus) {
                    (_, true) => None,
                    (Some(bus), false) => Some(bus.clone()),
                    (None, false) => Some(url.clone()),
                };
                Ok(Target {
                    store: Arc::new(store),
                    describe: format!("redis {} (prefix {prefix:?})", redact(url)),
                    unscoped: prefix.is_empty(),
                    bus_url,
                    channel,
                    mounts,
                    timeout,
                })
            }
            (None, Some(dir)) => {
                if args.prefix.is_some() {
                    return Err(Failure::usage("--prefix applies to Redis (--redis) only"));
                }
                let store = open_dir(dir, args.shared_dir).await?;
                Ok(Target {
                    describe: format!("fs {}", store.dir().display()),
                    store: Arc::new(store),
                    unscoped: false,
                    bus_url: if args.no_bus { None } else { args.bus.clone() },
                    channel,
                    mounts,
                    timeout,
                })
            }
            (None, None) => Err(Failure::usage("no cache given: say where it is with --redis URL or --dir PATH")
                .hint("for example `larder --redis redis://127.0.0.1:6379/ keys`, or set LARDER_REDIS_URL")),
            (Some(_), Some(_)) => Err(Failure::usage("give either --redis or --dir, not both")),
        }
    }

    /// Connects to the bus before a change, so that nothing is changed when the running
    /// instances could not be told. `None` without a bus.
    pub async fn notifier(&self) -> Result<Option<Notifier>, Failure> {
        let Some(url) = &self.bus_url else {
            if !self.describe.starts_with("redis") {
                eprintln!(
                    "note: no bus (--bus URL): running instances keep their memory copies of what changed until they expire"
                );
            }
            return Ok(None);
        };
        let origin = format!("larder-cli-{}", std::process::id());
        let options = BusOptions::default().connect_timeout(self.timeout).response_timeout(self.timeout);
        let (bus, events) = Bus::connect_with(url, &self.channel, &origin, options).await.map_err(|e| {
            Failure::new(format!("cannot reach the bus, so nothing was changed: {e}")).hint(
                "running instances must be told to drop their memory (L1) copies: fix the URL (--bus), \
                 or pass --no-bus to change the store only",
            )
        })?;
        Ok(Some(Notifier { bus, _events: events, channel: self.channel.clone(), mounts: self.mounts.clone() }))
    }
}

/// Tells the running instances what changed.
pub struct Notifier {
    bus: Bus,
    /// Kept so that our subscription stays up (its count is taken off `PUBLISH`'s).
    _events: tokio::sync::mpsc::Receiver<BusEvent>,
    channel: String,
    mounts: Vec<String>,
}

impl Notifier {
    /// Publishes `op` for every mount; returns a line for the report.
    pub async fn publish(&self, op: BusOp) -> Result<String, Failure> {
        let mut listeners = 0;
        for mount in &self.mounts {
            let receivers = self.bus.publish(BusMessage::new(mount.as_str(), op.clone())).await.map_err(|e| {
                Failure::new(format!("the store was changed, but the running instances could not be told: {e}")).hint(
                    "they keep their memory (L1) copies until those expire: run the command again, or restart them",
                )
            })?;
            // Our own subscription hears it too.
            listeners = listeners.max(receivers.saturating_sub(1));
        }
        if listeners == 0 {
            eprintln!(
                "note: no instance listens on channel {:?}: if some run, check --channel (their `bus_channel`)",
                self.channel
            );
        }
        let mounts = match self.mounts.as_slice() {
            [every] if every.is_empty() => "every mount".to_owned(),
            named => format!("mount {}", named.join(", ")),
        };
        Ok(format!("told {listeners} running instance(s) on channel {:?} ({mounts})", self.channel))
    }
}

async fn open_dir(dir: &Path, shared: bool) -> Result<FsStore, Failure> {
    let hint = "give the directory of your FsStore (`FsStore::new(dir)`); larder never creates it";
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Failure::new(format!("{} is not a directory", dir.display())).hint(hint));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure::new(format!("no such directory: {}", dir.display())).hint(hint));
        }
        Err(e) => return Err(Failure::new(format!("cannot read {}: {e}", dir.display()))),
    }
    FsStore::builder(dir).allow_shared_directory(shared).open().await.map_err(|e| {
        let failure = Failure::new(format!("cannot open the fs store: {e}"));
        if shared { failure } else { failure.hint("if the directory is shared on purpose, add --shared-dir") }
    })
}

fn seconds(s: f64) -> Result<Duration, Failure> {
    if s.is_finite() && s > 0.0 && s <= 3600.0 {
        Ok(Duration::from_secs_f64(s))
    } else {
        Err(Failure::usage(format!("invalid --timeout {s}: give seconds, more than 0 and at most 3600")))
    }
}

/// The URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}
