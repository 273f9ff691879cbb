//! Directories below the store's root, opened without following links: every file system
//! call of the store goes through a [`Dir`], relative to an open directory (`openat`,
//! `mkdirat`, `unlinkat`, `renameat`, `fstatat` with `AT_SYMLINK_NOFOLLOW`), one segment at
//! a time with `O_NOFOLLOW`, so that a symlink planted anywhere below the root is never
//! gone through. On Linux a whole key path is opened in one `openat2` call with
//! `RESOLVE_NO_SYMLINKS` when the kernel has it. Elsewhere than on Unix, a path-based
//! fallback checks each segment with `symlink_metadata` first (a link planted between the
//! check and the call is followed there).

use std::fs::File;
use std::io;
use std::time::SystemTime;

/// What is at a name, seen without following a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    File,
    Dir,
    Link,
    /// A FIFO, a socket, a device.
    Other,
}

/// What the store needs to know of a file: its kind, size, expiry (mtime) and identity.
#[derive(Clone, Copy, Debug)]
pub(super) struct Meta {
    pub(super) kind: Kind,
    pub(super) len: u64,
    /// `None` if the system can't say.
    pub(super) mtime: Option<SystemTime>,
    /// Device and inode (zero where the system has none): the same file, or a new one.
    pub(super) id: (u64, u64),
    /// The owner's user id and the permission bits (Unix; zero elsewhere).
    pub(super) owner: u32,
    pub(super) mode: u32,
}

impl Meta {
    pub(super) fn of_file(file: &File) -> io::Result<Meta> {
        #[cfg(unix)]
        {
            Ok(Meta::from_stat(&rustix::fs::fstat(file)?))
        }
        #[cfg(not(unix))]
        {
            Ok(Meta::from_std(&file.metadata()?))
        }
    }

    #[cfg(unix)]
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)] // the field types vary by target
    fn from_stat(st: &rustix::fs::Stat) -> Meta {
        use rustix::fs::FileType;
        let kind = match FileType::from_raw_mode(st.st_mode as _) {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Link,
            _ => Kind::Other,
        };
        let (secs, nanos) = (st.st_mtime as i64, st.st_mtime_nsec as u32);
        let mtime = if secs >= 0 {
            SystemTime::UNIX_EPOCH.checked_add(std::time::Duration::new(secs as u64, nanos))
        } else {
            SystemTime::UNIX_EPOCH.checked_sub(std::time::Duration::from_secs(secs.unsigned_abs()))
        };
        Meta {
            kind,
            len: u64::try_from(st.st_size as i64).unwrap_or(0),
            mtime,
            id: (st.st_dev as u64, st.st_ino as u64),
            owner: st.st_uid as u32,
            mode: st.st_mode as u32 & 0o7777,
        }
    }

    #[cfg(not(unix))]
    fn from_std(meta: &std::fs::Metadata) -> Meta {
        let kind = if meta.is_symlink() {
            Kind::Link
        } else if meta.is_dir() {
            Kind::Dir
        } else if meta.is_file() {
            Kind::File
        } else {
            Kind::Other
        };
        Meta { kind, len: meta.len(), mtime: meta.modified().ok(), id: (0, 0), owner: 0, mode: 0 }
    }

    /// Whether `self` and `other` describe the same file (always, where there are no inodes).
    pub(super) fn same_file(&self, other: &Meta) -> bool {
        self.id == other.id
    }
}

/// Whether an error says that a link was in the way (`O_NOFOLLOW` on a symlink).
pub(super) fn is_link(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        let code = e.raw_os_error();
        #[cfg(any(target_os = "freebsd", target_os = "dragonfly"))]
        if code == Some(rustix::io::Errno::MLINK.raw_os_error()) {
            return true;
        }
        code == Some(rustix::io::Errno::LOOP.raw_os_error())
    }
    #[cfg(not(unix))]
    {
        e.get_ref().is_some_and(|inner| inner.is::<fallback::LinkInTheWay>())
    }
}

#[cfg(unix)]
pub(super) use unix::Dir;

#[cfg(not(unix))]
pub(super) use fallback::Dir;

#[cfg(unix)]
mod unix {
    use std::ffi::OsStr;
    use std::fs::File;
    use std::io;
    use std::os::fd::OwnedFd;
    use std::path::{Component, Path};

    use rustix::fs::{AtFlags, Mode, OFlags};
    use rustix::io::Errno;

    use crate::stores::fs::beneath::{Kind, Meta};

