//! What a container changed: `diff`, `commit`, `export`, `import` (and `cp`, in
//! [`super::copy`]).
//!
//! ## The upper directory *is* the container's changes
//!
//! A container's root is an overlay ([`crate::overlay`]): its image's layers, then
//! the init layer (the empty files `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf`
//! are bound onto and the mount points `/proc`, `/sys`, `/dev`), all read-only,
//! and on top one writable directory of its own, `ROOT/overlay/ID/diff`. Every write
//! lands there: a new file is created there; a file of the image written to is first
//! *copied up* there whole (not as a patch); a deleted one leaves a *whiteout*, a
//! character device 0/0 of the same name; a directory replaced by a new one is marked
//! *opaque* (`trusted.overlay.opaque=y`). So what the container changed needs no
//! comparison of trees: it is that directory, whether the container runs (the overlay
//! is mounted) or not (the directory is still there, unmounted).
//!
//! - `mini diff` walks the upper directory only, and looks up each entry it finds in
//!   the lowers ([`crate::layer::diff`]): `A` not in the image, `C` in it, `D` a
//!   whiteout, every directory holding a change printed `C` before its content. Its
//!   cost follows the size of the changes, not of the image. The init layer is a
//!   lower too, so what it holds (the files bound onto /etc, the mount points) never
//!   shows, as with docker; nor do the container's volume, bind and tmpfs mount
//!   points.
//! - `mini commit` packs that same directory into an OCI layer
//!   ([`crate::layer::pack`]: whiteouts become `.wh.NAME` entries, opaque directories
//!   `.wh..wh..opq`, gzip), so it takes time for the changes only. With `--pause`
//!   (docker's default) the container's cgroup is frozen meanwhile, so no file is
//!   half-written in the layer. A commit adds to the image: one layer (none if
//!   nothing changed), one history entry (`created_by` the container's command, as
//!   docker writes it; `comment` `-m`; `author` `-a`), and a configuration: the
//!   container's (its command, environment, user, working directory, labels, ports),
//!   with the `-c` changes applied as Dockerfile instructions
//!   ([`crate::image::compose`] stores it).
//! - `mini export` is the other view: the merged tree, flat, as one tar (no layers,
//!   no whiteouts: what the container sees at `/`, its volumes excepted). A stopped
//!   container's overlay is mounted read-only for the command (its upper directory
//!   as the top lower) and unmounted after.
//! - `mini import` makes a one-layer image of such a tar. The tar is untrusted: it is
//!   extracted with the layer lab's rules ([`crate::layer::apply`]: no path leaves
//!   the directory, through `..`, an absolute name or a symlink; no device nodes; no
//!   entry larger than the free space) into a directory of the store's `tmp/`, then
//!   packed again from there, so the image holds exactly what was checked. A refused
//!   tar leaves no image, no blob and no directory behind.
//!
//! On the other storage driver (`--storage-driver devicemapper`, [`super::devmapper`])
//! there is no upper directory: a container's root is a thin snapshot, and `diff` and
//! `commit` compare it with its init layer's snapshot, both walked whole (docker's
//! "naive diff", which it used for that driver too).

use std::io::{Read, Write};
use std::path::Path;

use clap::{ArgAction, Args, Subcommand};
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::image::compose::{compose, Compose, NewLayer, Step};
use crate::image::{Image, Reference, Store};
use crate::kernel::{Kernel, Mode};
use crate::layer::{self, Change};

use super::copy::{self, CpSpec, Endpoint, Root, TarOut, View};
use super::state::{Container, Containers};

/// `diff`, `commit`, `export`, `import`, `cp`.
#[derive(Subcommand, Debug)]
pub enum Cmds {
    /// Inspect changes to files or directories on a container's filesystem.
    Diff {
        /// The container.
        container: String,
    },
    /// Create a new image from a container's changes.
    Commit(CommitArgs),
    /// Export a container's filesystem as a tar archive.
    Export {
        /// Write to a file, instead of STDOUT.
        #[arg(short, long, value_name = "FILE")]
        output: Option<String>,
        /// The container.
        container: String,
    },
    /// Import the contents from a tarball to create a filesystem image.
    Import {
        /// Apply Dockerfile instruction to the created image.
        #[arg(short, long = "change", value_name = "CHANGE")]
        change: Vec<String>,
        /// Set commit message for imported image.
        #[arg(short, long)]
        message: Option<String>,
        /// The tar (`-`: stdin).
        file: String,
        /// The name to give the image.
        #[arg(value_name = "REPOSITORY[:TAG]")]
        reference: Option<String>,
    },
    /// Copy files/folders between a container and the local filesystem.
    Cp {
        /// Archive mode (copy all uid/gid information).
        #[arg(short, long)]
        archive: bool,
        /// Always follow symbol link in SRC_PATH.
        #[arg(short = 'L', long)]
        follow_link: bool,
        /// Suppress progress output during copy.
        #[arg(short, long)]
        quiet: bool,
        /// `CONTAINER:SRC_PATH`, a host path, or `-`.
        src: String,
        /// `CONTAINER:DEST_PATH`, a host path, or `-`.
        dst: String,
    },
}

