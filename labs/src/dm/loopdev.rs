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
use crate::dm::meta::parse_size;
use crate::dm::LoopCmd;
use crate::error::{Error, Hint, Result};
use crate::kernel::{Errno, Kernel};

pub(crate) fn run(k: &Kernel, c: LoopCmd) -> Result<()> {
    match c {
        LoopCmd::Attach { file, size, create, autoclear, read_only } => {
            if create {
                let size = parse_size(size.as_deref().unwrap_or_default())?;
                k.why("a sparse file: it takes no disk space until written")
                    .create_sparse(&file, size * 512)
                    .hint(Errno::EEXIST, &format!("{} exists already: drop --create to attach it", file.display()))?;
            }
            let dev = attach(k, &file, read_only, autoclear)?;
            println!("{dev}");
            Ok(())
        }
        LoopCmd::Detach { dev } => detach(k, &dev),
        LoopCmd::Ls { json } => {
            let devs = list(k)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&devs).unwrap_or_default());
                return Ok(());
            }
            println!("{:<12} {:>10} {:<9} {:<10} FILE", "DEVICE", "SIZE", "AUTOCLEAR", "HOLDERS");
            for d in devs {
                let holders = if d.holders.is_empty() { "-".into() } else { d.holders.join(",") };
                println!(
                    "{:<12} {:>10} {:<9} {:<10} {}",
                    d.dev,
                    crate::dm::meta::human(d.sectors),
                    if d.autoclear { "yes" } else { "no" },
                    holders,
                    d.backing_file
                );
            }
            Ok(())
        }
    }
}

/// Attach `file` to a free loop device; returns `/dev/loopN`.
pub(crate) fn attach(k: &Kernel, file: &Path, read_only: bool, autoclear: bool) -> Result<String> {
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
                return Ok(path);
            }
        }
    }
    unreachable!("the loop returns on its last attempt")
}

/// Detach `dev`.
pub(crate) fn detach(k: &Kernel, dev: &Path) -> Result<()> {
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
pub(crate) fn describe(k: &Kernel, dev: &Path) -> Result<LoopDev> {
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

/// Every attached loop device.
pub(crate) fn list(k: &Kernel) -> Result<Vec<LoopDev>> {
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
