//! What each subcommand does. A command writes its report to `out` (printed on stdout,
//! even when it then fails) and notes to stderr.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::time::{SystemTime, UNIX_EPOCH};

use cache_keyspace::{group_prefixes, is_segment};
use larder::bus::BusOp;
use larder::{Clock, Invalidation};
use serde_json::{Value, json};

use crate::args::Command;
use crate::target::{Failure, INTERNAL, Target};

/// How many values `stats` reads per round trip.
const BATCH: usize = 256;

pub async fn run(target: &Target, command: Command, out: &mut String) -> Result<(), Failure> {
    match command {
        Command::Keys { prefix, all, json } => keys(target, &prefix, all, json, out).await,
        Command::Get { key, raw } => get(target, &key, raw, out).await,
        Command::Delete { keys } => delete(target, &keys, out).await,
        Command::Clear { groups, tags, force } => clear(target, &groups, &tags, force, out).await,
        Command::Stats { json } => stats(target, json, out).await,
    }
}

fn store_failed(what: &str, e: larder::Error) -> Failure {
    Failure::new(format!("{what} failed: {e}"))
}

async fn keys(target: &Target, prefix: &str, all: bool, as_json: bool, out: &mut String) -> Result<(), Failure> {
    let mut keys = target.store.keys(prefix).await.map_err(|e| store_failed("listing keys", e))?;
    if !all && !prefix.starts_with(INTERNAL) {
        keys.retain(|k| !k.starts_with(INTERNAL));
    }
    keys.sort();
    if as_json {
        let _ = writeln!(out, "{}", Value::from(keys));
        return Ok(());
    }
    if keys.is_empty() {
        eprintln!("no keys under {prefix:?} in {}", target.describe);
    }
    for k in keys {
        let _ = writeln!(out, "{k}");
    }
    Ok(())
}

/// A hint for a key that was not found.
fn not_found_hint(key: &str) -> String {
    if key.ends_with(".json") {
        "list the keys with `larder keys PREFIX` (keys have no Redis prefix: `functions:f:default.json`)".to_owned()
    } else {
        format!(
            "storage keys end with `.json`: did you mean {key:?}? list them with `larder keys`",
            key = format!("{key}.json")
        )
    }
}

async fn get(target: &Target, key: &str, raw: bool, out: &mut String) -> Result<(), Failure> {
    let bytes = target.store.get(key).await.map_err(|e| store_failed(&format!("reading {key:?}"), e))?;
    let Some(bytes) = bytes else {
        return Err(Failure::new(format!("no entry under {key:?} in {}", target.describe)).hint(not_found_hint(key)));
    };
    if raw {
        out.push_str(&String::from_utf8_lossy(&bytes));
        if !out.ends_with('\n') {
            out.push('\n');
        }
        return Ok(());
    }
    // As an entry, its fields stay in their order (`value` first); anything else as JSON.
    let pretty = match serde_json::from_slice::<larder::Entry<Value>>(&bytes) {
        Ok(entry) => {
            if std::io::stderr().is_terminal() {
                eprintln!("{}", describe_age(entry.mtime, entry.expires, now_ms()));
            }
            serde_json::to_string_pretty(&entry)
        }
        Err(_) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(value) => serde_json::to_string_pretty(&value),
            Err(e) => {
                let shown: String = String::from_utf8_lossy(&bytes).chars().take(120).collect();
                return Err(Failure::new(format!(
                    "the value under {key:?} is not JSON ({} bytes, {e}): {shown:?}",
                    bytes.len()
                ))
                .hint("larder treats it as a miss (and deletes it when it reads it); `--raw` prints it as it is"));
            }
        },
    };
    let _ = writeln!(out, "{}", pretty.expect("a JSON value can be printed"));
    Ok(())
}