/// `commit`'s flags.
#[derive(Args, Debug)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>").
    #[arg(short, long)]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image.
    #[arg(short, long = "change", value_name = "CHANGE")]
    pub change: Vec<String>,
    /// Commit message.
    #[arg(short, long)]
    pub message: Option<String>,
    /// Pause container during commit.
    #[arg(short, long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true")]
    pub pause: bool,
    /// The container.
    pub container: String,
    /// The name to give the image.
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

impl Cmds {
    /// All of them read or change root's files (the store, containers' layers).
    pub fn needs_root(&self) -> bool {
        true
    }

    /// The command's name, as typed (`diff`, `cp`...).
    pub fn name(&self) -> String {
        format!("{self:?}").split(['(', ' ', '{']).next().unwrap_or_default().to_lowercase()
    }
}

fn out(b: &[u8]) -> Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(b).and_then(|_| o.flush()).map_err(Error::Output)
}

/// Run one of the commands (the CLI adapter: flags → spec → operation → print).
pub fn run(k: &Kernel, root: &Path, cmd: &Cmds) -> Result<Exit> {
    let store = Containers::open(k, root)?;
    match cmd {
        Cmds::Diff { container } => {
            let c = super::lifecycle::find(&store, container)?;
            let mut text = String::new();
            for ch in diff(k, &store, &c)? {
                text.push_str(&format!("{} {}\n", ch.kind.letter(), ch.path));
            }
            out(text.as_bytes())?;
        }
        Cmds::Commit(a) => {
            let c = super::lifecycle::find(&store, &a.container)?;
            let spec = CommitSpec {
                author: a.author.clone(),
                message: a.message.clone(),
                changes: a.change.clone(),
                pause: a.pause,
                reference: a.reference.clone(),
            };
            let img = commit(k, root, &store, &c, &spec)?;
            out(format!("{}\n", img.id()).as_bytes())?;
        }
        Cmds::Export { output, container } => {
            let c = super::lifecycle::find(&store, container)?;
            match output {
                Some(f) => export_file(k, &store, &c, Path::new(f))?,
                None => {
                    if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                        return Err(Error::Failed {
                            what: "cowardly refusing to save to a terminal. Use the -o flag or redirect".into(),
                            hint: None,
                        });
                    }
                    let o = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
                    export(k, &store, &c, o)?;
                }
            }
        }
        Cmds::Import { change, message, file, reference } => {
            let spec = ImportSpec {
                changes: change.clone(),
                message: message.clone(),
                reference: reference.clone(),
                // docker's client streams a file as it streams stdin: "Imported from -".
                source: "-".into(),
            };
            let img = if file == "-" {
                import(k, root, std::io::stdin().lock(), &spec)?
            } else {
                let f = std::fs::File::open(file).map_err(|e| {
                    let d = crate::kernel::Errno::from_raw(e.raw_os_error().unwrap_or(0)).desc().to_lowercase();
                    Error::Failed { what: format!("open {file}: {d}"), hint: None }
                })?;
                import(k, root, f, &spec)?
            };
            out(format!("{}\n", img.id()).as_bytes())?;
        }
        Cmds::Cp { archive, follow_link, quiet, src, dst } => {
            let spec = CpSpec {
                src: Endpoint::parse(src),
                dst: Endpoint::parse(dst),
                archive: *archive,
                follow: *follow_link,
            };
            let mut stdin = std::io::stdin().lock();
            let mut stdout = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            let done = copy::cp(k, &store, &spec, &mut stdin, &mut stdout)?;
            stdout.flush().map_err(Error::Output)?;
            if !quiet && spec.dst != Endpoint::Stream && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                eprintln!("Successfully copied {} to {dst}", crate::units::human_size(done.bytes));
            }
        }
    }
    Ok(Exit::Ok)
}

