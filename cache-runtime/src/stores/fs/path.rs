//! The key → path rules: which keys an fs store accepts, so that no key names a path
//! outside its directory.

use crate::error::Error;

/// The start of every temp file's name. Keys whose segment starts with it are refused.
pub const TEMP_PREFIX: &str = ".larder-tmp.";

/// The longest segment (file or directory name) that file systems accept.
pub(super) const MAX_SEGMENT: usize = 255;

/// The longest path (with its terminating NUL) that Linux accepts.
pub(super) const MAX_PATH: usize = 4096;

/// Checks one `:`-separated segment of a key (`partial`: the unfinished last segment of a
/// prefix, which may be empty or `.`/`..`, as it only filters names).
pub(super) fn check_segment(segment: &str, partial: bool) -> Result<(), &'static str> {
    if segment.contains(['/', '\\', '\0']) {
        return Err("it contains `/`, `\\` or NUL");
    }
    if segment.len() > MAX_SEGMENT {
        return Err("a segment is longer than 255 bytes (file systems can't store it)");
    }
    if partial {
        return Ok(());
    }
    if segment.is_empty() {
        return Err("it has an empty segment (a leading or trailing `:`, or `::`)");
    }
    if segment == "." || segment == ".." {
        return Err("it has a `.` or `..` segment");
    }
    if segment.starts_with(TEMP_PREFIX) {
        return Err("a segment starts with `.larder-tmp.`, which is reserved for temp files");
    }
    Ok(())
}

pub(super) fn invalid_key(key: &str, why: &str) -> Error {
    const SHOWN: usize = 80;
    let shown = if key.len() > SHOWN {
        let mut end = SHOWN;
        while !key.is_char_boundary(end) {
            end -= 1;
        }
        format!("{:?}… ({} bytes)", &key[..end], key.len())
    } else {
        format!("{key:?}")
    };
    Error::Store(
        format!(
            "fs store: refused key {shown}: {why}; keys are `:`-separated segments of 1 to 255 bytes, \
         without `/`, `\\` or NUL, and not `.` or `..` (build them with `escape_key`)"
        )
        .into(),
    )
}
