//! [`FsStore`]: a [`Store`](crate::Store) of files under one directory (feature `fs`).
//!
//! # Layout
//!
//! A key's `:`-separated segments are path components under the store's directory:
//! `functions:get_token:default.json` is the file `{dir}/functions/get_token/default.json`,
//! holding the value's bytes as they are (for larder, an entry as JSON), so that `cat` shows
//! it.
//!
//! # Expiry
//!
//! A file's modification time is its expiry instant: `set` with a TTL writes the file and
//! sets its mtime to now + TTL; without a TTL, to [`NO_TTL_MTIME`] (the year 2200). A file
//! whose mtime has passed is gone for [`get`](crate::Store::get), [`keys`](crate::Store::keys) and
//! [`delete`](crate::Store::delete), and is removed when one of them meets it. A file whose mtime is
//! changed by another program (`touch`, a copy that does not preserve times) expires
//! accordingly. File systems that can't store times past 2038 clamp the no-TTL time, so such
//! entries expire then.
//!
//! # Atomic writes
//!
//! `set` writes a temp file in the destination directory, named `.larder-tmp.{ms}.{random}`,
//! sets its mtime, and renames it over the destination: a reader sees the old file or the new
//! one, never a partial one. The data is not `fsync`ed: after a power loss a file may be
//! empty or truncated, which the runtime treats as an unreadable entry (a miss). Temp files
//! left by a crash are never read; [`FsStore::new`] and [`delete_prefix`](crate::Store::delete_prefix)
//! remove the ones older than a minute (younger ones may belong to a write in progress in
//! another process sharing the directory).
//!
//! # Paths never leave the directory
//!
//! A key is refused (`Err`, before any file system call) unless each of its `:`-separated
//! segments is 1 to 255 bytes long, is not `.` or `..`, contains no `/`, `\` or NUL, and does
//! not start with the temp-file prefix; the whole path must be shorter than 4096 bytes. So no
//! key names a path outside the directory: no absolute path, no parent segment. Keys built
//! by larder ([`escape_key`](crate::escape_key)) always pass.
//!
//! Nor does a link planted in the directory lead outside it: the store holds its directory
//! open and (on Unix) makes every call relative to it, one segment at a time with
//! `O_NOFOLLOW` (`openat`, `mkdirat`, `renameat`, `unlinkat`, `fstatat` with
//! `AT_SYMLINK_NOFOLLOW`; on Linux one `openat2` with `RESOLVE_NO_SYMLINKS` for a read).
//! Anything at a key's place that is not a regular file (a symlink, a FIFO, a socket) is a
//! miss and `get` unlinks it (a link itself, never its target); a directory is a miss and
//! left alone. A link where a directory of a key should be makes the key a miss, is
//! skipped by listings and prefix deletes, and makes a `set` under it fail. Elsewhere than
//! on Unix, each segment is checked with `symlink_metadata` first (a link placed between
//! the check and the call would be followed).
//!
//! # Size bound and shared directories
//!
//! An entry larger than [`DEFAULT_MAX_ENTRY_SIZE`] (or the bound set with
//! [`FsStoreBuilder::max_entry_size`]) is a miss, logged, and never read into memory. A
//! directory that belongs to another user, or that group or others may write to, is
//! refused when the store is built, unless [`FsStoreBuilder::allow_shared_directory`]
//! says it is shared on purpose; the store creates its directory with mode `0o700`.
//!
//! # Blocking
//!
//! Writes, deletes, listings and large reads run on Tokio's blocking pool (`spawn_blocking`),
//! one task per call, so the async runtime's threads never wait on them. A read of a small
//! file (at most [`INLINE_READ_MAX`] bytes) is done on the calling thread: `open`, `fstat`
//! and one `read` of a file in the page cache take a few microseconds, less than the hop to
//! the blocking pool and back, and an L2 hit is then as fast as `std::fs::read` itself. On
//! a slow or network file system, where a read may wait on the wire, turn that off with
//! [`FsStore::blocking_reads`]. The store's methods must be called inside a Tokio runtime.

mod beneath;
mod files;
mod ops;
mod path;
mod root;
mod store;
mod walk;
mod write;

pub use ops::NO_TTL_MTIME;
pub use path::TEMP_PREFIX;
pub use root::{DEFAULT_MAX_ENTRY_SIZE, INLINE_READ_MAX, ROOT_RECHECK};
pub use store::{FsStore, FsStoreBuilder};
