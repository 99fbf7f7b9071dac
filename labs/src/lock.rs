//! Advisory locks: how concurrent contlab processes take turns on shared state (the
//! networks' address allocator, the image store, mini's names and containers).
//!
//! A lock is `flock(2)` on an open file: `LOCK_EX` for one writer, `LOCK_SH` for many
//! readers. It belongs to the open file, so it is released when the file is closed,
//! and by the kernel when the process dies: a crashed or killed tool never leaves a
//! lock behind, unlike a lock made of a file's existence.
//! <https://man7.org/linux/man-pages/man2/flock.2.html>

use std::fs::File;
use std::path::Path;

use crate::kernel::{Errno, Kernel, SysError};

/// A lock held on a file; released when dropped (the file closes).
#[derive(Debug)]
pub struct FileLock {
    _file: Option<File>,
}

/// Open `path` (created when missing) and lock it, exclusive or shared. With `busy`,
/// first try without waiting and, when another process holds it, say `busy` in the
/// trace before waiting; without, wait at once. A dry run locks nothing.
pub fn lock(k: &Kernel, path: &Path, exclusive: bool, busy: Option<&str>) -> Result<FileLock, SysError> {
    let file = k.open_create(path, "open (creating if needed) a lock file")?;
    if let Some(f) = &file {
        match busy {
            None => k.flock(f, path, exclusive, false)?,
            Some(note) => match k.flock(f, path, exclusive, true) {
                Ok(()) => {}
                Err(e) if e.errno == Errno::EWOULDBLOCK => {
                    k.note(note);
                    k.flock(f, path, exclusive, false)?;
                }
                Err(e) => return Err(e),
            },
        }
    }
    Ok(FileLock { _file: file })
}