async fn delete(target: &Target, keys: &[String], out: &mut String) -> Result<(), Failure> {
    let notifier = target.notifier().await?;
    let (mut deleted, mut missing, mut failed) = (0usize, Vec::new(), Vec::new());
    for key in keys {
        match Invalidation::Key(key.clone())
            .apply_to(&*target.store, Clock::System.order_stamp(), CLI_STAMP_TTL)
            .await
            .map(|n| n > 0)
        {
            Ok(true) => {
                deleted += 1;
                let _ = writeln!(out, "deleted {key}");
            }
            Ok(false) => missing.push(key.as_str()),
            Err(e) => failed.push(format!("{key}: {e}")),
        }
    }
    for key in &missing {
        eprintln!("not found: {key} ({})", not_found_hint(key));
    }
    let _ = writeln!(out, "{deleted} of {} key(s) deleted", keys.len());
    if let Some(notifier) = notifier {
        // Missing keys too: an instance may still hold a memory copy of one.
        let _ = writeln!(out, "{}", notifier.publish(BusOp::Delete { keys: keys.to_vec() }).await?);
    }
    if !failed.is_empty() {
        return Err(Failure::new(format!("{} key(s) could not be deleted:\n  {}", failed.len(), failed.join("\n  "))));
    }
    Ok(())
}

async fn clear(
    target: &Target,
    groups: &[String],
    tags: &[String],
    force: bool,
    out: &mut String,
) -> Result<(), Failure> {
    for g in groups {
        if !is_segment(g, true) {
            return Err(Failure::usage(format!(
                "invalid group {g:?}: a group is made of [A-Za-z0-9_-] characters, in parts separated by `/`"
            )));
        }
    }
    if tags.iter().any(String::is_empty) {
        return Err(Failure::usage("a tag can't be empty"));
    }
    let everything = groups.is_empty() && tags.is_empty();
    if everything && target.unscoped && !force {
        return Err(Failure::usage(
            "refusing to clear everything: the Redis prefix is empty, so that is every key of the database",
        )
        .hint("give --group or --tag, or the prefix your instances use (--prefix), or pass --force"));
    }
    let notifier = target.notifier().await?;

    if everything {
        let n = Invalidation::Prefix(String::new())
            .apply_to(&*target.store, Clock::System.order_stamp(), CLI_STAMP_TTL)
            .await
            .map_err(|e| store_failed("clearing", e))?;
        let _ = writeln!(out, "cleared everything: {n} key(s) deleted from {}", target.describe);
        if let Some(notifier) = &notifier {
            let _ = writeln!(out, "{}", notifier.publish(BusOp::Clear { prefix: String::new() }).await?);
        }
    }
    for g in groups {
        // The group's own keys, then its sub-groups' (`a/b` is stored as `a.b`).
        for prefix in group_prefixes(g) {
            let n = Invalidation::Prefix(prefix.clone())
                .apply_to(&*target.store, Clock::System.order_stamp(), CLI_STAMP_TTL)
                .await
                .map_err(|e| store_failed(&format!("clearing group {g:?}"), e))?;
            let _ = writeln!(out, "cleared group {g}: {n} key(s) under {prefix:?} deleted");
            if let Some(notifier) = &notifier {
                let _ = writeln!(out, "{}", notifier.publish(BusOp::Clear { prefix }).await?);
            }
        }
    }
    for t in tags {
        let at = invalidate_tag(target, t).await?;
        let _ = writeln!(out, "invalidated tag {t:?}: entries tagged with it and produced until {at} ms are misses");
        if let Some(notifier) = &notifier {
            let _ = writeln!(out, "{}", notifier.publish(BusOp::InvalidateTag { tag: t.clone() }).await?);
        }
    }
    Ok(())
}

/// How long the stamps of the CLI's deletes stay in the store (runs in flight on running
/// instances cannot write the deleted entries back for that long).
const CLI_STAMP_TTL: Option<std::time::Duration> = Some(std::time::Duration::from_secs(24 * 3600));
/// A key's first segment as the group it stores (`billing.invoices` is `billing/invoices`),
/// or as it is when it is no group's.
fn shown_group(segment: &str) -> String {
    let group = segment.replace('.', "/");
    if is_segment(&group, true) { group } else { segment.to_owned() }
}

/// Raises the tag's invalidation stamp to now (never back in time); returns now, in ms.
async fn invalidate_tag(target: &Target, tag: &str) -> Result<u64, Failure> {
    let failed = |e| store_failed(&format!("invalidating tag {tag:?}"), e);
    let stamp = Clock::System.order_stamp();
    Invalidation::TagInvalidated(tag.to_owned()).apply_to(&*target.store, stamp, None).await.map_err(failed)?;
    Ok(stamp / 1000)
}