/// `mini diff`: the container's changes, in docker's order (see the module
/// documentation), without its mount points.
pub fn diff(k: &Kernel, store: &Containers, c: &Container) -> Result<Vec<Change>> {
    if c.driver == super::devmapper::NAME {
        // No upper directory there: the driver compares the container's volume with
        // its init layer's (docker's naive diff).
        return super::devmapper::diff(k, &store.paths.root, c);
    }
    let upper = store.paths.layer(&c.id).join("diff");
    let mut lowers = vec![store.paths.init_layer(&c.id).join("diff")];
    lowers.extend(c.layers.iter().map(std::path::PathBuf::from));
    let _s = k.scope(layer::TOOL);
    k.note(format!(
        "the container's changes are its upper directory {}: walked, each entry looked up in the {} lowers",
        upper.display(),
        lowers.len()
    ));
    let all = layer::diff(k, &upper, &lowers)?;
    let mounts: Vec<String> = c.mounts.iter().map(|m| m.destination.trim_end_matches('/').to_string()).collect();
    Ok(all
        .into_iter()
        .filter(|ch| !mounts.iter().any(|m| ch.path == *m || ch.path.starts_with(&format!("{m}/"))))
        .collect())
}

/// `mini commit`, as plain data.
#[derive(Debug, Clone, Default)]
pub struct CommitSpec {
    /// `-a`.
    pub author: Option<String>,
    /// `-m`.
    pub message: Option<String>,
    /// `-c`: Dockerfile instructions (`CMD`, `ENV`, `EXPOSE`...).
    pub changes: Vec<String>,
    /// `--pause`: freeze the container while its layer is packed.
    pub pause: bool,
    /// `REPOSITORY[:TAG]`.
    pub reference: Option<String>,
}

/// docker's `container.Config` of a container: what a commit starts from.
fn container_config(c: &Container, volumes: &[String]) -> Map<String, Value> {
    let cfg = &c.config;
    let mut m = empty_config();
    let set = |m: &mut Map<String, Value>, k: &str, v: Value| {
        m.insert(k.into(), v);
    };
    set(&mut m, "Hostname", json!(cfg.hostname));
    set(&mut m, "User", json!(cfg.user));
    set(&mut m, "Tty", json!(cfg.tty));
    set(&mut m, "OpenStdin", json!(cfg.open_stdin));
    set(&mut m, "AttachStdin", json!(cfg.open_stdin));
    set(&mut m, "AttachStdout", json!(true));
    set(&mut m, "AttachStderr", json!(true));
    set(&mut m, "StdinOnce", json!(cfg.open_stdin));
    if !cfg.exposed_ports.is_empty() {
        let p: Map<String, Value> = cfg.exposed_ports.iter().map(|p| (p.clone(), json!({}))).collect();
        set(&mut m, "ExposedPorts", Value::Object(p));
    }
    set(&mut m, "Env", json!(cfg.env));
    set(&mut m, "Cmd", if cfg.cmd.is_empty() { Value::Null } else { json!(cfg.cmd) });
    set(&mut m, "Image", json!(cfg.image));
    if !volumes.is_empty() {
        let v: Map<String, Value> = volumes.iter().map(|p| (p.clone(), json!({}))).collect();
        set(&mut m, "Volumes", Value::Object(v));
    }
    set(&mut m, "WorkingDir", json!(cfg.working_dir));
    set(&mut m, "Entrypoint", if cfg.entrypoint.is_empty() { Value::Null } else { json!(cfg.entrypoint) });
    set(&mut m, "Labels", json!(cfg.labels));
    if !cfg.stop_signal.is_empty() && cfg.stop_signal != "SIGTERM" {
        set(&mut m, "StopSignal", json!(cfg.stop_signal));
    }
    m
}

