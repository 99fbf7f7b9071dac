//! Kernel requests of the image lab: the few file-system calls that make an image
//! store safe to share — `flock(2)` so two pulls do not interleave, `fsync(2)` then
//! `rename(2)` so a reader sees the old index or the new one and never half of one,
//! `unlink(2)` for garbage collection. Blob bytes themselves are plain file I/O on
//! the tool's own data and are not traced one `write` at a time; HTTP requests are
//! shown as notes by the lab.

use std::fs::File;
use std::path::Path;

use super::errno_of;
use super::trace::quote;
use super::{Call, Effect, Kernel, Kind, SysError};

fn p(path: &Path) -> String {
    quote(&path.to_string_lossy(), 256)
}

impl Kernel {
    /// `rename(2)` — atomically replace `to` by `from` (same file system). A reader
    /// opening `to` gets either the old file or the new one, never a partial write:
    /// the basis of every "write a temp file, then rename" update.
    /// <https://man7.org/linux/man-pages/man2/rename.2.html>
    #[doc(alias = "rename")]
    pub fn rename_over(&self, from: &Path, to: &Path) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "rename",
            man: "rename(2)",
            what: "atomically move a file over another; readers see the old or the new one, never half",
            effect: Effect::Change,
        };
        self.perform(&C, vec![p(from), p(to)], || (), || std::fs::rename(from, to).map_err(errno_of), |_| {
            "0".into()
        })
    }

    /// `fsync(2)` — wait until the file's data and metadata are on the disk, so the
    /// rename that follows cannot publish a file whose content was lost in a crash.
    /// <https://man7.org/linux/man-pages/man2/fsync.2.html>
    #[doc(alias = "fsync")]
    pub fn fsync_file(&self, file: &File, path: &Path) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "fsync",
            man: "fsync(2)",
            what: "flush a file's data to the disk before it is published",
            effect: Effect::Change,
        };
        self.perform(&C, vec![p(path)], || (), || file.sync_all().map_err(errno_of), |_| "0".into())
    }
}
