//! `ovl-mount`'s command line: flags → [`Spec`] → operation → printed result.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::{Mounted, Options, Redirect, Spec, Xino, TOOL};
use crate::cli::CommonOpts;
use crate::error::{Error, Result};
use crate::exit::{Exit, Role};
use crate::kernel::{Kernel, Mode};

/// Mount, unmount and look into overlay filesystems.
///
/// Every request made of the kernel is printed on stderr, strace-style.
#[derive(Parser, Debug)]
#[command(name = TOOL, version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub sub: Sub,
    /// Trace options shared by every binary.
    #[command(flatten)]
    pub common: CommonOpts,
}

impl Cli {
    /// How failures exit: `ovl-mount` runs no command, so always as a tool (1).
    pub fn role(&self) -> Role {
        Role::Tool
    }
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Sub {
    /// Mount an overlay at MERGED (read-only without --upper).
    Mount(MountArgs),
    /// Unmount the overlay at MERGED.
    Umount(UmountArgs),
    /// Show the layers of the overlay mounted at MERGED, from /proc/self/mountinfo.
    Inspect(InspectArgs),
    /// Say which layer provides PATH in the overlay at MERGED.
    Which(WhichArgs),
    /// List the whiteouts and opaque directories of an upper (or layer) directory.
    Whiteouts(WhiteoutsArgs),
}

/// on/off options.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OnOff {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// `ovl-mount mount`.
#[derive(Args, Debug)]
pub struct MountArgs {
    /// The lower (image) layers, top first, colon-separated; repeatable.
    #[arg(long, short, value_name = "L1:L2...", required = true)]
    pub lower: Vec<String>,
    /// The writable layer (needs --work).
    #[arg(long, short, value_name = "DIR", requires = "work")]
    pub upper: Option<PathBuf>,
    /// The work directory, on the same filesystem as --upper.
    #[arg(long, short, value_name = "DIR", requires = "upper")]
    pub work: Option<PathBuf>,
    /// Where the merged tree appears.
    pub merged: PathBuf,
    /// index=on|off.
    #[arg(long, value_enum)]
    pub index: Option<OnOff>,
    /// redirect_dir=on|off|follow|nofollow.
    #[arg(long, value_enum)]
    pub redirect_dir: Option<Redirect>,
    /// xino=on|off|auto.
    #[arg(long, value_enum)]
    pub xino: Option<Xino>,
    /// metacopy=on|off.
    #[arg(long, value_enum)]
    pub metacopy: Option<OnOff>,
    /// Keep overlay state in user.overlay.* xattrs (rootless, in a user namespace).
    #[arg(long)]
    pub userxattr: bool,
    /// Never sync the upper layer (throwaway containers).
    #[arg(long)]
    pub volatile: bool,
    /// Create upper, work and merged when missing.
    #[arg(long)]
    pub mkdir: bool,
    /// Use mount(2) and its one-page option string, not the new mount API.
    #[arg(long)]
    pub legacy: bool,
}

impl MountArgs {
    /// The flags as a [`Spec`].
    pub fn spec(&self) -> Spec {
        let on = |v: Option<OnOff>| v.map(|v| v == OnOff::On);
        Spec {
            lowers: self.lower.iter().flat_map(|s| s.split(':')).filter(|s| !s.is_empty()).map(PathBuf::from).collect(),
            upper: self.upper.clone(),
            work: self.work.clone(),
            options: Options {
                index: on(self.index),
                redirect_dir: self.redirect_dir,
                xino: self.xino,
                metacopy: on(self.metacopy),
                userxattr: self.userxattr,
                volatile: self.volatile,
            },
            create_dirs: self.mkdir,
        }
    }
}

/// `ovl-mount umount`.
#[derive(Args, Debug)]
pub struct UmountArgs {
    /// The mount point.
    pub merged: PathBuf,
    /// Detach now, clean up when no longer used (MNT_DETACH).
    #[arg(long)]
    pub lazy: bool,
}

/// `ovl-mount inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The mount point.
    pub merged: PathBuf,
    /// Print JSON (Docker's GraphDriver.Data names: LowerDir, UpperDir, WorkDir, MergedDir).
    #[arg(long)]
    pub json: bool,
}

