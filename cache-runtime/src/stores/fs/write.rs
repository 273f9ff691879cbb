//! Atomic writes (a temp file in the destination directory, then a rename) and the cleanup
//! of temp files that a crash left behind.

use std::fs::{self};
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use filetime::FileTime;

use crate::error::Error;

use crate::stores::fs::files::{io_error, remove_quietly};
use crate::stores::fs::path::TEMP_PREFIX;

/// Temp files older than this are leftovers of a crash; younger ones may be a write in
/// progress.
pub(super) const TEMP_GRACE: Duration = Duration::from_secs(60);

/// Writes `value` to `path` atomically (temp file in the same directory, then rename), with
/// `mtime` as its expiry.
pub(super) fn write_atomic(path: &Path, value: &[u8], mtime: FileTime) -> Result<(), Error> {
    let parent = path.parent().expect("a key's path has its directory as parent");
    // A concurrent `delete_prefix` may remove an empty directory between its creation and
    // the temp file's: try again a few times.
    let mut attempts = 0;
    let mut temp = loop {
        attempts += 1;
        fs::create_dir_all(parent).map_err(|e| io_error("cannot create the directory", parent, &e))?;
        match tempfile::Builder::new().prefix(&temp_prefix()).tempfile_in(parent) {
            Ok(temp) => break temp,
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 4 => continue,
            Err(e) => return Err(io_error("cannot create a temp file in", parent, &e)),
        }
    };
    temp.write_all(value).map_err(|e| io_error("cannot write", temp.path(), &e))?;
    filetime::set_file_handle_times(temp.as_file(), None, Some(mtime))
        .map_err(|e| io_error("cannot set the expiry (mtime) of", temp.path(), &e))?;
    // On failure the temp file is removed when the error's handle drops.
    temp.persist(path).map_err(|e| io_error("cannot rename a temp file to", path, &e.error))?;
    Ok(())
}

/// `.larder-tmp.{ms since epoch}.`: the time tells later cleanups how old a temp file is.
pub(super) fn temp_prefix() -> String {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    format!("{TEMP_PREFIX}{ms}.")
}

/// Removes a temp file if its name says it is older than [`TEMP_GRACE`] (or can't say).
pub(super) fn remove_old_temp(path: &Path) {
    let born = path
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_prefix(TEMP_PREFIX))
        .and_then(|rest| rest.split('.').next())
        .and_then(|ms| ms.parse::<u64>().ok())
        .map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
    let old = born.is_none_or(|born| born + TEMP_GRACE <= SystemTime::now());
    if old {
        remove_quietly(path);
    }
}