    /// A directory at or below the store's root, open without following a link.
    #[derive(Debug)]
    pub(crate) struct Dir {
        fd: OwnedFd,
    }

    const DIR_FLAGS: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

    /// A read that never blocks on a FIFO and never follows a link at the last segment.
    const READ_FLAGS: OFlags = OFlags::RDONLY.union(OFlags::NOFOLLOW).union(OFlags::NONBLOCK).union(OFlags::CLOEXEC);

    /// `O_NOATIME`: a read doesn't write the inode back. (With `relatime`, the kernel would
    /// update the access time of every read, since an entry's mtime, its expiry, lies in the
    /// future.) Only the file's owner may ask for it: others open without (`EPERM`).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    const NO_ATIME: OFlags = OFlags::NOATIME;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    const NO_ATIME: OFlags = OFlags::empty();

    impl Dir {
        /// The directory at `path` (the root), whose last segment must not be a link.
        pub(crate) fn open_path(path: &Path) -> io::Result<Dir> {
            Ok(Dir { fd: rustix::fs::open(path, DIR_FLAGS, Mode::empty())? })
        }

        pub(crate) fn meta(&self) -> io::Result<Meta> {
            Ok(Meta::from_stat(&rustix::fs::fstat(&self.fd)?))
        }

        /// Takes this directory's exclusive `flock` (every process that opens it waits for
        /// it), held until the `Dir` is dropped.
        pub(crate) fn lock(&self) -> io::Result<()> {
            Ok(rustix::fs::flock(&self.fd, rustix::fs::FlockOperation::LockExclusive)?)
        }

        /// The subdirectory `name`: a link there is an error that [`is_link`](super::is_link)
        /// recognizes, a file one that [`is_absent`](crate::stores::fs::files::is_absent) does.
        pub(crate) fn sub(&self, name: impl AsRef<OsStr>) -> io::Result<Dir> {
            let name = name.as_ref();
            match rustix::fs::openat(&self.fd, name, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => Ok(Dir { fd }),
                // Linux says `ENOTDIR` for a link with `O_DIRECTORY | O_NOFOLLOW`: tell a link
                // from a file.
                Err(Errno::NOTDIR) if self.stat(name).is_ok_and(|meta| meta.kind == Kind::Link) => {
                    Err(Errno::LOOP.into())
                }
                Err(e) => Err(e.into()),
            }
        }

        /// The directory at `rel` (segments below this one), one segment at a time.
        pub(crate) fn descend(&self, rel: &Path) -> io::Result<Dir> {
            let mut names = segments(rel);
            let Some(first) = names.next() else { return self.try_clone() };
            names.try_fold(self.sub(first)?, |dir, name| dir.sub(name))
        }

        /// [`Dir::descend`], creating the directories that are missing.
        pub(crate) fn descend_or_create(&self, rel: &Path) -> io::Result<Dir> {
            let mut names = segments(rel);
            let Some(first) = names.next() else { return self.try_clone() };
            names.try_fold(self.sub_or_create(first)?, |dir, name| dir.sub_or_create(name))
        }

