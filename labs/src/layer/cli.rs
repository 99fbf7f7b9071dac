//! `layer-diff`'s command line: flags → paths and options → operation → printed result.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::{apply, decompress, diff, diff_tree, pack_to_file, ApplyOptions, PackOptions, Staging, TOOL};
use crate::cli::CommonOpts;
use crate::error::{Error, Result};
use crate::exit::{Exit, Role};
use crate::kernel::{Kernel, Mode};

/// Show a layer's diff, pack an upper directory into an OCI layer, or apply one.
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
    /// How failures exit: `layer-diff` runs no command, so always as a tool (1).
    pub fn role(&self) -> Role {
        Role::Tool
    }
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Sub {
    /// Print the changes as `docker diff` does (A added, C changed, D deleted).
    Diff(DiffArgs),
    /// Pack an upper directory into an OCI layer tarball; print its diff_id and digest.
    Pack(PackArgs),
    /// Extract a layer into a directory, applying its whiteouts.
    Apply(ApplyArgs),
}

/// `layer-diff diff`.
#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The overlay upper directory (or, with --tree, the OLD directory).
    pub upper: PathBuf,
    /// With --tree: the NEW directory.
    pub new: Option<PathBuf>,
    /// The lower layers, top first, colon-separated (as overlayfs' lowerdir).
    #[arg(long, value_name = "L1:L2...")]
    pub lower: Option<String>,
    /// Compare two plain directories, OLD and NEW, instead of an upper with its lowers.
    #[arg(long, conflicts_with = "lower")]
    pub tree: bool,
    /// Print JSON (a list of {kind, path}).
    #[arg(long)]
    pub json: bool,
}

/// `layer-diff pack`.
#[derive(Args, Debug)]
pub struct PackArgs {
    /// The upper directory (or any directory) to pack.
    pub upper: PathBuf,
    /// Where to write the layer; `.gz`/`.tgz` means gzip, anything else a plain tar.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Clamp every mtime to at most this Unix time, for reproducible layers
    /// (default: $SOURCE_DATE_EPOCH when set).
    #[arg(long, value_name = "EPOCH", env = "SOURCE_DATE_EPOCH")]
    pub clamp_mtime: Option<i64>,
    /// gzip level 0-9 (default 6, as gzip and docker).
    #[arg(long, value_name = "N", default_value_t = 6, value_parser = clap::value_parser!(u32).range(0..=9))]
    pub level: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `layer-diff apply`.
#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// The layer: a tar, possibly gzip- or zstd-compressed.
    pub layer: PathBuf,
    /// The directory to extract into (created if missing: filled as .DIR.partial beside
    /// it, renamed to DIR when complete).
    pub dir: PathBuf,
    /// Write overlay whiteouts (0/0 devices, opaque xattr) instead of deleting: for a
    /// layer directory that overlayfs will stack.
    #[arg(long)]
    pub overlay: bool,
    /// Do not give entries their recorded owners (default: kept when root).
    #[arg(long)]
    pub no_same_owner: bool,
    /// Refuse device nodes even as root.
    #[arg(long)]
    pub no_devices: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run `layer-diff`.
pub fn run(cli: Cli) -> Result<Exit> {
    let k = cli.common.kernel(TOOL)?;
    match cli.sub {
        Sub::Diff(a) => cmd_diff(&k, a),
        Sub::Pack(a) => cmd_pack(&k, a),
        Sub::Apply(a) => cmd_apply(&k, a),
    }?;
    Ok(Exit::Ok)
}

fn split_lowers(s: &str) -> Vec<PathBuf> {
    s.split(':').filter(|x| !x.is_empty()).map(PathBuf::from).collect()
}

fn out(text: &str) -> Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes()).map_err(Error::Output)?;
    o.flush().map_err(Error::Output)
}

fn cmd_diff(k: &Kernel, a: DiffArgs) -> Result<()> {
    let changes = if a.tree {
        let new = a.new.as_deref().ok_or_else(|| Error::Usage("--tree needs two directories: OLD NEW".into()))?;
        diff_tree(k, &a.upper, new)?
    } else {
        if a.new.is_some() {
            return Err(Error::Usage("one UPPER directory expected (did you mean --tree OLD NEW?)".into()));
        }
        let lowers = a.lower.as_deref().map(split_lowers).unwrap_or_default();
        diff(k, &a.upper, &lowers)?
    };
    if a.json {
        let v: Vec<_> =
            changes.iter().map(|c| serde_json::json!({"kind": c.kind.letter().to_string(), "path": c.path})).collect();
        out(&format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default()))
    } else {
        let mut s = String::new();
        for c in &changes {
            s.push_str(&format!("{} {}\n", c.kind.letter(), c.path));
        }
        out(&s)
    }
}

fn cmd_pack(k: &Kernel, a: PackArgs) -> Result<()> {
    let gzip = a.output.extension().is_some_and(|e| e == "gz" || e == "tgz");
    let opts = PackOptions { clamp_mtime: a.clamp_mtime, gzip_level: if gzip { Some(a.level) } else { None } };
    let p = pack_to_file(k, &a.upper, &a.output, &opts)?;
    if a.json {
        out(&format!("{}\n", serde_json::to_string_pretty(&p).unwrap_or_default()))
    } else {
        out(&format!(
            "diff_id {}\ndigest {}\nsize {}\nentries {}\nwhiteouts {}\n",
            p.diff_id, p.digest, p.size, p.entries, p.whiteouts
        ))
    }
}

fn cmd_apply(k: &Kernel, a: ApplyArgs) -> Result<()> {
    let mut opts = ApplyOptions { overlay_whiteouts: a.overlay, ..ApplyOptions::for_caller(k) };
    if a.no_same_owner {
        opts.same_owner = false;
    }
    if a.no_devices {
        opts.allow_devices = false;
    }
    // Reading the layer the user named: a read, not a change.
    let f = std::fs::File::open(&a.layer)
        .map_err(|e| Error::failed(format!("cannot open the layer {}: {e}", a.layer.display()), "check the path"))?;
    let fresh = std::fs::symlink_metadata(&a.dir).is_err();
    let stats = if fresh && k.mode() == Mode::Live {
        // A new directory: filled beside it, renamed when complete (a killed run
        // leaves only .DIR.partial, which the next run removes).
        let st = Staging::begin(k, &a.dir)?;
        match decompress(f).and_then(|r| apply(k, r, &st.path, &opts)) {
            Ok(s) => {
                st.commit(k)?;
                s
            }
            Err(e) => {
                k.note(format!("removing {} (created by this run) after the failure", st.path.display()));
                st.abort(k)?;
                return Err(e);
            }
        }
    } else {
        // An existing directory: a refused layer is taken back by apply itself.
        decompress(f).and_then(|r| apply(k, r, &a.dir, &opts))?
    };
    if a.json {
        out(&format!("{}\n", serde_json::to_string_pretty(&stats).unwrap_or_default()))
    } else {
        out(&format!("entries {}\nbytes {}\nwhiteouts {}\n", stats.entries, stats.bytes, stats.whiteouts))
    }
}
