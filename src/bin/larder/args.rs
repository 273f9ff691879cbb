//! The command line: options and subcommands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Inspect and clear larder caches in Redis or in a directory (an `FsStore`).
///
/// Keys are storage keys, as larder writes them: `{group}:{name}:{key}.json`, without the
/// Redis prefix (`functions:get_token:default.json`). List them with `larder keys`.
#[derive(Debug, Parser)]
#[command(name = "larder", version, propagate_version = true)]
#[command(after_help = "\
Examples:
  larder --redis redis://127.0.0.1:6379/ keys github:
  larder --redis redis://127.0.0.1:6379/ get github:stars:rust-lang:rust.json
  larder --redis redis://127.0.0.1:6379/ clear --group github
  larder --redis redis://127.0.0.1:6379/ clear --tag users
  larder --dir /var/cache/myapp stats

Exit status: 0 on success, 1 when something failed (the message says what), 2 on a usage error.")]
pub struct Cli {
    #[command(flatten)]
    pub target: TargetArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Where the cache is, and how to reach the running instances.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// The Redis server that instances use as L2 (`redis://[:password@]host:port[/db]`)
    #[arg(long, value_name = "URL", env = "LARDER_REDIS_URL", global = true)]
    pub redis: Option<String>,

    /// The prefix of larder's keys in Redis (the `RedisStore` prefix) [default: larder:]
    #[arg(long, value_name = "PREFIX", global = true)]
    pub prefix: Option<String>,

    /// The directory of an fs store (the `FsStore` directory)
    #[arg(long, value_name = "PATH", global = true)]
    pub dir: Option<PathBuf>,

    /// Accept a --dir that another user owns or that group or others may write to (refused
    /// by default, as `FsStore` does without `allow_shared_directory(true)`)
    #[arg(long, global = true)]
    pub shared_dir: bool,

    /// The pub/sub channel of the bus, as configured with `bus_channel` [default: larder:bus]
    #[arg(long, value_name = "CHANNEL", global = true)]
    pub channel: Option<String>,

    /// Tell running instances about this mount (`base`) only; repeat it for several
    /// [default: every mount]
    #[arg(long = "mount", value_name = "NAME", global = true)]
    pub mounts: Vec<String>,

    /// The Redis server of the bus, when it is not the `--redis` one (with `--dir`: the bus of
    /// instances that share the directory)
    #[arg(long, value_name = "URL", global = true, conflicts_with = "no_bus")]
    pub bus: Option<String>,

    /// Change the store only: don't tell running instances (their memory copies stay until
    /// they expire)
    #[arg(long, global = true)]
    pub no_bus: bool,

    /// Seconds to wait for Redis to connect and to answer each command
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0, global = true)]
    pub timeout: f64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the keys (sorted) that start with PREFIX
    Keys {
        /// A key prefix, e.g. `github:` or `github:stars:` (default: every key)
        #[arg(id = "key_prefix", value_name = "PREFIX", default_value = "")]
        prefix: String,
        /// Also list larder's own keys (`_larder:…`: tag timestamps)
        #[arg(long)]
        all: bool,
        /// Print a JSON array
        #[arg(long)]
        json: bool,
    },
    /// Print the entry stored under KEY, as pretty JSON
    Get {
        /// A storage key, e.g. `functions:get_token:default.json`
        key: String,
        /// Print the stored bytes as they are
        #[arg(long)]
        raw: bool,
    },
    /// Delete entries, and tell running instances to drop their memory copies
    Delete {
        /// Storage keys
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
    },
    /// Delete a group's entries, invalidate a tag, or (with neither) delete every entry
    #[command(after_help = "\
With --group G: deletes every key under `G:` (a `/` in G stands for `:`, as in `group = \"a/b\"`).
With --tag T: stores the tag's invalidation time (now) in the store, like `larder::invalidate_tag`:
every instance treats the entries tagged T that were produced before now as misses.
With neither: deletes every key (under the Redis prefix, or in the directory).
Running instances are told on the bus, so they drop their memory (L1) copies too.")]
    Clear {
        /// A group to delete (repeatable)
        #[arg(long = "group", value_name = "G")]
        groups: Vec<String>,
        /// A tag to invalidate (repeatable)
        #[arg(long = "tag", value_name = "T")]
        tags: Vec<String>,
        /// Clear everything even when the Redis prefix is empty (the whole database)
        #[arg(long)]
        force: bool,
    },
    /// Count keys, per group, and their bytes
    Stats {
        /// Print a JSON object
        #[arg(long)]
        json: bool,
    },
}
