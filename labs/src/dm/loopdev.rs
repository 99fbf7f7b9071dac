//! Loop devices: a file seen as a block device, the PVs of this lab.
//!
//! `ioctl(LOOP_CTL_GET_FREE)` on `/dev/loop-control` names a free device (the kernel
//! makes one if all are taken); `ioctl(LOOP_CONFIGURE)` on `/dev/loopN` binds it to
//! an open file with its flags in one request. Two processes may be handed the same
//! free number: the loser's LOOP_CONFIGURE fails with `EBUSY`, and it asks again,
//! as losetup does. `LO_FLAGS_AUTOCLEAR` makes the kernel detach the device when its
//! last user closes it: right for a device handed at once to a holder (a mount, a
//! dm table), wrong for one that must outlive this process with no holder. Detaching
//! a device still in use (`LOOP_CLR_FD`) only sets autoclear: it goes away when the
//! dm device above it is removed.

use std::path::{Path, PathBuf};

use crate::dm::device::LoopDev;
use crate::dm::TOOL;
use crate::error::{Error, Hint, Result};
use crate::kernel::{Errno, Kernel};

/// How to attach a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoopSpec {
    /// A read-only device.
    pub read_only: bool,
    /// Detached by the kernel when its last user closes it (`LO_FLAGS_AUTOCLEAR`).
    pub autoclear: bool,
}

/// Create `file`, sparse, of `sectors` 512-byte sectors (`openat(O_CREAT|O_EXCL)`,
/// then `ftruncate`): it takes no disk space until written. An existing file is
/// refused; a file that cannot be given its size is removed again.
pub fn create_file(k: &Kernel, file: &Path, sectors: u64) -> Result<()> {
    let _s = k.scope(TOOL);
    let f = k
        .why("the file that will back the loop device")
        .create_backing_file(file)
        .hint(Errno::EEXIST, &format!("{} exists already: drop --create to attach it", file.display()))?;
    if let Err(e) = k.why("a sparse file: it takes no disk space until written").ftruncate(&f, sectors * 512) {
        drop(f);
        let _ = k.why("undo: the file was made here").unlink(file);
        return Err(e.into());
    }
    Ok(())
}

/// Attach `file` to a free loop device (`LOOP_CTL_GET_FREE`, then `LOOP_CONFIGURE`,
/// asking again if another process took that number meanwhile); returns `/dev/loopN`.
pub fn attach(k: &Kernel, file: &Path, spec: &LoopSpec) -> Result<PathBuf> {
    let _s = k.scope(TOOL);
    let (read_only, autoclear) = (spec.read_only, spec.autoclear);
    let ctl = k
        .open_dev(Path::new("/dev/loop-control"), true, false)
        .hint(Errno::ENOENT, "this kernel has no loop driver: modprobe loop (CONFIG_BLK_DEV_LOOP)")
        .hint(Errno::EACCES, "loop devices need root (or the disk group): run lvm-snap as root")?;
    let backing =
        k.why("the loop device will read and write through this descriptor").open_dev(file, !read_only, false)?;
    for attempt in 0..5 {
        let n = k.why("which loop device is free?").loop_get_free(&ctl)?;
        let path = format!("/dev/loop{n}");
        let dev = k.open_dev(Path::new(&path), !read_only, false)?;
        match k
            .why("bind the file and set the flags in one request")
            .loop_configure(&dev, &backing, read_only, autoclear)
        {
            Err(e) if e.errno == Errno::EBUSY && attempt < 4 => {
                k.note(format!("{path} was taken by someone else meanwhile: ask again"));
            }
            Err(e) => return Err(e.into()),
            Ok(()) => {
                if autoclear {
                    k.note(format!("{path} has autoclear: it is detached when its last user closes it"));
                }
                return Ok(PathBuf::from(path));
            }
        }
    }
    unreachable!("the loop returns on its last attempt")
}

/// Detach `dev` (`LOOP_CLR_FD`). A device still held (by a mapped device, a mount)
/// only gets autoclear: the kernel detaches it when its holders let go.
pub fn detach(k: &Kernel, dev: &Path) -> Result<()> {
    let _s = k.scope(TOOL);
    let info = describe(k, dev)?;
    let fd = k.open_dev(dev, false, false)?;
    k.why("detach it from its file")
        .loop_clear(&fd)
        .hint(Errno::ENXIO, &format!("{} is not attached", dev.display()))?;
    if !info.holders.is_empty() {
        k.note(format!(
            "{} is still held by {}: the kernel set autoclear and detaches it when they release it",
            dev.display(),
            info.holders.join(", ")
        ));
    }
    Ok(())
}

fn sys_dir(dev: &Path) -> Result<(String, PathBuf)> {
    let name = dev.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if !name.starts_with("loop") || name[4..].parse::<u32>().is_err() {
        return Err(Error::Usage(format!("{} is not a loop device (/dev/loopN)", dev.display())));
    }
    Ok((name.clone(), PathBuf::from("/sys/block").join(&name)))
}

/// What sysfs says of one loop device.
pub fn describe(k: &Kernel, dev: &Path) -> Result<LoopDev> {
    let (name, sys) = sys_dir(dev)?;
    let read = |f: &str| k.read_file(&sys.join(f)).map(|s| s.trim().to_string()).unwrap_or_default();
    let sectors = read("size").parse().unwrap_or(0);
    let holders = k.read_dir(&sys.join("holders")).unwrap_or_default();
    let (backing_file, autoclear) = if sectors > 0 || k.exists(&sys.join("loop")) {
        (read("loop/backing_file"), read("loop/autoclear") == "1")
    } else {
        (String::new(), false)
    };
    Ok(LoopDev {
        dev: format!("/dev/{name}"),
        number: name[4..].parse().unwrap_or(0),
        backing_file,
        sectors,
        autoclear,
        read_only: read("ro") == "1",
        holders,
    })
}

/// Every attached loop device (from /sys/block/loop*), by number.
pub fn list(k: &Kernel) -> Result<Vec<LoopDev>> {
    let _s = k.scope(TOOL);
    let mut out = Vec::new();
    for n in k.read_dir(Path::new("/sys/block"))? {
        if !n.starts_with("loop") {
            continue;
        }
        // The `loop` directory exists only while a file is attached.
        if !k.exists(&Path::new("/sys/block").join(&n).join("loop")) {
            continue;
        }
        out.push(describe(k, &Path::new("/dev").join(&n))?);
    }
    out.sort_by_key(|d| d.number);
    Ok(out)
}
