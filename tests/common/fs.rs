//! What a store wrote under a directory.

use std::collections::BTreeSet;
use std::path::Path;

/// Every regular file under `dir`, as a path relative to it, sorted.
pub fn files(dir: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// A directory the test can make read-only and writable again, for the processes that
/// already have it open too: as root (who may write anywhere), a bind mount of the
/// directory onto itself, remounted read-only; otherwise its permission bits. Make it
/// before the store opens the directory (an open directory keeps the mount it was opened
/// through).
pub struct ReadOnlySwitch {
    dir: std::path::PathBuf,
    mounted: bool,
}

impl ReadOnlySwitch {
    /// Panics if the switch cannot be made (as root without the right to mount).
    pub fn new(dir: &Path) -> ReadOnlySwitch {
        let root = is_root();
        if root {
            run("mount", &["--bind", &dir.to_string_lossy(), &dir.to_string_lossy()]);
        }
        ReadOnlySwitch { dir: dir.to_path_buf(), mounted: root }
    }

    /// Every write under the directory fails from now on (`EROFS` or `EACCES`).
    pub fn read_only(&self) {
        if self.mounted {
            run("mount", &["-o", "remount,bind,ro", &self.dir.to_string_lossy()]);
        } else {
            chmod_tree(&self.dir, 0o555);
        }
    }

    /// Writes work again.
    pub fn writable(&self) {
        if self.mounted {
            run("mount", &["-o", "remount,bind,rw", &self.dir.to_string_lossy()]);
        } else {
            chmod_tree(&self.dir, 0o700);
        }
    }
}

impl Drop for ReadOnlySwitch {
    fn drop(&mut self) {
        if self.mounted {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.dir).status();
        } else {
            chmod_tree(&self.dir, 0o700);
        }
    }
}

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run(cmd: &str, args: &[&str]) {
    let out = std::process::Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed ({}): a read-only directory is needed for this test",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn chmod_tree(dir: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            chmod_tree(&entry.path(), mode);
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
}