/// An empty docker `container.Config`, as docker writes one.
pub(crate) fn empty_config() -> Map<String, Value> {
    let v = json!({
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": false, "AttachStdout": false,
        "AttachStderr": false, "Tty": false, "OpenStdin": false, "StdinOnce": false, "Env": null,
        "Cmd": null, "Image": "", "Volumes": null, "WorkingDir": "", "Entrypoint": null,
        "OnBuild": null, "Labels": null,
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Split `KEY=VALUE KEY2="a b"` (docker's ENV and LABEL) into pairs, quotes removed.
fn pairs(s: &str) -> Vec<(String, String)> {
    let mut words = vec![];
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    let mut chars = s.chars().peekable();
    while let Some(ch) = chars.next() {
        match (quote, ch) {
            (None, '"' | '\'') => {
                quote = Some(ch);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    any = true;
                }
            }
            (None, c) if c.is_whitespace() => {
                if any {
                    words.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (_, c) => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(cur);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (w, String::new()),
        })
        .collect()
}

/// A Dockerfile instruction's arguments: a JSON array (exec form), else the shell
/// form `["/bin/sh", "-c", text]`.
fn command_form(rest: &str) -> Vec<String> {
    if let Ok(v) = serde_json::from_str::<Vec<String>>(rest.trim()) {
        return v;
    }
    vec!["/bin/sh".into(), "-c".into(), rest.trim().to_string()]
}

/// Apply `-c`/`--change` instructions to a `container.Config`, as docker's
/// `BuildFromConfig` does: `CMD`, `ENTRYPOINT` (which drops a command not set by the
/// same changes), `ENV`, `EXPOSE`, `LABEL`, `USER`, `VOLUME`, `WORKDIR`,
/// `STOPSIGNAL`.
pub fn apply_changes(cfg: &mut Map<String, Value>, changes: &[String]) -> Result<()> {
    let mut cmd_set = false;
    for ch in changes {
        let t = ch.trim();
        let (word, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
        let rest = rest.trim();
        let bad = |why: &str| Error::Failed {
            what: format!("Error response from daemon: dockerfile parse error line 1: {why}"),
            hint: None,
        };
        match word.to_ascii_uppercase().as_str() {
            "CMD" => {
                cfg.insert("Cmd".into(), json!(command_form(rest)));
                cmd_set = true;
            }
            "ENTRYPOINT" => {
                cfg.insert("Entrypoint".into(), json!(command_form(rest)));
                if !cmd_set {
                    cfg.insert("Cmd".into(), Value::Null);
                }
            }
            "ENV" => {
                let mut kv = pairs(rest);
                if !rest.split_whitespace().next().unwrap_or("").contains('=') {
                    // The legacy form: `ENV KEY value with spaces`.
                    let (k, v) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                    kv = vec![(k.to_string(), v.trim().to_string())];
                }
                if kv.is_empty() {
                    return Err(bad("ENV requires at least one argument"));
                }
                let mut env: Vec<String> =
                    cfg.get("Env").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
                for (k, v) in kv {
                    env.retain(|e| e.split('=').next() != Some(k.as_str()));
                    env.push(format!("{k}={v}"));
                }
                cfg.insert("Env".into(), json!(env));
            }
            "LABEL" => {
                let kv = pairs(rest);
                if kv.is_empty() {
                    return Err(bad("LABEL requires at least one argument"));
                }
                let mut labels: Map<String, Value> = match cfg.get("Labels") {
                    Some(Value::Object(m)) => m.clone(),
                    _ => Map::new(),
                };
                for (k, v) in kv {
                    labels.insert(k, json!(v));
                }
                cfg.insert("Labels".into(), Value::Object(labels));
            }
            "EXPOSE" => {
                let mut ports: Map<String, Value> = match cfg.get("ExposedPorts") {
                    Some(Value::Object(m)) => m.clone(),
                    _ => Map::new(),
                };
                for p in rest.split_whitespace() {
                    let p = if p.contains('/') { p.to_string() } else { format!("{p}/tcp") };
                    ports.insert(p, json!({}));
                }
                cfg.insert("ExposedPorts".into(), Value::Object(ports));
            }
            "VOLUME" => {
                let paths: Vec<String> = serde_json::from_str(rest)
                    .unwrap_or_else(|_| rest.split_whitespace().map(str::to_string).collect());
                let mut vols: Map<String, Value> = match cfg.get("Volumes") {
                    Some(Value::Object(m)) => m.clone(),
                    _ => Map::new(),
                };
                for p in paths {
                    vols.insert(p, json!({}));
                }
                cfg.insert("Volumes".into(), Value::Object(vols));
            }
            "USER" => {
                cfg.insert("User".into(), json!(rest));
            }
            "WORKDIR" => {
                let old = cfg.get("WorkingDir").and_then(Value::as_str).unwrap_or("").to_string();
                let new = if rest.starts_with('/') {
                    rest.to_string()
                } else {
                    format!("{}/{rest}", if old.is_empty() { "" } else { old.trim_end_matches('/') })
                };
                cfg.insert("WorkingDir".into(), json!(new));
            }
            "STOPSIGNAL" => {
                cfg.insert("StopSignal".into(), json!(rest));
            }
            "" => return Err(bad("an empty change")),
            w if ["ADD", "ARG", "COPY", "FROM", "MAINTAINER", "RUN", "SHELL", "ONBUILD", "HEALTHCHECK"]
                .contains(&w) =>
            {
                return Err(Error::Failed {
                    what: format!("Error response from daemon: {w} is not a valid change command"),
                    hint: None,
                })
            }
            w => return Err(bad(&format!("unknown instruction: {w}"))),
        }
    }
    Ok(())
}

/// docker's `merge(userConf, imageConf)`: what the changes left unset is the
/// container's.
fn merge(user: &mut Map<String, Value>, ctr: &Map<String, Value>) {
    let empty = |v: Option<&Value>| match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        _ => false,
    };
    for key in ["User", "WorkingDir", "StopSignal"] {
        if empty(user.get(key)) {
            if let Some(v) = ctr.get(key) {
                user.insert(key.into(), v.clone());
            }
        }
    }
    for key in ["ExposedPorts", "Volumes", "Labels"] {
        let mut m = match user.get(key) {
            Some(Value::Object(o)) => o.clone(),
            _ => Map::new(),
        };
        if let Some(Value::Object(o)) = ctr.get(key) {
            for (k, v) in o {
                m.entry(k.clone()).or_insert(v.clone());
            }
        }
        if !m.is_empty() {
            user.insert(key.into(), Value::Object(m));
        }
    }
    let mut env: Vec<String> = user.get("Env").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
    let theirs: Vec<String> = ctr.get("Env").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
    for e in theirs {
        let key = e.split('=').next().unwrap_or_default().to_string();
        if !env.iter().any(|u| u.split('=').next() == Some(key.as_str())) {
            env.push(e);
        }
    }
    user.insert("Env".into(), json!(env));
    if empty(user.get("Entrypoint")) {
        if empty(user.get("Cmd")) {
            user.insert("Cmd".into(), ctr.get("Cmd").cloned().unwrap_or(Value::Null));
        }
        if matches!(user.get("Entrypoint"), None | Some(Value::Null)) {
            user.insert("Entrypoint".into(), ctr.get("Entrypoint").cloned().unwrap_or(Value::Null));
        }
    }
}

fn reference(s: &str) -> Result<String> {
    let r = Reference::parse(s).map_err(|e| Error::Failed {
        what: format!("invalid reference format: {e}"),
        hint: Some("name it REPOSITORY[:TAG], lowercase".into()),
    })?;
    if r.digest.is_some() {
        return Err(Error::Failed {
            what: "refusing to create a tag with a digest reference".into(),
            hint: Some("name it REPOSITORY[:TAG]".into()),
        });
    }
    Ok(r.to_string())
}

/// Freezes a running container while it lives (`commit --pause`), thawed on drop,
/// also after a failure.
struct Paused<'a> {
    k: &'a Kernel,
    store: &'a Containers<'a>,
    id: String,
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        if let Ok(c) = self.store.load(&self.id) {
            if let Err(e) = super::lifecycle::unpause(self.k, self.store, &c) {
                self.k.note(format!("could not thaw the container after the commit: {e}"));
            }
        }
    }
}

/// What a new layer is packed from.
pub(crate) enum Source<'a> {
    /// A directory holding exactly the changes (an overlay upper directory, a tree).
    Dir(&'a Path),
    /// A devicemapper container: its volume, compared with its init layer's.
    Devmapper(&'a Path, &'a Container),
}

/// Pack a new gzip layer in the store's tmp/ (removed again on failure).
pub(crate) fn pack_layer(k: &Kernel, st: &Store, from: Source) -> Result<NewLayer> {
    let (tmp, f) = st.create_temp(k, "layer")?;
    let Some(f) = f else {
        return Err(Error::failed("a dry run packs nothing", "run without --dry-run"));
    };
    let _s = k.scope(layer::TOOL);
    let opts = layer::PackOptions { clamp_mtime: None, gzip_level: Some(6) };
    let w = std::io::BufWriter::with_capacity(1 << 20, f);
    let packed = match from {
        Source::Dir(dir) => layer::pack(k, dir, w, &opts),
        Source::Devmapper(root, c) => super::devmapper::pack(k, root, c, w, &opts),
    };
    match packed {
        Ok(p) => Ok(NewLayer {
            tmp,
            digest: p.digest,
            diff_id: p.diff_id,
            size: p.size,
            tar_size: p.tar_size,
            empty: p.entries == 0,
        }),
        Err(e) => {
            let _ = k.unlink(&tmp);
            Err(e)
        }
    }
}

/// `mini commit`: a new image of the container's image and its upper directory
/// (see the module documentation).
pub fn commit(k: &Kernel, root: &Path, store: &Containers, c: &Container, spec: &CommitSpec) -> Result<Image> {
    let name = spec.reference.as_deref().map(reference).transpose()?;
    let _s = k.scope(crate::image::TOOL);
    let st = Store::open(k, root, true)?;
    let parent = st.resolve(&c.config.image_id).map_err(|_| Error::Failed {
        what: format!(
            "Error response from daemon: the image {} of container {} is no longer in the store",
            c.config.image_id,
            c.short_id()
        ),
        hint: Some("pull it again, then commit".into()),
    })?;
    let ctr = container_config(c, &parent.config.config.volumes);
    let mut cfg = ctr.clone();
    apply_changes(&mut cfg, &spec.changes)?;
    merge(&mut cfg, &ctr);
    let upper = store.paths.layer(&c.id).join("diff");
    let layer = {
        let _paused = if spec.pause && c.state.status == super::state::Status::Running {
            super::lifecycle::pause(k, store, c)?;
            Some(Paused { k, store, id: c.id.clone() })
        } else {
            None
        };
        match c.driver == super::devmapper::NAME {
            true => pack_layer(k, &st, Source::Devmapper(&store.paths.root, c))?,
            false => pack_layer(k, &st, Source::Dir(&upper))?,
        }
    };
    let mut extra = Map::new();
    extra.insert("container".into(), json!(c.id));
    extra.insert("container_config".into(), Value::Object(ctr));
    let made = Compose {
        parent: Some(&parent),
        layer,
        config: Value::Object(cfg),
        step: Step {
            created: crate::units::rfc3339(crate::units::now_nanos()),
            created_by: Some(c.config.cmd.join(" ")),
            comment: spec.message.clone().filter(|m| !m.is_empty()),
            author: spec.author.clone().filter(|a| !a.is_empty()),
        },
        extra,
        name,
        annotations: Default::default(),
    };
    compose(k, &st, &made)
}

/// `mini export`: the container's merged tree as one tar on `w`; returns the
/// number of entries.
pub fn export(k: &Kernel, store: &Containers, c: &Container, w: impl Write) -> Result<u64> {
    let root = Root::container(k, store, c, View::Rootfs, false)?;
    let top = root.locate("/", false)?;
    let mut t = TarOut::new(k, w);
    t.add(&top.dir, &top.shown, &top.name, "", "/")?;
    let n = t.entries;
    t.finish()?.flush().map_err(Error::Output)?;
    k.note(format!(
        "exported {n} entries of {} (per entry fstatat/openat/getdents64: counted, not printed)",
        root.shown
    ));
    Ok(n)
}

/// [`export`] into the file `out`: written beside it, then renamed over it.
pub fn export_file(k: &Kernel, store: &Containers, c: &Container, out: &Path) -> Result<()> {
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = out.with_file_name(format!(".{name}.partial"));
    let what = "create the archive beside its final name";
    let f = match k.create_new(&tmp, 0o644, what) {
        Err(e) if e.errno == crate::kernel::Errno::EEXIST => {
            k.why("left by an earlier export that did not finish");
            k.unlink(&tmp)?;
            k.create_new(&tmp, 0o644, what)?
        }
        Err(e) => {
            return Err(Error::Failed {
                what: format!("failed to export container: open {}: {}", out.display(), e.errno.desc()),
                hint: None,
            })
        }
        Ok(f) => f,
    };
    let Some(f) = f else { return Ok(()) };
    match export(k, store, c, std::io::BufWriter::with_capacity(1 << 20, f)) {
        Ok(_) => {
            k.rename_over(&tmp, out)?;
            Ok(())
        }
        Err(e) => {
            let _ = k.unlink(&tmp);
            Err(e)
        }
    }
}

/// `mini import`, as plain data.
#[derive(Debug, Clone, Default)]
pub struct ImportSpec {
    /// `-c`.
    pub changes: Vec<String>,
    /// `-m` (docker's default: `Imported from SOURCE`).
    pub message: Option<String>,
    /// `REPOSITORY[:TAG]`.
    pub reference: Option<String>,
    /// Where the tar came from (`-`, a file).
    pub source: String,
}

/// `mini import`: a one-layer image of the tar `input` (see the module
/// documentation).
pub fn import(k: &Kernel, root: &Path, input: impl Read, spec: &ImportSpec) -> Result<Image> {
    let name = spec.reference.as_deref().map(reference).transpose()?;
    let mut cfg = empty_config();
    apply_changes(&mut cfg, &spec.changes)?;
    let _s = k.scope(crate::image::TOOL);
    let st = Store::open(k, root, true)?;
    if k.mode() == Mode::DryRun {
        return Err(Error::failed("import writes into the store", "run it without --dry-run"));
    }
    let stage = st.temp_path("import");
    k.why("the tar is extracted here first: only what the layer lab accepts goes into the image")
        .mkdir(&stage, 0o755)?;
    let made = (|| -> Result<NewLayer> {
        let _l = k.scope(layer::TOOL);
        let opts = layer::ApplyOptions { overlay_whiteouts: false, same_owner: true, allow_devices: false };
        layer::apply(k, layer::decompress(input)?, &stage, &opts)?;
        drop(_l);
        pack_layer(k, &st, Source::Dir(&stage))
    })();
    let _ = super::resources::remove_tree(k, &stage);
    let layer = made?;
    let msg = spec.message.clone().unwrap_or_else(|| format!("Imported from {}", spec.source));
    let created = crate::units::rfc3339(crate::units::now_nanos());
    let mut extra = Map::new();
    extra.insert("comment".into(), json!(msg));
    let c = Compose {
        parent: None,
        layer,
        config: Value::Object(cfg),
        step: Step { created, created_by: None, comment: Some(msg), author: None },
        extra,
        name,
        annotations: Default::default(),
    };
    compose(k, &st, &c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg_with(changes: &[&str]) -> Map<String, Value> {
        let mut c = empty_config();
        c.insert("Cmd".into(), json!(["bash"]));
        c.insert("Env".into(), json!(["PATH=/bin", "A=0"]));
        let ch: Vec<String> = changes.iter().map(|s| s.to_string()).collect();
        apply_changes(&mut c, &ch).unwrap();
        c
    }

    #[test]
    fn changes_are_dockerfile_instructions() {
        let c = cfg_with(&["CMD ls -l", "ENV A=1 B=\"two words\"", "EXPOSE 80 53/udp", "WORKDIR /srv", "WORKDIR app"]);
        assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "ls -l"]));
        assert_eq!(c["Env"], json!(["PATH=/bin", "A=1", "B=two words"]));
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(c["WorkingDir"], json!("/srv/app"));
        let c = cfg_with(&["ENTRYPOINT [\"/bin/echo\", \"hi\"]", "USER 1000", "LABEL a=b c=\"d e\"", "ENV K v w"]);
        assert_eq!(c["Entrypoint"], json!(["/bin/echo", "hi"]));
        assert_eq!(c["Cmd"], Value::Null, "ENTRYPOINT drops the command, as docker does");
        assert_eq!(c["Labels"], json!({"a": "b", "c": "d e"}));
        assert_eq!(c["Env"], json!(["PATH=/bin", "A=0", "K=v w"]));
        let mut c = empty_config();
        let e = apply_changes(&mut c, &["RUN rm -rf /".into()]).unwrap_err();
        assert!(e.to_string().contains("RUN is not a valid change command"), "{e}");
        assert!(apply_changes(&mut c, &["BOGUS x".into()]).is_err());
    }

    #[test]
    fn merge_keeps_the_containers_settings_the_changes_left_alone() {
        let mut ctr = empty_config();
        ctr.insert("Cmd".into(), json!(["sh"]));
        ctr.insert("Env".into(), json!(["PATH=/bin", "X=1"]));
        ctr.insert("User".into(), json!("nobody"));
        let mut user = empty_config();
        user.insert("Env".into(), json!(["X=2"]));
        merge(&mut user, &ctr);
        assert_eq!(user["Cmd"], json!(["sh"]));
        assert_eq!(user["Env"], json!(["X=2", "PATH=/bin"]));
        assert_eq!(user["User"], json!("nobody"));
    }
}
