//! Extended attributes: name/value pairs stored beside a file's data
//! (`lgetxattr(2)`, `llistxattr(2)`, `lsetxattr(2)`). Overlayfs keeps its own state in
//! them (`trusted.overlay.opaque`, `.redirect`, `.origin`), and image layers carry
//! them as `SCHILY.xattr.*` records. The `l` forms never follow a final symlink.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::trace::quote;
use super::{Call, Effect, Errno, Kernel, Kind, SysError};

fn p(path: &Path) -> String {
    quote(&path.to_string_lossy(), 256)
}

fn cstr(s: &[u8]) -> Result<CString, Errno> {
    CString::new(s).map_err(|_| Errno::EINVAL)
}

fn bytes_text(v: &[u8]) -> String {
    quote(&String::from_utf8_lossy(v), 64)
}

impl Kernel {
    /// `lgetxattr(2)` — one extended attribute of a file (not following a symlink);
    /// `Ok(None)` when it is not set (`ENODATA`). Overlayfs keeps its own state in
    /// `trusted.overlay.*` (or `user.overlay.*` with `userxattr`): `opaque`,
    /// `origin`, `redirect`. <https://man7.org/linux/man-pages/man2/getxattr.2.html>
    #[doc(alias = "lgetxattr")]
    pub fn getxattr(&self, path: &Path, name: &str) -> Result<Option<Vec<u8>>, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "lgetxattr",
            man: "getxattr(2)",
            what: "read one extended attribute of a file (overlayfs keeps its state in trusted.overlay.*)",
            effect: Effect::Query,
        };
        let r = self.perform_out(
            &C,
            vec![p(path), quote(name, 64)],
            || unreachable!(),
            || lgetxattr(path, name),
            |v| (v.len().to_string(), Some(bytes_text(v))),
        );
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) if matches!(e.errno, Errno::ENODATA | Errno::ENOTSUP | Errno::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `llistxattr(2)` — the names of a file's extended attributes.
    /// <https://man7.org/linux/man-pages/man2/listxattr.2.html>
    #[doc(alias = "llistxattr")]
    pub fn listxattr(&self, path: &Path) -> Result<Vec<String>, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "llistxattr",
            man: "listxattr(2)",
            what: "list the names of a file's extended attributes",
            effect: Effect::Query,
        };
        let r = self.perform_out(
            &C,
            vec![p(path)],
            || unreachable!(),
            || llistxattr(path),
            |v| (v.len().to_string(), Some(format!("[{}]", v.join(", ")))),
        );
        match r {
            Err(e) if e.errno == Errno::ENOTSUP => Ok(Vec::new()),
            r => r,
        }
    }

    /// `lsetxattr(2)` — set an extended attribute; `trusted.overlay.opaque = "y"` makes
    /// an upper directory hide everything below it.
    /// <https://man7.org/linux/man-pages/man2/setxattr.2.html>
    #[doc(alias = "lsetxattr")]
    pub fn setxattr(&self, path: &Path, name: &str, value: &[u8]) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "lsetxattr",
            man: "setxattr(2)",
            what: "set an extended attribute on a file (not following a symlink)",
            effect: Effect::Change,
        };
        let args = vec![p(path), quote(name, 64), bytes_text(value), value.len().to_string(), "0".into()];
        self.perform(&C, args, || (), || lsetxattr(path, name, value), |_| "0".into())
    }
}

pub(crate) fn lgetxattr(path: &Path, name: &str) -> Result<Vec<u8>, Errno> {
    let c = cstr(path.as_os_str().as_bytes())?;
    let n = cstr(name.as_bytes())?;
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: valid C strings; buf is writable for its length.
        let r = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if r >= 0 {
            buf.truncate(r as usize);
            return Ok(buf);
        }
        let e = Errno::last();
        if e != Errno::ERANGE || buf.len() > 1 << 20 {
            return Err(e);
        }
        let len = buf.len();
        buf.resize(len * 4, 0);
    }
}

pub(crate) fn llistxattr(path: &Path) -> Result<Vec<String>, Errno> {
    let c = cstr(path.as_os_str().as_bytes())?;
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: valid C string; buf is writable for its length.
        let r = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if r >= 0 {
            buf.truncate(r as usize);
            let mut names: Vec<String> = buf
                .split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
            names.sort();
            return Ok(names);
        }
        let e = Errno::last();
        if e != Errno::ERANGE || buf.len() > 1 << 20 {
            return Err(e);
        }
        let len = buf.len();
        buf.resize(len * 4, 0);
    }
}

pub(crate) fn lsetxattr(path: &Path, name: &str, value: &[u8]) -> Result<(), Errno> {
    let c = cstr(path.as_os_str().as_bytes())?;
    let n = cstr(name.as_bytes())?;
    // SAFETY: valid C strings; value is readable for its length.
    let r = unsafe { libc::lsetxattr(c.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

pub(crate) fn lremovexattr(path: &Path, name: &str) -> Result<(), Errno> {
    let c = cstr(path.as_os_str().as_bytes())?;
    let n = cstr(name.as_bytes())?;
    // SAFETY: valid C strings.
    let r = unsafe { libc::lremovexattr(c.as_ptr(), n.as_ptr()) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}