        fn sub_or_create(&self, name: &OsStr) -> io::Result<Dir> {
            match self.sub(name) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    match rustix::fs::mkdirat(&self.fd, name, Mode::from_bits_truncate(0o777)) {
                        Ok(()) | Err(Errno::EXIST) => self.sub(name),
                        Err(e) => Err(e.into()),
                    }
                }
                opened => opened,
            }
        }

        fn try_clone(&self) -> io::Result<Dir> {
            Ok(Dir { fd: self.fd.try_clone()? })
        }

        /// The file `name`, for reading.
        pub(crate) fn open_file(&self, name: impl AsRef<OsStr>) -> io::Result<File> {
            let name = name.as_ref();
            match rustix::fs::openat(&self.fd, name, READ_FLAGS | NO_ATIME, Mode::empty()) {
                Err(Errno::PERM) if !NO_ATIME.is_empty() => {
                    Ok(rustix::fs::openat(&self.fd, name, READ_FLAGS, Mode::empty())?.into())
                }
                opened => Ok(opened?.into()),
            }
        }

        /// The file at `rel` (segments below this directory), for reading, with no link on
        /// the way nor at the end.
        pub(crate) fn open_file_beneath(&self, rel: &Path) -> io::Result<File> {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            if let Some(opened) = openat2::open(&self.fd, rel, READ_FLAGS | NO_ATIME) {
                return opened;
            }
            let name = rel.file_name().ok_or(io::ErrorKind::NotFound)?;
            match rel.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => self.descend(parent)?.open_file(name),
                _ => self.open_file(name),
            }
        }

        /// What is at `name`, without following a link.
        pub(crate) fn stat(&self, name: impl AsRef<OsStr>) -> io::Result<Meta> {
            Ok(Meta::from_stat(&rustix::fs::statat(&self.fd, name.as_ref(), AtFlags::SYMLINK_NOFOLLOW)?))
        }

        /// Unlinks `name` (a link itself, never its target); not a directory.
        pub(crate) fn remove_file(&self, name: impl AsRef<OsStr>) -> io::Result<()> {
            Ok(rustix::fs::unlinkat(&self.fd, name.as_ref(), AtFlags::empty())?)
        }

        /// Removes the empty directory `name`.
        pub(crate) fn remove_dir(&self, name: impl AsRef<OsStr>) -> io::Result<()> {
            Ok(rustix::fs::unlinkat(&self.fd, name.as_ref(), AtFlags::REMOVEDIR)?)
        }

        /// Creates the file `name` (which must not exist), readable and writable by its owner.
        pub(crate) fn create_new(&self, name: &str) -> io::Result<File> {
            let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            Ok(rustix::fs::openat(&self.fd, name, flags, Mode::from_bits_truncate(0o600))?.into())
        }

        /// Renames `from` to `to`, both in this directory (replacing `to`, a link there
        /// included, never what it points to).
        pub(crate) fn rename(&self, from: &str, to: impl AsRef<OsStr>) -> io::Result<()> {
            Ok(rustix::fs::renameat(&self.fd, from, &self.fd, to.as_ref())?)
        }

        /// The names in this directory (without `.` and `..`; names that are not UTF-8 can't
        /// be keys and are left out).
        pub(crate) fn names(&self) -> io::Result<Vec<String>> {
            let mut names = Vec::new();
            for entry in rustix::fs::Dir::read_from(&self.fd)? {
                let entry = entry?;
                let Ok(name) = entry.file_name().to_str() else { continue };
                if name != "." && name != ".." {
                    names.push(name.to_owned());
                }
            }
            Ok(names)
        }
    }

    /// The names of `rel`'s segments (keys have only normal ones: checked before).
    fn segments(rel: &Path) -> impl Iterator<Item = &OsStr> {
        rel.components().filter_map(|c| match c {
            Component::Normal(name) => Some(name),
            _ => None,
        })
    }

    /// `openat2` with `RESOLVE_NO_SYMLINKS`: the kernel refuses a link anywhere on the path,
    /// in one call instead of one per segment.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    mod openat2 {
        use std::fs::File;
        use std::io;
        use std::os::fd::OwnedFd;
        use std::path::Path;
        use std::sync::atomic::{AtomicBool, Ordering};

        use rustix::fs::{Mode, OFlags, ResolveFlags};
        use rustix::io::Errno;

        /// Cleared when the kernel (or a sandbox) does not offer `openat2`.
        static AVAILABLE: AtomicBool = AtomicBool::new(true);

        /// The file at `rel` below `dir`, or `None` where `openat2` can't be used (then the
        /// caller goes segment by segment).
        pub(super) fn open(dir: &OwnedFd, rel: &Path, flags: OFlags) -> Option<io::Result<File>> {
            if !AVAILABLE.load(Ordering::Relaxed) {
                return None;
            }
            let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS | ResolveFlags::BENEATH;
            let mut result = rustix::fs::openat2(dir, rel, flags, Mode::empty(), resolve);
            if matches!(result, Err(Errno::PERM)) && flags.contains(OFlags::NOATIME) {
                // Not the file's owner (or a sandbox that refuses `openat2` altogether).
                result = rustix::fs::openat2(dir, rel, flags - OFlags::NOATIME, Mode::empty(), resolve);
            }
            match result {
                Ok(fd) => Some(Ok(File::from(fd))),
                // No `openat2` here: old kernel, or a seccomp filter.
                Err(Errno::NOSYS | Errno::PERM | Errno::INVAL | Errno::TOOBIG) => {
                    AVAILABLE.store(false, Ordering::Relaxed);
                    None
                }
                // A race the kernel would not resolve: go segment by segment this time.
                Err(Errno::AGAIN | Errno::XDEV) => None,
                Err(e) => Some(Err(e.into())),
            }
        }

        /// Goes segment by segment from now on (tests of that path).
        #[cfg(test)]
        pub(crate) fn disable() {
            AVAILABLE.store(false, Ordering::Relaxed);
        }
    }

    #[cfg(all(test, any(target_os = "linux", target_os = "android")))]
    pub(crate) use openat2::disable as disable_openat2;
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
pub(super) use unix::disable_openat2;