#[derive(Default)]
struct Count {
    entries: u64,
    fresh: u64,
    stale: u64,
    unreadable: u64,
    bytes: u64,
}

impl Count {
    fn add(&mut self, bytes: &[u8], now: u64) {
        self.entries += 1;
        self.bytes += bytes.len() as u64;
        match serde_json::from_slice::<larder::Entry<Value>>(bytes) {
            Ok(e) if now <= e.expires => self.fresh += 1,
            Ok(_) => self.stale += 1,
            Err(_) => self.unreadable += 1,
        }
    }

    fn json(&self) -> Value {
        json!({
            "entries": self.entries, "fresh": self.fresh, "stale": self.stale,
            "unreadable": self.unreadable, "bytes": self.bytes,
        })
    }
}

async fn stats(target: &Target, as_json: bool, out: &mut String) -> Result<(), Failure> {
    let keys = target.store.keys("").await.map_err(|e| store_failed("listing keys", e))?;
    let (internal, entries): (Vec<String>, Vec<String>) = keys.into_iter().partition(|k| k.starts_with(INTERNAL));
    let now = now_ms();
    let mut total = Count::default();
    let mut groups: BTreeMap<String, Count> = BTreeMap::new();
    for chunk in entries.chunks(BATCH) {
        let values = target.store.get_many(chunk).await.map_err(|e| store_failed("reading values", e))?;
        for (key, value) in chunk.iter().zip(values) {
            // Gone since it was listed (expired or deleted): not counted.
            let Some(bytes) = value else { continue };
            let group = key.split_once(':').map_or("(none)".to_owned(), |(g, _)| shown_group(g));
            total.add(&bytes, now);
            groups.entry(group).or_default().add(&bytes, now);
        }
    }
    let tag_timestamps = internal.iter().filter(|k| k.starts_with(&format!("{INTERNAL}tags:"))).count();

    if as_json {
        let mut doc = total.json();
        doc["store"] = target.describe.clone().into();
        doc["tag_timestamps"] = tag_timestamps.into();
        doc["groups"] = groups.iter().map(|(g, c)| (g.clone(), c.json())).collect::<serde_json::Map<_, _>>().into();
        let _ = writeln!(out, "{doc}");
        return Ok(());
    }
    let _ = writeln!(out, "store:    {}", target.describe);
    let _ = writeln!(
        out,
        "entries:  {} ({} fresh, {} stale, {} unreadable)",
        total.entries, total.fresh, total.stale, total.unreadable
    );
    let _ = writeln!(out, "bytes:    {} ({})", total.bytes, human_bytes(total.bytes));
    let _ = writeln!(out, "tags:     {tag_timestamps} tag timestamp(s)");
    if !groups.is_empty() {
        let width = groups.keys().map(String::len).max().unwrap_or(0).max(5);
        let _ = writeln!(out);
        let _ = writeln!(out, "{:<width$}  {:>8}  {:>8}  {:>8}  {:>10}", "GROUP", "ENTRIES", "FRESH", "STALE", "BYTES");
        for (g, c) in &groups {
            let _ = writeln!(out, "{g:<width$}  {:>8}  {:>8}  {:>8}  {:>10}", c.entries, c.fresh, c.stale, c.bytes);
        }
    }
    Ok(())
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

fn human_ms(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1e3),
        60_000..3_600_000 => format!("{:.1} min", ms as f64 / 6e4),
        3_600_000..86_400_000 => format!("{:.1} h", ms as f64 / 3.6e6),
        _ => format!("{:.1} d", ms as f64 / 8.64e7),
    }
}

/// One line about an entry's age, for people (stderr).
fn describe_age(mtime: u64, expires: u64, now: u64) -> String {
    let age = human_ms(now.saturating_sub(mtime));
    if now <= expires {
        format!("fresh: produced {age} ago, fresh for {} more", human_ms(expires - now))
    } else {
        format!(
            "stale: produced {age} ago, past its max_age for {} (served only under swr/grace)",
            human_ms(now - expires)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_ms(90_000), "1.5 min");
    }
}
