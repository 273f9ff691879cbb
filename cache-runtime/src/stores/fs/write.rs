//! Atomic writes (a temp file in the destination directory, then a rename, both relative to
//! that directory opened without following links) and the cleanup of temp files that a crash
//! left behind.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use filetime::FileTime;

use crate::error::Error;
use crate::stores::fs::beneath::{Dir, Kind, is_link};
use crate::stores::fs::files::{expired, io_error, is_absent, remove_quietly};
use crate::stores::fs::path::TEMP_PREFIX;
use crate::stores::fs::root::{Bounds, Opened, Root, read_live};
use crate::stores::store::parse_stamp;

/// [`Store::raise`](crate::Store::raise) for the file at `rel`: under an exclusive `flock` of
/// its directory (so raises of one stamp, from any process, are one after the other), the
/// stamp in the file is read and replaced only by a larger one. Returns the stamp now there.
pub(super) fn raise_stamp(root: &Root, rel: &Path, path: &Path, stamp: u64, mtime: FileTime) -> Result<u64, Error> {
    let parent = rel.parent().unwrap_or(Path::new(""));
    let Some(top) = root.current()? else {
        return Err(Error::Store(format!("fs store: the directory of {} is gone", path.display()).into()));
    };
    let held = top.descend_or_create(parent).map_err(|e| io_error("cannot open the directory of", path, &e))?;
    held.lock().map_err(|e| io_error("cannot lock the directory of", path, &e))?;
    let current = match read_live(root, rel, path, Bounds { inline: 64, max: 64 })? {
        Opened::Read(bytes) => bytes.as_deref().and_then(parse_stamp).unwrap_or(0),
        Opened::Large(..) => 0,
    };
    if current >= stamp {
        return Ok(current);
    }
    write_atomic(root, rel, path, stamp.to_string().as_bytes(), mtime)?;
    drop(held);
    Ok(stamp)
}

/// [`Store::replace`](crate::Store::replace) for the file at `rel`: the new bytes get the
/// live file's mtime (its expiry); `false`, and nothing written, when there is none.
pub(super) fn replace_keeping_expiry(root: &Root, rel: &Path, path: &Path, value: &[u8]) -> Result<bool, Error> {
    let (Some(name), Some(parent)) = (rel.file_name(), rel.parent()) else { return Ok(false) };
    let Some(top) = root.current()? else { return Ok(false) };
    let meta = match top.descend(parent).and_then(|d| d.stat(name)) {
        Ok(meta) => meta,
        Err(e) if is_absent(&e) || is_link(&e) => return Ok(false),
        Err(e) => return Err(io_error("cannot inspect", path, &e)),
    };
    let (Kind::File, Some(at)) = (meta.kind, meta.mtime) else { return Ok(false) };
    if expired(&meta) {
        return Ok(false);
    }
    write_atomic(root, rel, path, value, FileTime::from_system_time(at))?;
    Ok(true)
}

/// Temp files older than this are leftovers of a crash; younger ones may be a write in
/// progress.
pub(super) const TEMP_GRACE: Duration = Duration::from_secs(60);

/// Writes `value` to the file at `rel` below the root (`path` is the same file, for
/// errors) atomically (temp file in the same directory, then rename), with `mtime` as its
/// expiry. A link where a directory of the path should be is an error, never gone through.
pub(super) fn write_atomic(root: &Root, rel: &Path, path: &Path, value: &[u8], mtime: FileTime) -> Result<(), Error> {
    let name = rel.file_name().expect("a key's path has a file name");
    let parent = rel.parent().unwrap_or(Path::new(""));
    let parent_path = path.parent().unwrap_or(path);
    // A concurrent `delete_prefix` may remove an empty directory between its creation and
    // the temp file's: try again a few times.
    let mut attempts = 0;
    let (dir, temp_name, mut temp) = loop {
        attempts += 1;
        let dir = match root.for_write()?.descend_or_create(parent) {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 4 => continue,
            Err(e) if is_link(&e) => return Err(link_in_the_way(path, root.path())),
            Err(e) => return Err(io_error("cannot create the directory", parent_path, &e)),
        };
        match create_temp(&dir) {
            Ok((temp_name, temp)) => break (dir, temp_name, temp),
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 4 => continue,
            Err(e) => return Err(io_error("cannot create a temp file in", parent_path, &e)),
        }
    };
    let temp_path = parent_path.join(&temp_name);
    let written = temp
        .write_all(value)
        .map_err(|e| io_error("cannot write", &temp_path, &e))
        .and_then(|()| {
            filetime::set_file_handle_times(&temp, None, Some(mtime))
                .map_err(|e| io_error("cannot set the expiry (mtime) of", &temp_path, &e))
        })
        .and_then(|()| dir.rename(&temp_name, name).map_err(|e| io_error("cannot rename a temp file to", path, &e)));
    if written.is_err() {
        remove_quietly(&dir, &temp_name, &temp_path);
    }
    written
}

fn link_in_the_way(path: &Path, root: &Path) -> Error {
    Error::Store(
        format!(
            "fs store: refused to write {}: a directory on its way is a symbolic link, and the store never \
             follows links below {}; remove the link (or point the store's directory itself elsewhere)",
            path.display(),
            root.display()
        )
        .into(),
    )
}

/// A new temp file in `dir`: `.larder-tmp.{ms since epoch}.{random}` (the time tells later
/// cleanups how old it is), created exclusively.
fn create_temp(dir: &Dir) -> io::Result<(String, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut tries = 0;
    loop {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let seed = [
            u64::from(std::process::id()),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            u64::from(now.subsec_nanos()),
            now.as_secs(),
        ];
        let bytes: Vec<u8> = seed.iter().flat_map(|n| n.to_le_bytes()).collect();
        let name = format!("{TEMP_PREFIX}{}.{:016x}", now.as_millis(), xxhash_rust::xxh3::xxh3_64(&bytes));
        match dir.create_new(&name) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 8 => tries += 1,
            created => return created.map(|file| (name, file)),
        }
    }
}

/// Removes the temp file `name` in `dir` if its name says it is older than [`TEMP_GRACE`]
/// (or can't say).
pub(super) fn remove_old_temp(dir: &Dir, name: &str, path: &Path) {
    let born = name
        .strip_prefix(TEMP_PREFIX)
        .and_then(|rest| rest.split('.').next())
        .and_then(|ms| ms.parse::<u64>().ok())
        .map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
    let old = born.is_none_or(|born| born + TEMP_GRACE <= SystemTime::now());
    if old {
        remove_quietly(dir, name, path);
    }
}