/// `ovl-mount which`.
#[derive(Args, Debug)]
pub struct WhichArgs {
    /// The mount point.
    pub merged: PathBuf,
    /// A path inside the overlay (`/etc/passwd` or `etc/passwd`).
    pub path: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `ovl-mount whiteouts`.
#[derive(Args, Debug)]
pub struct WhiteoutsArgs {
    /// The upper directory (or a layer directory).
    pub dir: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run `ovl-mount`.
pub fn run(cli: Cli) -> Result<Exit> {
    let k = cli.common.kernel(TOOL)?;
    match cli.sub {
        Sub::Mount(a) => cmd_mount(&k, &a),
        Sub::Umount(a) => Mounted::existing(&k, &a.merged)?.umount(&k, a.lazy),
        Sub::Inspect(a) => cmd_inspect(&k, &a),
        Sub::Which(a) => cmd_which(&k, &a),
        Sub::Whiteouts(a) => cmd_whiteouts(&k, &a),
    }?;
    Ok(Exit::Ok)
}

fn out(text: &str) -> Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes()).map_err(Error::Output)?;
    o.flush().map_err(Error::Output)
}

fn pretty(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn cmd_mount(k: &Kernel, a: &MountArgs) -> Result<()> {
    let m = super::mount(k, &a.spec(), &a.merged, a.legacy)?;
    if k.mode() == Mode::Live {
        out(&format!("{}\n", m.target.display()))?;
    }
    Ok(())
}

fn cmd_inspect(k: &Kernel, a: &InspectArgs) -> Result<()> {
    let o = super::inspect(k, &a.merged)?;
    if a.json {
        let d = o.graph_driver_data();
        let v = serde_json::json!({
            "GraphDriver": {
                "Name": "overlay",
                "Data": {
                    "LowerDir": d.lower_dir,
                    "UpperDir": d.upper_dir,
                    "WorkDir": d.work_dir,
                    "MergedDir": d.merged_dir,
                }
            },
            "MountId": o.mount_id,
            "Layers": o.lower.len(),
            "Options": o.options,
            "MountOptions": o.mount_options,
        });
        return out(&format!("{}\n", pretty(&v)));
    }
    let mut s = format!("merged  {}\n", o.merged);
    for (i, l) in o.lower.iter().enumerate() {
        s.push_str(&format!("lower{}  {}\n", i + 1, l));
    }
    s.push_str(&format!("upper   {}\n", o.upper.as_deref().unwrap_or("-  (read-only overlay)")));
    s.push_str(&format!("work    {}\n", o.work.as_deref().unwrap_or("-")));
    s.push_str(&format!(
        "options {}\n",
        [o.mount_options.clone()].into_iter().chain(o.options.clone()).collect::<Vec<_>>().join(",")
    ));
    out(&s)
}

fn cmd_which(k: &Kernel, a: &WhichArgs) -> Result<()> {
    let w = super::which(k, &a.merged, &a.path)?;
    if a.json {
        let v =
            serde_json::json!({"path": w.path, "state": w.state, "layer": w.layer, "dir": w.dir, "detail": w.detail});
        return out(&format!("{}\n", pretty(&v)));
    }
    let mut s = format!("{}: {}", w.path, w.state);
    if let (Some(l), Some(d)) = (&w.layer, &w.dir) {
        s.push_str(&format!(" ({l} {d})"));
    }
    if let Some(d) = &w.detail {
        s.push_str(&format!("; {d}"));
    }
    s.push('\n');
    out(&s)
}

fn cmd_whiteouts(k: &Kernel, a: &WhiteoutsArgs) -> Result<()> {
    let v = super::whiteouts(k, Path::new(&a.dir))?;
    if a.json {
        return out(&format!("{}\n", pretty(&v)));
    }
    let mut s = String::new();
    for m in &v {
        s.push_str(&format!("{} {}\n", m.kind, m.path));
    }
    out(&s)
}