#[cfg(not(unix))]
mod fallback {
    use std::ffi::OsStr;
    use std::fs::{self, File};
    use std::io;
    use std::path::{Path, PathBuf};

    use crate::stores::fs::beneath::Meta;

    /// A link was in the way (the error [`is_link`](super::is_link) recognizes).
    #[derive(Debug)]
    pub(crate) struct LinkInTheWay;

    impl std::fmt::Display for LinkInTheWay {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a symbolic link is in the way")
        }
    }

    impl std::error::Error for LinkInTheWay {}

    fn link_error() -> io::Error {
        io::Error::other(LinkInTheWay)
    }

    /// A directory at or below the store's root, by path, checked not to be a link.
    #[derive(Debug)]
    pub(crate) struct Dir {
        path: PathBuf,
    }

    impl Dir {
        pub(crate) fn open_path(path: &Path) -> io::Result<Dir> {
            Dir::checked(path.to_path_buf())
        }

        fn checked(path: PathBuf) -> io::Result<Dir> {
            let meta = fs::symlink_metadata(&path)?;
            if meta.is_symlink() {
                return Err(link_error());
            }
            if !meta.is_dir() {
                return Err(io::ErrorKind::NotADirectory.into());
            }
            Ok(Dir { path })
        }

        pub(crate) fn meta(&self) -> io::Result<Meta> {
            Ok(Meta::from_std(&fs::symlink_metadata(&self.path)?))
        }

        /// No cross-process lock off Unix: writers of one stamp in this process are
        /// serialized by the store itself.
        pub(crate) fn lock(&self) -> io::Result<()> {
            Ok(())
        }

        pub(crate) fn sub(&self, name: impl AsRef<OsStr>) -> io::Result<Dir> {
            Dir::checked(self.path.join(name.as_ref()))
        }

        pub(crate) fn descend(&self, rel: &Path) -> io::Result<Dir> {
            rel.iter().try_fold(Dir { path: self.path.clone() }, |dir, name| dir.sub(name))
        }

        pub(crate) fn descend_or_create(&self, rel: &Path) -> io::Result<Dir> {
            rel.iter().try_fold(Dir { path: self.path.clone() }, |dir, name| match dir.sub(name) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    match fs::create_dir(dir.path.join(name)) {
                        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                        _ => {}
                    }
                    dir.sub(name)
                }
                opened => opened,
            })
        }

        pub(crate) fn open_file(&self, name: impl AsRef<OsStr>) -> io::Result<File> {
            let path = self.path.join(name.as_ref());
            if fs::symlink_metadata(&path)?.is_symlink() {
                return Err(link_error());
            }
            File::open(path)
        }

        pub(crate) fn open_file_beneath(&self, rel: &Path) -> io::Result<File> {
            let name = rel.file_name().ok_or(io::ErrorKind::NotFound)?;
            self.descend(rel.parent().unwrap_or(Path::new("")))?.open_file(name)
        }

        pub(crate) fn stat(&self, name: impl AsRef<OsStr>) -> io::Result<Meta> {
            Ok(Meta::from_std(&fs::symlink_metadata(self.path.join(name.as_ref()))?))
        }

        pub(crate) fn remove_file(&self, name: impl AsRef<OsStr>) -> io::Result<()> {
            fs::remove_file(self.path.join(name.as_ref()))
        }

        pub(crate) fn remove_dir(&self, name: impl AsRef<OsStr>) -> io::Result<()> {
            fs::remove_dir(self.path.join(name.as_ref()))
        }

        pub(crate) fn create_new(&self, name: &str) -> io::Result<File> {
            fs::OpenOptions::new().write(true).create_new(true).open(self.path.join(name))
        }

        pub(crate) fn rename(&self, from: &str, to: impl AsRef<OsStr>) -> io::Result<()> {
            fs::rename(self.path.join(from), self.path.join(to.as_ref()))
        }

        pub(crate) fn names(&self) -> io::Result<Vec<String>> {
            let mut names = Vec::new();
            for entry in fs::read_dir(&self.path)? {
                if let Ok(name) = entry?.file_name().into_string() {
                    names.push(name);
                }
            }
            Ok(names)
        }
    }
}
