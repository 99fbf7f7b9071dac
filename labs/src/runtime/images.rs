//! mini's image commands, as docker's: `pull`, `images`, `rmi`, `tag`, `history`,
//! `save`, `load`, `image inspect`, `image prune`, `system df`, `system prune`.
//!
//! ## What an image is in the store
//!
//! An image is not a directory. In mini's store (an OCI image layout, see
//! [`crate::image::store`]) it is three kinds of blobs, each named by the sha256 of its
//! bytes: a **manifest** listing a **config** and the **layers**. The config is the
//! image: its sha256 is the IMAGE ID `docker images` shows, and it lists the
//! *uncompressed* digests of the layers (`rootfs.diff_ids`, what `docker inspect
//! --format '{{json .RootFS.Layers}}'` prints) and the build steps (`history`). A
//! *name* (`alpine:3.17`) is only a line of `oci/index.json` pointing at a manifest: a
//! tag. `mini tag` adds a line, `mini rmi NAME` takes one away; an image whose last
//! name went is *dangling* (`<none>:<none>`), and `image prune` removes those.
//!
//! Each layer is a tar archive of the files one build step changed. On a first `run`
//! it is extracted once, by diff_id, into `ROOT/layers/HEX`, and every container of
//! every image that has it stacks that same directory in its overlay (docker's
//! overlay2 driver keeps the same thing under `/var/lib/docker/overlay2`). So removing
//! an image removes what no other image and no container still uses: docker's `rmi`
//! prints `Deleted:` for the image and then for each layer that went, by *chain ID* (a
//! layer named together with everything under it: `sha256(PARENT_CHAIN " " DIFF_ID)`),
//! and keeps a layer a container's overlay still stacks even with `-f`.
//!
//! ## What SIZE means
//!
//! `docker images` shows the SIZE of an image as the sum of its layers' *uncompressed*
//! sizes — what its files take once extracted, not what was downloaded (a gzipped
//! alpine is 3.4 MB on the wire and 7.05MB in the SIZE column). Two images sharing a
//! base layer both count it: the column does not add up to the disk's use. `system df`
//! counts each layer once (Images SIZE), says which part is shared (`-v`: SHARED SIZE,
//! UNIQUE SIZE) and what removing unused images would give back (RECLAIMABLE).
//! `history` shows each step with the size of the layer it made (`0B` for steps such as
//! `CMD` that change only the config: `empty_layer`).
//!
//! ## How save and load carry layers
//!
//! `mini save` writes docker's archive format: `manifest.json` (for each image its
//! config file, its `RepoTags` and its layer files, bottom first), the config as
//! `ID.json`, and each layer as an uncompressed `DIFFID/layer.tar` — so the archive's
//! layer files hash to the config's diff_ids, and `docker load` or `podman load` on
//! another machine verifies them and gets the same IMAGE ID. `mini load` reads any such
//! archive (docker's, podman's `docker-archive`, ours) and checks, before it keeps
//! anything, that every layer hashes to its diff_id, that no entry of a layer climbs
//! out of the root (`../`, an absolute path, a path through a symlink the layer made,
//! a hard link outside), that no device node comes with it, and that the layers do not
//! inflate beyond the free space of the store's disk (a decompression bomb is stopped
//! there, not inflated to the end). A refused archive leaves the store as it was.

use std::collections::{BTreeMap, HashSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::image::manifest::{Descriptor, Index};
use crate::image::render::{chain_ids, content_size as image_size, docker_inspect, ellipsis, history_steps};
use crate::image::store::{PARENT, REF_NAME, REPO_DIGEST};
use crate::image::{self, Image, Reference, Store};
use crate::kernel::Kernel;
use crate::units::{ago, now_nanos, parse_rfc3339, rfc3339};

use super::cli::{confirm, out, stderr_line};
use super::state::{Container, Containers};
use super::view;

/// The image commands, flattened into mini's command line.
#[derive(Subcommand, Debug)]
pub enum Cmds {
    /// Download an image from a registry.
    Pull {
        /// The image.
        image: String,
    },
    /// List images.
    Images(LsArgs),
    /// Remove one or more images.
    Rmi(RmiArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(TagArgs),
    /// Show the history of an image.
    History(HistoryArgs),
    /// Save one or more images to a tar archive (streamed to stdout by default).
    Save(SaveArgs),
    /// Load an image from a tar archive or stdin.
    Load(LoadArgs),
    /// Manage images.
    Image {
        /// What to do.
        #[command(subcommand)]
        cmd: ImageCmd,
    },
    /// Manage mini's data: disk usage, prune.
    System {
        /// What to do.
        #[command(subcommand)]
        cmd: SystemCmd,
    },
}

/// `mini image ...`.
#[derive(Subcommand, Debug)]
pub enum ImageCmd {
    /// List images.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Remove one or more images.
    #[command(alias = "remove", alias = "rmi")]
    Rm(RmiArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(TagArgs),
    /// Display detailed information on one or more images.
    Inspect {
        /// A Go template (`{{json .RootFS.Layers}}`).
        #[arg(short, long, value_name = "TEMPLATE")]
        format: Option<String>,
        /// Images.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Show the history of an image.
    History(HistoryArgs),
    /// Save one or more images to a tar archive.
    Save(SaveArgs),
    /// Load an image from a tar archive or stdin.
    Load(LoadArgs),
    /// Remove unused images.
    Prune(PruneArgs),
    /// Download an image from a registry.
    Pull {
        /// The image.
        image: String,
    },
}

/// `mini system ...`.
#[derive(Subcommand, Debug)]
pub enum SystemCmd {
    /// Show mini's disk usage.
    Df {
        /// Show detailed information on space usage.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Remove unused data: stopped containers, dangling (or with -a unused) images.
    Prune {
        /// Remove all unused images, not just dangling ones.
        #[arg(short, long)]
        all: bool,
        /// Do not prompt for confirmation.
        #[arg(short, long)]
        force: bool,
        /// Prune anonymous volumes too.
        #[arg(long)]
        volumes: bool,
    },
}

/// `images`, `image ls`.
#[derive(Args, Debug, Clone)]
pub struct LsArgs {
    /// Only show image IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Show all images (by default the intermediate images of builds are hidden).
    #[arg(short, long)]
    pub all: bool,
    /// Show digests.
    #[arg(long)]
    pub digests: bool,
    /// Don't truncate output.
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter output (dangling=true|false, reference=PATTERN).
    #[arg(short, long, value_name = "FILTER")]
    pub filter: Vec<String>,
    /// A Go template per image (`{{.ID}} {{.Size}}`); `table ...` for columns.
    #[arg(long, value_name = "TEMPLATE")]
    pub format: Option<String>,
    /// Only this repository (a pattern with `*`), optionally `:TAG`.
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub repository: Option<String>,
}

/// `rmi`, `image rm`.
#[derive(Args, Debug, Clone)]
pub struct RmiArgs {
    /// Force removal of the image.
    #[arg(short, long)]
    pub force: bool,
    /// Do not delete untagged parents (mini's images have none).
    #[arg(long)]
    pub no_prune: bool,
    /// Images.
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// `tag`.
#[derive(Args, Debug, Clone)]
pub struct TagArgs {
    /// The image: `SOURCE_IMAGE`, optionally `:TAG`.
    pub source: String,
    /// Its new name: `TARGET_IMAGE`, optionally `:TAG`.
    pub target: String,
}

/// `history`.
#[derive(Args, Debug, Clone)]
pub struct HistoryArgs {
    /// Don't truncate output.
    #[arg(long)]
    pub no_trunc: bool,
    /// Print sizes and dates in human readable format (`-H=false`: bytes, RFC 3339).
    #[arg(
        short = 'H',
        long,
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub human: bool,
    /// Only show image IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// A Go template per step; `table ...` for columns.
    #[arg(long, value_name = "TEMPLATE")]
    pub format: Option<String>,
    /// The image.
    pub image: String,
}

/// `save`.
#[derive(Args, Debug, Clone)]
pub struct SaveArgs {
    /// Write to a file, instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Images.
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// `load`.
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// Read from a tar archive file, instead of stdin.
    #[arg(short, long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Suppress the load output.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `image prune`.
#[derive(Args, Debug, Clone)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

impl Cmds {
    /// Whether the command needs root: `system prune` removes containers (their
    /// mounts, cgroups and network namespaces); the rest only change files of the store.
    pub fn needs_root(&self) -> bool {
        matches!(self, Cmds::System { cmd: SystemCmd::Prune { .. } })
    }

    /// The command's name, as typed (for messages).
    pub fn name(&self) -> &'static str {
        match self {
            Cmds::Pull { .. } => "pull",
            Cmds::Images(_) => "images",
            Cmds::Rmi(_) => "rmi",
            Cmds::Tag(_) => "tag",
            Cmds::History(_) => "history",
            Cmds::Save(_) => "save",
            Cmds::Load(_) => "load",
            Cmds::Image { .. } => "image",
            Cmds::System { cmd: SystemCmd::Df { .. } } => "system df",
            Cmds::System { cmd: SystemCmd::Prune { .. } } => "system prune",
        }
    }
}

/// Run one of the image commands.
pub fn run(k: &Kernel, root: &Path, cmd: &Cmds) -> Result<Exit> {
    match cmd {
        Cmds::Pull { image } | Cmds::Image { cmd: ImageCmd::Pull { image } } => pull(k, root, image),
        Cmds::Images(a) | Cmds::Image { cmd: ImageCmd::Ls(a) } => images(k, root, a),
        Cmds::Rmi(a) | Cmds::Image { cmd: ImageCmd::Rm(a) } => rmi(k, root, a),
        Cmds::Tag(a) | Cmds::Image { cmd: ImageCmd::Tag(a) } => tag(k, root, a),
        Cmds::History(a) | Cmds::Image { cmd: ImageCmd::History(a) } => history(k, root, a),
        Cmds::Save(a) | Cmds::Image { cmd: ImageCmd::Save(a) } => save(k, root, a),
        Cmds::Load(a) | Cmds::Image { cmd: ImageCmd::Load(a) } => load(k, root, a),
        Cmds::Image { cmd: ImageCmd::Inspect { format, images } } => inspect(k, root, format.as_deref(), images),
        Cmds::Image { cmd: ImageCmd::Prune(a) } => image_prune(k, root, a),
        Cmds::System { cmd: SystemCmd::Df { verbose } } => system_df(k, root, *verbose),
        Cmds::System { cmd: SystemCmd::Prune { all, force, volumes } } => system_prune(k, root, *all, *force, *volumes),
    }
}

/// An error as docker's daemon words it (`Error response from daemon: ...`), exit 1.
fn daemon(what: impl std::fmt::Display) -> Error {
    Error::Failed { what: format!("Error response from daemon: {what}"), hint: None }
}

/// docker's `No such image: alpine:latest` (a reference gets its tag).
fn no_such_image(what: &str) -> Error {
    let shown = Reference::parse(what).map(|r| r.familiar()).unwrap_or_else(|_| what.to_string());
    daemon(format!("No such image: {shown}"))
}

/// The first 12 hex digits of a digest.
fn short(d: &str) -> String {
    image::registry::short(d)
}

/// `docker.io/library/alpine:3.17` → `alpine:3.17`.
fn familiar(name: &str) -> String {
    Reference::parse(name).map(|r| r.familiar()).unwrap_or_else(|_| name.to_string())
}

/// A size as docker's tables print an image's or a layer's: three significant digits
/// (Go's `units.HumanSizeWithPrecision(size, 3)`: `7.05MB`, `142MB`, `0B`).
pub fn size3(n: u64) -> String {
    crate::units::human_size_digits(n, 3)
}

/// Rows of fields printed through `--format` (a Go template; `table ...` for headed,
/// aligned columns), or else as `default`'s table. `header` names a field's column.
fn formatted(
    rows: &[Value],
    format: Option<&str>,
    default: &dyn Fn(&[Value]) -> String,
    header: fn(&str) -> String,
) -> Result<String> {
    let Some(f) = format else { return Ok(default(rows)) };
    let fmt = super::template::Format::parse(f)?;
    let lines = rows.iter().map(|r| fmt.render(r)).collect::<Result<Vec<_>>>()?;
    if !fmt.table {
        return Ok(lines.iter().map(|l| format!("{l}\n")).collect());
    }
    let body = f.strip_prefix("table").unwrap_or(f).trim_start().replace("\\t", "\t");
    let heads: Vec<String> = body
        .split('\t')
        .map(|col| {
            let name = col.split("{{.").nth(1).and_then(|r| r.split(['}', ' ']).next()).unwrap_or(col.trim());
            header(name)
        })
        .collect();
    let mut t = vec![heads];
    t.extend(lines.iter().map(|l| l.split('\t').map(str::to_string).collect()));
    Ok(super::template::columns(&t))
}

// ------------------------------------------------------------------ the store's view

/// The containers of the store (none if it has no `containers/` yet).
fn containers(k: &Kernel, root: &Path) -> Result<Vec<Container>> {
    if !root.join("containers").is_dir() {
        return Ok(vec![]);
    }
    Containers::open(k, root)?.all()
}

/// The diff_ids a container's overlay stacks (its `layers`, `ROOT/layers/HEX`), bottom
/// first.
fn container_diff_ids(c: &Container) -> Vec<String> {
    // The record lists them top first, as overlayfs's lowerdir= takes them.
    c.layers
        .iter()
        .rev()
        .filter_map(|p| Path::new(p).file_name().map(|n| format!("sha256:{}", n.to_string_lossy())))
        .collect()
}

/// One image (config digest) and every entry of index.json that names it.
struct Group {
    id: String,
    entries: Vec<Image>,
}

impl Group {
    fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = self.entries.iter().flat_map(|i| i.names.clone()).collect();
        n.sort();
        n.dedup();
        n
    }

    fn first(&self) -> &Image {
        &self.entries[0]
    }

    fn created(&self) -> i128 {
        self.first().config.created.as_deref().and_then(parse_rfc3339).unwrap_or(0)
    }
}

/// The store's images, grouped by image ID, newest first (then by name).
fn groups(st: &Store) -> Result<Vec<Group>> {
    let mut gs: Vec<Group> = vec![];
    for img in st.images()? {
        match gs.iter_mut().find(|g| g.id == img.id()) {
            Some(g) => g.entries.push(img),
            None => gs.push(Group { id: img.id().to_string(), entries: vec![img] }),
        }
    }
    gs.sort_by(|a, b| b.created().cmp(&a.created()).then_with(|| a.names().cmp(&b.names())));
    Ok(gs)
}

// ------------------------------------------------------------------ pull

fn pull(k: &Kernel, root: &Path, image: &str) -> Result<Exit> {
    let r = Reference::parse(image).map_err(|e| Error::Usage(format!("invalid reference format: {e}")))?;
    if super::hello::is_hello(&r) {
        super::hello::make(k, root, &r)?;
        out(&format!(
            "Using default tag: latest\nlatest: made locally from contlab's hello program\nStatus: Image is up to date for {}\n",
            r.familiar()
        ))?;
        return Ok(Exit::Ok);
    }
    let mut report = |l: &str| {
        let _ = out(&format!("{l}\n"));
    };
    let mut p = view::PullPrinter::new(&mut report);
    image::pull(k, root, &r, &image::PullOptions::default(), &mut |e| p.event(e))?;
    {
        let _s = k.scope(image::TOOL);
        let st = Store::open(k, root, true)?;
        record_sizes(k, &st, &st.resolve(&r.to_string())?)?;
    }
    out(&format!("{}\n", r))?;
    Ok(Exit::Ok)
}

/// Record docker's size of each layer of `img` (see [`Store::record_layer_size`]).
pub(crate) fn record_sizes(k: &Kernel, st: &Store, img: &Image) -> Result<()> {
    for (l, d) in img.manifest.layers.iter().zip(&img.config.rootfs.diff_ids) {
        st.record_layer_size(k, l, d)?;
    }
    Ok(())
}

// ------------------------------------------------------------------ images

/// Whether `name` matches `pattern`, `*` and `?` as in a shell (`*` stops at `/`,
/// as docker's `path.Match`).
fn glob(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && n[0] != '/' && go(p, &n[1..])),
            (Some('?'), Some(c)) if *c != '/' => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(&pattern.chars().collect::<Vec<_>>(), &name.chars().collect::<Vec<_>>())
}

/// docker's reference filter: `PATTERN` against the familiar name, `PATTERN:TAG`
/// against name and tag.
fn matches_reference(pattern: &str, name: &str) -> bool {
    let Ok(r) = Reference::parse(name) else { return false };
    let has_tag = pattern.rsplit('/').next().is_some_and(|last| last.contains(':'));
    if has_tag {
        glob(pattern, &r.familiar())
    } else {
        glob(pattern, &r.familiar_name())
    }
}

/// The fields of one `docker images` row (for the table and for `--format`).
fn image_fields(st: &Store, img: &Image, name: Option<&str>, trunc: bool, now: i128) -> Value {
    let (repo, tag) = match name.and_then(|n| Reference::parse(n).ok()) {
        Some(r) => (r.familiar_name(), r.tag.clone().unwrap_or_else(|| "<none>".into())),
        None => ("<none>".into(), "<none>".into()),
    };
    let created = img.config.created.as_deref().and_then(parse_rfc3339);
    let size = image_size(st, img);
    json!({
        "ID": if trunc { short(img.id()) } else { img.id().to_string() },
        "Repository": repo,
        "Tag": tag,
        "Digest": img.desc.annotation(REPO_DIGEST).unwrap_or("<none>"),
        "CreatedSince": created.map(|t| ago(t, now)).unwrap_or_else(|| "N/A".into()),
        "CreatedAt": created.map(created_at).unwrap_or_default(),
        "Size": size3(size),
        "VirtualSize": crate::units::human_size(size),
        "SharedSize": "N/A",
        "UniqueSize": "N/A",
        "Containers": "N/A",
    })
}

/// `2026-12-01 09:12:03 +0000 UTC`, as docker's CreatedAt.
fn created_at(nanos: i128) -> String {
    let s = rfc3339(nanos);
    format!("{} {} +0000 UTC", &s[..10.min(s.len())], s.get(11..19).unwrap_or("00:00:00"))
}

fn image_header(field: &str) -> String {
    match field {
        "ID" => "IMAGE ID".into(),
        "CreatedSince" => "CREATED".into(),
        "CreatedAt" => "CREATED AT".into(),
        "SharedSize" => "SHARED SIZE".into(),
        "UniqueSize" => "UNIQUE SIZE".into(),
        "VirtualSize" => "VIRTUAL SIZE".into(),
        other => other.to_uppercase(),
    }
}

fn images(k: &Kernel, root: &Path, a: &LsArgs) -> Result<Exit> {
    let st = Store::open(k, root, false)?;
    let now = now_nanos();
    let mut dangling: Option<bool> = None;
    let mut patterns: Vec<String> = a.repository.iter().cloned().collect();
    for f in &a.filter {
        match f.split_once('=') {
            Some(("dangling", v)) => {
                dangling = Some(match v.to_lowercase().as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(daemon(format!("Invalid filter 'dangling={v}'"))),
                })
            }
            Some(("reference", v)) => patterns.push(v.to_string()),
            _ => return Err(daemon(format!("invalid filter '{f}'"))),
        }
    }
    let mut rows = vec![];
    // docker's intermediate images (a build's steps): without a name, with a child.
    let parents: HashSet<String> =
        st.index()?.manifests.iter().filter_map(|d| d.annotation(PARENT).map(String::from)).collect();
    for g in groups(&st)? {
        let names = g.names();
        if names.is_empty() && !a.all && parents.contains(&g.id) {
            continue;
        }
        let named: Vec<Option<&str>> =
            if names.is_empty() { vec![None] } else { names.iter().map(|n| Some(n.as_str())).collect() };
        for n in named {
            if dangling.is_some_and(|d| d != n.is_none()) {
                continue;
            }
            if !patterns.is_empty() && !n.is_some_and(|n| patterns.iter().any(|p| matches_reference(p, n))) {
                continue;
            }
            let img = n.and_then(|n| g.entries.iter().find(|i| i.names.iter().any(|x| x == n))).unwrap_or(g.first());
            rows.push(image_fields(&st, img, n, !a.no_trunc, now));
        }
    }
    if a.quiet {
        out(&rows.iter().map(|r| format!("{}\n", r["ID"].as_str().unwrap_or_default())).collect::<String>())?;
        return Ok(Exit::Ok);
    }
    let digests = a.digests;
    let table = move |rows: &[Value]| {
        let mut cols = vec!["Repository", "Tag"];
        if digests {
            cols.push("Digest");
        }
        cols.extend(["ID", "CreatedSince", "Size"]);
        let mut t = vec![cols.iter().map(|c| image_header(c)).collect::<Vec<_>>()];
        for r in rows {
            t.push(cols.iter().map(|c| r[*c].as_str().unwrap_or_default().to_string()).collect());
        }
        super::template::columns(&t)
    };
    out(&formatted(&rows, a.format.as_deref(), &table, image_header)?)?;
    Ok(Exit::Ok)
}

// ------------------------------------------------------------------ rmi

/// One line of what `rmi` and the prunes did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A name taken away (`Untagged: alpine:3.17`).
    Untagged(String),
    /// An image or a layer (chain ID) removed (`Deleted: sha256:…`).
    Deleted(String),
}

/// Whether the image's names are "one reference" in docker's sense: at most one tag,
/// and digest references only of that repository.
fn single_reference(refs: &[String]) -> bool {
    let parsed: Vec<Reference> = refs.iter().filter_map(|r| Reference::parse(r).ok()).collect();
    if parsed.len() <= 1 {
        return parsed.len() == 1;
    }
    let tags: Vec<&Reference> = parsed.iter().filter(|r| r.digest.is_none()).collect();
    if tags.len() > 1 {
        return false;
    }
    let canon: HashSet<String> = parsed.iter().filter(|r| r.digest.is_some()).map(|r| r.name()).collect();
    let single = tags.first().copied().unwrap_or(&parsed[0]);
    canon.len() == 1 && canon.contains(&single.name())
}

/// The index entry of an image without a name (a *dangling* image, `<none>:<none>`):
/// `desc` without its name nor the registry's digest, which went with the name.
fn dangling(desc: &Descriptor) -> Descriptor {
    let mut d = Descriptor::new(&desc.media_type, &desc.digest, desc.size);
    d.annotations = desc.annotations.clone();
    if let Some(a) = d.annotations.as_mut() {
        a.remove(REF_NAME);
        a.remove(REPO_DIGEST);
    }
    d
}

/// Take `name` out of the index.
fn untag(ix: &mut Index, name: &str) {
    ix.manifests.retain(|d| d.annotation(REF_NAME) != Some(name));
}

/// The diff_ids and chain IDs still used once the index is `ix`: by its images, and by
/// the containers' overlays.
fn in_use(st: &Store, ix: &Index, cs: &[Container]) -> (HashSet<String>, HashSet<String>, HashSet<String>) {
    let mut diffs = HashSet::new();
    let mut chains = HashSet::new();
    for d in &ix.manifests {
        if let Ok(img) = st.load_image(d.clone(), vec![]) {
            diffs.extend(img.config.rootfs.diff_ids.iter().cloned());
            chains.extend(chain_ids(&img.config.rootfs.diff_ids));
        }
    }
    let mut held = HashSet::new();
    for c in cs {
        let ds = container_diff_ids(c);
        chains.extend(chain_ids(&ds));
        held.extend(ds.iter().cloned());
        diffs.extend(ds);
    }
    (diffs, chains, held)
}

/// What removing one image did: its lines, and the bytes its removed layers held.
struct Removal {
    records: Vec<Record>,
    reclaimed: u64,
}

/// `docker rmi WHAT` (`force`: `-f`), docker's rules, on the store open for writing:
///
/// - a name untags that name; if it was the image's last one and a container (in any
///   state) uses the image, only `-f` may (`unable to remove repository reference`), and
///   then the image stays, dangling, while a running container uses it, or goes while
///   only stopped ones do (its layers stay for them);
/// - an image ID removes every name and the image: refused while a container runs it
///   (even with `-f`), and without `-f` while a stopped one uses it or its names are in
///   several repositories;
/// - what goes: the image's config and manifest, then each layer (top first, by chain
///   ID) that no other image and no container uses.
fn remove_image(k: &Kernel, st: &Store, cs: &[Container], what: &str, force: bool) -> Result<Removal> {
    let all = st.images()?;
    let img = st.resolve(what).map_err(|_| no_such_image(what))?;
    let id = img.id().to_string();
    let mine: Vec<&Image> = all.iter().filter(|i| i.id() == id).collect();
    let mut refs: Vec<String> = mine.iter().flat_map(|i| i.names.clone()).collect();
    refs.sort();
    refs.dedup();
    let using: Vec<&Container> = cs.iter().filter(|c| c.config.image_id == id).collect();
    let running = using.iter().find(|c| c.state.status.is_up());
    let stopped = using.iter().find(|c| !c.state.status.is_up());
    let mut ix = st.index()?;
    // An image others were built on (a build's step, a base image): names go, the
    // image stays for its children; without a name it cannot be deleted at all.
    let has_children = ix.manifests.iter().any(|d| d.annotation(PARENT) == Some(id.as_str()));
    if has_children && refs.is_empty() {
        return Err(conflict(&id, true, "image has dependent child images".into()));
    }
    let mut records = vec![];
    // The repository digests to untag with the last tag of a repository.
    let repo_digest = |name: &str| -> Option<String> {
        let r = Reference::parse(name).ok()?;
        let d = mine.iter().find(|i| i.names.iter().any(|n| n == name))?.desc.annotation(REPO_DIGEST)?;
        Some(format!("{}@{d}", r.familiar_name()))
    };
    let untag_one = |ix: &mut Index, refs: &mut Vec<String>, records: &mut Vec<Record>, name: &str| {
        untag(ix, name);
        refs.retain(|r| r != name);
        records.push(Record::Untagged(familiar(name)));
        let repo = Reference::parse(name).map(|r| r.name()).unwrap_or_default();
        let tag_left = refs.iter().any(|r| Reference::parse(r).is_ok_and(|r| r.name() == repo && r.digest.is_none()));
        if !tag_left {
            if let Some(d) = repo_digest(name) {
                records.push(Record::Untagged(d));
            }
        }
    };
    let by_name = Reference::parse(what).ok().map(|r| r.to_string()).filter(|n| refs.contains(n));
    let mut quiet = false;
    if let Some(name) = &by_name {
        if !force && single_reference(&refs) {
            if let Some(c) = using.first() {
                return Err(daemon(format!(
                    "conflict: unable to remove repository reference {what:?} (must force) - container {} is using its referenced image {}",
                    c.short_id(),
                    short(&id)
                )));
            }
        }
        untag_one(&mut ix, &mut refs, &mut records, name);
        if !refs.is_empty() {
            st.write_index(k, &ix)?;
            return Ok(Removal { records, reclaimed: 0 });
        }
        quiet = true;
    } else if single_reference(&refs) {
        if let Some(c) = running {
            return Err(conflict(&id, true, format!("image is being used by running container {}", c.short_id())));
        }
        if let (false, Some(c)) = (force, stopped) {
            return Err(conflict(&id, false, format!("image is being used by stopped container {}", c.short_id())));
        }
        for name in refs.clone() {
            untag_one(&mut ix, &mut refs, &mut records, &name);
        }
    }
    let blocked = if let Some(c) = running {
        Some((true, true, format!("image is being used by running container {}", c.short_id())))
    } else if !force && !refs.is_empty() {
        Some((false, false, "image is referenced in multiple repositories".to_string()))
    } else if let (false, Some(c)) = (force, stopped) {
        Some((false, true, format!("image is being used by stopped container {}", c.short_id())))
    } else {
        None
    };
    if let Some((hard, used, why)) = blocked {
        if quiet && (!refs.is_empty() || used) {
            // Untagged only: the image stays, dangling, for the container that runs it.
            if !ix.manifests.iter().any(|d| d.digest == img.desc.digest) {
                ix.manifests.push(dangling(&img.desc));
            }
            st.write_index(k, &ix)?;
            return Ok(Removal { records, reclaimed: 0 });
        }
        return Err(conflict(&id, hard, why));
    }
    for name in refs.clone() {
        untag_one(&mut ix, &mut refs, &mut records, &name);
    }
    if has_children {
        if !ix.manifests.iter().any(|d| d.digest == img.desc.digest) {
            ix.manifests.push(dangling(&img.desc));
        }
        st.write_index(k, &ix)?;
        return Ok(Removal { records, reclaimed: 0 });
    }
    let digests: HashSet<&str> = mine.iter().map(|i| i.desc.digest.as_str()).collect();
    ix.manifests.retain(|d| !digests.contains(d.digest.as_str()));
    // A built image's parents go with it while nothing else holds them: no name, no
    // other child, no container (docker's intermediate images).
    let mut gone = vec![img.clone()];
    while let Some(p) = gone.last().and_then(|g| g.desc.annotation(PARENT)).filter(|p| !p.is_empty()).map(String::from)
    {
        let entries: Vec<&Descriptor> =
            ix.manifests.iter().filter(|d| all.iter().any(|i| i.id() == p && i.desc.digest == d.digest)).collect();
        let held = entries.is_empty()
            || entries.iter().any(|d| d.annotation(REF_NAME).is_some())
            || ix.manifests.iter().any(|d| d.annotation(PARENT) == Some(p.as_str()))
            || cs.iter().any(|c| c.config.image_id == p);
        if held {
            break;
        }
        let Ok(parent) = st.resolve(&p) else { break };
        ix.manifests.retain(|d| d.digest != parent.desc.digest);
        gone.push(parent);
    }
    let (diffs, chains, held) = in_use(st, &ix, cs);
    let mut reclaimed = 0;
    let mut printed: HashSet<String> = HashSet::new();
    for (n, g) in gone.iter().enumerate() {
        records.push(Record::Deleted(g.id().to_string()));
        let g_diffs = &g.config.rootfs.diff_ids;
        // Its own layers (above its parent's); the last one gone: all that are left.
        let below = match gone.get(n + 1) {
            Some(p) => p.config.rootfs.diff_ids.len().min(g_diffs.len()),
            None => 0,
        };
        for (i, ch) in chain_ids(g_diffs).iter().enumerate().rev() {
            if i < below || chains.contains(ch) || !printed.insert(ch.clone()) {
                continue;
            }
            records.push(Record::Deleted(ch.clone()));
            if !diffs.contains(&g_diffs[i]) {
                reclaimed += g.manifest.layers.get(i).map(|l| st.layer_size(l, &g_diffs[i])).unwrap_or(0);
            }
        }
    }
    st.write_index(k, &ix)?;
    st.gc_keeping(k, &ix, &held)?;
    super::devmapper::gc(k, st)?;
    Ok(Removal { records, reclaimed })
}

fn conflict(id: &str, hard: bool, why: String) -> Error {
    let force = if hard { "cannot be forced" } else { "must be forced" };
    daemon(format!("conflict: unable to delete {} ({force}) - {why}", short(id)))
}

fn rmi(k: &Kernel, root: &Path, a: &RmiArgs) -> Result<Exit> {
    let st = {
        let _s = k.scope(image::TOOL);
        Store::open(k, root, true)?
    };
    // Read under the store's lock: a `create` that got its layers is listed.
    let cs = containers(k, root)?;
    let _s = k.scope(image::TOOL);
    let mut failed = false;
    for what in &a.images {
        match remove_image(k, &st, &cs, what, a.force) {
            Ok(r) => {
                let text: String = r
                    .records
                    .iter()
                    .map(|l| match l {
                        Record::Untagged(n) => format!("Untagged: {n}\n"),
                        Record::Deleted(d) => format!("Deleted: {d}\n"),
                    })
                    .collect();
                out(&text)?;
            }
            Err(e) if a.images.len() == 1 => return Err(e),
            Err(e) => {
                stderr_line(&e.to_string());
                failed = true;
            }
        }
    }
    Ok(if failed { Exit::Failed } else { Exit::Ok })
}

// ------------------------------------------------------------------ tag, inspect

fn tag(k: &Kernel, root: &Path, a: &TagArgs) -> Result<Exit> {
    let target = Reference::parse(&a.target).map_err(|e| Error::Failed {
        what: format!("Error parsing reference: {:?} is not a valid repository/tag: {e}", a.target),
        hint: None,
    })?;
    if target.digest.is_some() {
        return Err(Error::Failed { what: "refusing to create a tag with a digest reference".into(), hint: None });
    }
    let _s = k.scope(image::TOOL);
    let st = Store::open(k, root, true)?;
    let img = st.resolve(&a.source).map_err(|_| no_such_image(&a.source))?;
    name_image(k, &st, &img, &[target.to_string()])?;
    Ok(Exit::Ok)
}

/// Give `img` the full references `names` (docker's `tag`, and `build -t`): each
/// name leaves the image it was on (which stays, dangling, if it had no other name),
/// and the image's entry without a name, if any, goes.
pub(crate) fn name_image(k: &Kernel, st: &Store, img: &Image, names: &[String]) -> Result<()> {
    let mut ix = st.index()?;
    for name in names {
        let before: Vec<Descriptor> =
            ix.manifests.iter().filter(|d| d.annotation(REF_NAME) == Some(name.as_str())).cloned().collect();
        untag(&mut ix, name);
        for old in before.iter().filter(|d| d.digest != img.desc.digest) {
            if !ix.manifests.iter().any(|d| d.digest == old.digest) {
                ix.manifests.push(dangling(old));
            }
        }
    }
    // A dangling image that gets a name is dangling no more.
    ix.manifests.retain(|d| !(d.digest == img.desc.digest && d.annotation(REF_NAME).is_none()));
    for name in names {
        let mut d = Descriptor::new(&img.desc.media_type, &img.desc.digest, img.desc.size);
        let mut ann: BTreeMap<String, String> = img.desc.annotations.clone().unwrap_or_default();
        ann.insert(REF_NAME.into(), name.clone());
        // The registry's digest belongs to the names it was pulled under only.
        ann.remove(REPO_DIGEST);
        d.annotations = Some(ann);
        ix.manifests.push(d);
    }
    st.write_index(k, &ix)
}

fn inspect(k: &Kernel, root: &Path, format: Option<&str>, images: &[String]) -> Result<Exit> {
    let st = Store::open(k, root, false)?;
    let fmt = format.map(super::template::Format::parse).transpose()?;
    let mut objs = vec![];
    let mut failed = vec![];
    for i in images {
        match st.resolve(i) {
            Ok(img) => objs.push(docker_inspect(&st, &img)),
            Err(_) => failed.push(format!("Error: No such image: {i}")),
        }
    }
    match fmt {
        Some(f) => {
            for o in &objs {
                out(&format!("{}\n", f.render(o)?))?;
            }
        }
        None => out(&format!("{}\n", serde_json::to_string_pretty(&objs).unwrap_or_default()))?,
    }
    // docker prints what it found, then what it did not.
    for e in &failed {
        stderr_line(e);
    }
    Ok(if failed.is_empty() { Exit::Ok } else { Exit::Failed })
}

// ------------------------------------------------------------------ history

fn history_header(field: &str) -> String {
    match field {
        "ID" => "IMAGE".into(),
        "CreatedSince" => "CREATED".into(),
        "CreatedAt" => "CREATED AT".into(),
        "CreatedBy" => "CREATED BY".into(),
        other => other.to_uppercase(),
    }
}

fn history(k: &Kernel, root: &Path, a: &HistoryArgs) -> Result<Exit> {
    let st = Store::open(k, root, false)?;
    let img = st.resolve(&a.image).map_err(|_| no_such_image(&a.image))?;
    let now = now_nanos();
    let steps = history_steps(&st, &img);
    // The image, then its parents as far as the store has them (a built image's
    // steps, and the image it was built FROM): one history entry each.
    let mut chain = vec![img.id().to_string()];
    let mut at = img.clone();
    while let Some(p) = at.desc.annotation(PARENT).filter(|p| !p.is_empty()).map(String::from) {
        let Ok(parent) = st.resolve(&p) else { break };
        chain.push(parent.id().to_string());
        at = parent;
    }
    let rows: Vec<Value> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let id = match (chain.get(i), a.no_trunc) {
                (Some(id), true) => id.clone(),
                (Some(id), false) => short(id),
                (None, _) => "<missing>".into(),
            };
            let t = s.created.as_deref().and_then(parse_rfc3339);
            // Seconds, as docker keeps them: no fraction in RFC 3339.
            let at = t.map(|t| rfc3339(t - t.rem_euclid(1_000_000_000)));
            let by = s.created_by.replace('\t', " ");
            json!({
                "ID": id,
                "CreatedSince": if a.human { t.map(|t| ago(t, now)).unwrap_or_else(|| "N/A".into()) } else { at.clone().unwrap_or_else(|| "N/A".into()) },
                "CreatedAt": at.unwrap_or_else(|| "N/A".into()),
                "CreatedBy": if a.no_trunc { by } else { ellipsis(&by, 45) },
                "Size": if a.human { size3(s.size) } else { s.size.to_string() },
                "Comment": s.comment,
            })
        })
        .collect();
    if a.quiet {
        out(&rows.iter().map(|r| format!("{}\n", r["ID"].as_str().unwrap_or_default())).collect::<String>())?;
        return Ok(Exit::Ok);
    }
    let human = a.human;
    let table = move |rows: &[Value]| {
        let created = if human { "CreatedSince" } else { "CreatedAt" };
        let cols = ["ID", created, "CreatedBy", "Size", "Comment"];
        let mut t = vec![cols.iter().map(|c| history_header(c)).collect::<Vec<_>>()];
        for r in rows {
            t.push(cols.iter().map(|c| r[*c].as_str().unwrap_or_default().to_string()).collect());
        }
        super::template::columns(&t)
    };
    out(&formatted(&rows, a.format.as_deref(), &table, history_header)?)?;
    Ok(Exit::Ok)
}

// ------------------------------------------------------------------ save, load

/// What `docker save NAME...` writes: each image with the tags to give it. A name
/// without a tag saves every tag of that repository; an image ID saves the image
/// without a name.
fn to_save(st: &Store, names: &[String]) -> Result<Vec<(Image, Vec<String>)>> {
    let all = st.images()?;
    let mut v: Vec<(Image, Vec<String>)> = vec![];
    let mut add = |img: Image, tag: Option<String>| match v.iter_mut().find(|(i, _)| i.id() == img.id()) {
        Some((_, tags)) => tags.extend(tag.filter(|t| !tags.contains(t))),
        None => v.push((img, tag.into_iter().collect())),
    };
    for n in names {
        let last = n.rsplit('/').next().unwrap_or(n);
        let name_only = !last.contains(':') && !n.contains('@');
        let asked = Reference::parse(n).ok();
        let repo_images: Vec<&Image> = match &asked {
            Some(r) if name_only => all
                .iter()
                .filter(|i| i.names.iter().any(|x| Reference::parse(x).is_ok_and(|x| x.name() == r.name())))
                .collect(),
            _ => vec![],
        };
        if !repo_images.is_empty() {
            for i in repo_images {
                for x in i
                    .names
                    .iter()
                    .filter(|x| Reference::parse(x).is_ok_and(|x| Some(x.name()) == asked.as_ref().map(|r| r.name())))
                {
                    add(i.clone(), Some(familiar(x)));
                }
            }
            continue;
        }
        let img = st.resolve(n).map_err(|_| daemon(format!("No such image: {n}")))?;
        let by_name = asked.filter(|r| img.names.contains(&r.to_string()) && r.digest.is_none());
        add(img, by_name.map(|r| r.familiar()));
    }
    Ok(v)
}

fn save(k: &Kernel, root: &Path, a: &SaveArgs) -> Result<Exit> {
    if a.output.is_none() && std::io::stdout().is_terminal() {
        return Err(Error::Failed {
            what: "cowardly refusing to save to a terminal. Use the -o flag or redirect".into(),
            hint: None,
        });
    }
    let _s = k.scope(image::TOOL);
    let st = Store::open(k, root, false)?;
    let imgs = to_save(&st, &a.images)?;
    match &a.output {
        Some(o) => {
            if std::fs::metadata(o).is_ok_and(|m| !m.is_file()) {
                return Err(Error::Failed {
                    what: format!("failed to save image: cannot write to {}: not a regular file", o.display()),
                    hint: None,
                });
            }
            let tmp = o.with_extension("tar.partial");
            let f = crate::image::store::create_fresh(k, &tmp, 0o644, "create the archive beside its final name")?;
            let Some(f) = f else { return Ok(Exit::Ok) };
            let mut w = std::io::BufWriter::new(f);
            if let Err(e) = image::archive::save_tagged(k, &st, &imgs, &mut w) {
                drop(w);
                let _ = k.unlink(&tmp);
                return Err(e);
            }
            let f = w.into_inner().map_err(|e| {
                Error::failed(format!("cannot write {}: {}", tmp.display(), e.error()), "check the disk")
            })?;
            k.fsync_file(&f, &tmp)?;
            drop(f);
            k.rename_over(&tmp, o)?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut o = stdout.lock();
            image::archive::save_tagged(k, &st, &imgs, &mut o)?;
        }
    }
    Ok(Exit::Ok)
}

fn load(k: &Kernel, root: &Path, a: &LoadArgs) -> Result<Exit> {
    if a.input.is_none() && std::io::stdin().is_terminal() {
        return Err(Error::Failed { what: "requested load from stdin, but stdin is empty".into(), hint: None });
    }
    let _s = k.scope(image::TOOL);
    let st = Store::open(k, root, true)?;
    let before = st.images()?;
    let loaded = match &a.input {
        Some(p) => image::archive::load(k, &st, p)?,
        None => image::archive::load_stream(k, &st, &mut std::io::stdin().lock())?,
    };
    for img in st.images()?.iter().filter(|i| !before.iter().any(|b| b.desc.digest == i.desc.digest)) {
        record_sizes(k, &st, img)?;
    }
    let mut text = String::new();
    let mut ix = st.index()?;
    let mut changed = false;
    for l in &loaded {
        match l {
            image::archive::Loaded::Image(n) => {
                let full = Reference::parse(n).map(|r| r.to_string()).unwrap_or_else(|_| n.clone());
                if let Some(old) = before.iter().find(|i| i.names.contains(&full)) {
                    let now = st.resolve(&full)?;
                    if now.id() != old.id() {
                        text.push_str(&format!(
                            "The image {n} already exists, renaming the old one with ID {} to empty string\n",
                            old.id()
                        ));
                        // The old image stays, dangling, as with docker.
                        if !ix.manifests.iter().any(|d| d.digest == old.desc.digest) {
                            ix.manifests.push(dangling(&old.desc));
                            changed = true;
                        }
                    }
                }
                text.push_str(&format!("Loaded image: {n}\n"));
            }
            image::archive::Loaded::Id(id) => text.push_str(&format!("Loaded image ID: {id}\n")),
        }
    }
    if changed {
        st.write_index(k, &ix)?;
    }
    if !a.quiet || !text.is_empty() {
        out(&text)?;
    }
    Ok(Exit::Ok)
}

// ------------------------------------------------------------------ prune

/// Remove dangling images (untagged), or with `all` every image no container uses:
/// docker's `image prune` (its lines, and the bytes of the layers that went).
fn prune_images(k: &Kernel, root: &Path, all: bool) -> Result<(Vec<Record>, u64)> {
    let st = {
        let _s = k.scope(image::TOOL);
        Store::open(k, root, true)?
    };
    let cs = containers(k, root)?;
    let _s = k.scope(image::TOOL);
    let used: HashSet<&str> = cs.iter().map(|c| c.config.image_id.as_str()).collect();
    let parents: HashSet<String> =
        st.index()?.manifests.iter().filter_map(|d| d.annotation(PARENT).map(String::from)).collect();
    let mut records = vec![];
    let mut reclaimed = 0;
    for g in groups(&st)? {
        if used.contains(g.id.as_str()) {
            continue;
        }
        let names = g.names();
        let tagged = names.iter().any(|n| Reference::parse(n).is_ok_and(|r| r.digest.is_none()));
        if !all && tagged {
            continue;
        }
        // An intermediate image goes with the image built on it, not on its own.
        if !all && names.is_empty() && parents.contains(&g.id) {
            continue;
        }
        let targets: Vec<String> = if names.is_empty() { vec![g.id.clone()] } else { names };
        for t in targets {
            // A name already gone with the image of an earlier one.
            if st.resolve(&t).is_err() {
                continue;
            }
            match remove_image(k, &st, &cs, &t, false) {
                Ok(r) => {
                    records.extend(r.records);
                    reclaimed += r.reclaimed;
                }
                Err(e) => k.note(format!("not pruned: {e}")),
            }
        }
    }
    if records.is_empty() {
        // Nothing named goes: what interrupted commands left is collected all the same.
        let (_, _, held) = in_use(&st, &st.index()?, &cs);
        st.gc_keeping(k, &st.index()?, &held)?;
    }
    Ok((records, reclaimed))
}

/// `Deleted Images:` and the lines, as docker's prunes print them (lower case).
fn prune_text(records: &[Record]) -> String {
    if records.is_empty() {
        return String::new();
    }
    let mut s = String::from("Deleted Images:\n");
    for r in records {
        match r {
            Record::Untagged(n) => s.push_str(&format!("untagged: {n}\n")),
            Record::Deleted(d) => s.push_str(&format!("deleted: {d}\n")),
        }
    }
    s.push('\n');
    s
}

fn image_prune(k: &Kernel, root: &Path, a: &PruneArgs) -> Result<Exit> {
    let warning = if a.all {
        "WARNING! This will remove all images without at least one container associated to them.\nAre you sure you want to continue?"
    } else {
        "WARNING! This will remove all dangling images.\nAre you sure you want to continue?"
    };
    if !a.force && !confirm(warning) {
        return Ok(Exit::Ok);
    }
    let (records, bytes) = prune_images(k, root, a.all)?;
    out(&format!("{}Total reclaimed space: {}\n", prune_text(&records), crate::units::human_size(bytes)))?;
    Ok(Exit::Ok)
}

/// The bytes of a container's own layer (its overlay upper dir): docker's SizeRw,
/// the sizes of the files in it (a hard-linked file once), directories not counted.
fn size_rw(root: &Path, c: &Container) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut stack = vec![super::state::Paths::new(root).layer(&c.id).join("diff")];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.path().symlink_metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else if seen.insert((m.dev(), m.ino())) {
                total += m.len();
            }
        }
    }
    total
}

/// Local volumes' disk usage, for `system df`: how many there are, how many a
/// container uses, their bytes, and the bytes of the unused ones.
pub fn volumes_usage(k: &Kernel, root: &Path, containers: &[Container]) -> VolumesUsage {
    let vols = super::volumes::Volumes::open(k, root);
    let mut u = VolumesUsage::default();
    for v in vols.all().unwrap_or_default() {
        let links = super::volumes::users(containers, &v.name).len();
        let size = vols.size(&v.name);
        u.total += 1;
        u.size += size;
        if links > 0 {
            u.active += 1;
        } else {
            u.reclaimable += size;
        }
        u.rows.push((v.name.clone(), links, size));
    }
    u
}

/// What [`volumes_usage`] reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumesUsage {
    /// Volumes.
    pub total: usize,
    /// Volumes a container mounts.
    pub active: usize,
    /// Their bytes.
    pub size: u64,
    /// The bytes of the ones no container mounts.
    pub reclaimable: u64,
    /// `system df -v`'s rows: name, links (containers using it), size.
    pub rows: Vec<(String, usize, u64)>,
}

/// `system prune --volumes`: remove the anonymous volumes no container uses (docker
/// 23's rule: named volumes stay); returns their names and bytes.
pub fn prune_volumes(k: &Kernel, root: &Path) -> Result<(Vec<String>, u64)> {
    let vols = super::volumes::Volumes::open(k, root);
    let _l = vols.lock()?;
    let containers = super::state::Containers::open(k, root)?.all()?;
    let (mut names, mut bytes) = (vec![], 0);
    for v in vols.all()? {
        if v.anonymous() && super::volumes::users(&containers, &v.name).is_empty() {
            bytes += vols.size(&v.name);
            vols.remove(&v.name)?;
            names.push(v.name);
        }
    }
    Ok((names, bytes))
}

fn percent(part: u64, total: u64) -> String {
    match (part * 100).checked_div(total) {
        Some(pct) => format!("{} ({pct}%)", crate::units::human_size(part)),
        None => crate::units::human_size(part),
    }
}

/// The images of `system df`: for each, (group, size, shared size, containers using it).
fn image_usage(st: &Store, gs: &[Group], cs: &[Container]) -> (Vec<(u64, u64, usize)>, u64) {
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
    for g in gs {
        let img = g.first();
        for (i, ch) in chain_ids(&img.config.rootfs.diff_ids).into_iter().enumerate() {
            *count.entry(ch.clone()).or_default() += 1;
            sizes.insert(
                ch,
                img.manifest.layers.get(i).map(|l| st.layer_size(l, &img.config.rootfs.diff_ids[i])).unwrap_or(0),
            );
        }
    }
    let total: u64 = sizes.values().sum();
    let per = gs
        .iter()
        .map(|g| {
            let img = g.first();
            let size = image_size(st, img);
            let shared: u64 =
                chain_ids(&img.config.rootfs.diff_ids).iter().filter(|c| count[*c] > 1).map(|c| sizes[c]).sum();
            let users = cs.iter().filter(|c| c.config.image_id == g.id).count();
            (size, shared, users)
        })
        .collect();
    (per, total)
}

fn system_df(k: &Kernel, root: &Path, verbose: bool) -> Result<Exit> {
    let cs = containers(k, root)?;
    let st = Store::open(k, root, false)?;
    let gs = groups(&st)?;
    let (per, images_total) = image_usage(&st, &gs, &cs);
    let active_images = per.iter().filter(|p| p.2 > 0).count();
    let used: u64 = per.iter().filter(|p| p.2 > 0).map(|p| p.0 - p.1.min(p.0)).sum();
    let rw: Vec<u64> = cs.iter().map(|c| size_rw(root, c)).collect();
    let ctr_total: u64 = rw.iter().sum();
    let ctr_reclaim: u64 = cs.iter().zip(&rw).filter(|(c, _)| !c.state.status.is_up()).map(|(_, s)| s).sum();
    let vols = volumes_usage(k, root, &cs);
    let h = crate::units::human_size;
    if !verbose {
        let t = vec![
            vec!["TYPE".into(), "TOTAL".into(), "ACTIVE".into(), "SIZE".into(), "RECLAIMABLE".into()],
            vec![
                "Images".into(),
                gs.len().to_string(),
                active_images.to_string(),
                h(images_total),
                percent(images_total.saturating_sub(used), images_total),
            ],
            vec![
                "Containers".into(),
                cs.len().to_string(),
                cs.iter().filter(|c| c.state.status.is_up()).count().to_string(),
                h(ctr_total),
                percent(ctr_reclaim, ctr_total),
            ],
            vec![
                "Local Volumes".into(),
                vols.total.to_string(),
                vols.active.to_string(),
                h(vols.size),
                percent(vols.reclaimable, vols.size),
            ],
            vec!["Build Cache".into(), "0".into(), "0".into(), "0B".into(), "0B".into()],
        ];
        out(&super::template::columns(&t))?;
        return Ok(Exit::Ok);
    }
    let now = now_nanos();
    let mut text = String::from("Images space usage:\n\n");
    let mut t = vec![["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"]
        .map(String::from)
        .to_vec()];
    for (g, (size, shared, users)) in gs.iter().zip(&per) {
        let names = g.names();
        let named: Vec<Option<&str>> =
            if names.is_empty() { vec![None] } else { names.iter().map(|n| Some(n.as_str())).collect() };
        for n in named {
            let f = image_fields(&st, g.first(), n, true, now);
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
            t.push(vec![
                s("Repository"),
                s("Tag"),
                s("ID"),
                s("CreatedSince"),
                size3(*size),
                size3(*shared),
                size3(size - shared.min(size)),
                users.to_string(),
            ]);
        }
    }
    text.push_str(&super::template::columns(&t));
    text.push_str("\nContainers space usage:\n\n");
    let mut t = vec![["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS", "NAMES"]
        .map(String::from)
        .to_vec()];
    for (c, size) in cs.iter().zip(&rw) {
        let f = view::ps_fields(c, now, true);
        let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
        let vols = c.mounts.iter().filter(|m| m.kind == "volume").count();
        t.push(vec![
            s("ID"),
            s("Image"),
            s("Command"),
            vols.to_string(),
            size3(*size),
            s("RunningFor"),
            s("Status"),
            s("Names"),
        ]);
    }
    text.push_str(&super::template::columns(&t));
    text.push_str("\nLocal Volumes space usage:\n\n");
    let mut t = vec![["VOLUME NAME", "LINKS", "SIZE"].map(String::from).to_vec()];
    for (name, links, size) in &vols.rows {
        t.push(vec![name.clone(), links.to_string(), size3(*size)]);
    }
    text.push_str(&super::template::columns(&t));
    text.push_str("\nBuild cache usage: 0B\n\n");
    text.push_str(&super::template::columns(&[[
        "CACHE ID",
        "CACHE TYPE",
        "SIZE",
        "CREATED",
        "LAST USED",
        "USAGE",
        "SHARED",
    ]
    .map(String::from)
    .to_vec()]));
    out(&text)?;
    Ok(Exit::Ok)
}

fn system_prune(k: &Kernel, root: &Path, all: bool, force: bool, volumes: bool) -> Result<Exit> {
    if !force {
        let mut warn = vec!["all stopped containers", "all networks not used by at least one container"];
        if volumes {
            warn.push("all anonymous volumes not used by at least one container");
        }
        warn.push(if all {
            "all images without at least one container associated to them"
        } else {
            "all dangling images"
        });
        warn.push(if all { "all build cache" } else { "unused build cache" });
        let list: String = warn.iter().map(|w| format!("  - {w}\n")).collect();
        if !confirm(&format!("WARNING! This will remove:\n{list}\nAre you sure you want to continue?")) {
            return Ok(Exit::Ok);
        }
    }
    let mut text = String::new();
    let mut reclaimed = 0;
    let store = Containers::open(k, root)?;
    let mut gone = vec![];
    for c in store.all()?.into_iter().filter(|c| !c.state.status.is_up()) {
        let size = size_rw(root, &c);
        match super::lifecycle::remove(k, &store, &c, false) {
            Ok(()) => {
                gone.push(c.id.clone());
                reclaimed += size;
            }
            Err(e) => stderr_line(&e.to_string()),
        }
    }
    if !gone.is_empty() {
        text.push_str("Deleted Containers:\n");
        for id in &gone {
            text.push_str(&format!("{id}\n"));
        }
        text.push('\n');
    }
    if volumes {
        let (names, bytes) = prune_volumes(k, root)?;
        if !names.is_empty() {
            text.push_str("Deleted Volumes:\n");
            for n in &names {
                text.push_str(&format!("{n}\n"));
            }
            text.push('\n');
        }
        reclaimed += bytes;
    }
    let (records, bytes) = prune_images(k, root, all)?;
    text.push_str(&prune_text(&records));
    reclaimed += bytes;
    out(&format!("{text}Total reclaimed space: {}\n", crate::units::human_size(reclaimed)))?;
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_have_three_digits_as_dockers_tables() {
        assert_eq!(size3(0), "0B");
        assert_eq!(size3(999), "999B");
        assert_eq!(size3(7_049_688), "7.05MB");
        assert_eq!(size3(1_982_298), "1.98MB");
        assert_eq!(size3(5_591_300), "5.59MB");
        assert_eq!(size3(142_000_000), "142MB");
        assert_eq!(size3(77_800_000), "77.8MB");
        assert_eq!(size3(2_560), "2.56kB");
    }

    #[test]
    fn tables_are_gos_tabwriter_with_dockers_settings() {
        let t = crate::runtime::template::columns(&[
            vec!["REPOSITORY".into(), "TAG".into(), "SIZE".into()],
            vec!["bb".into(), "1".into(), "1.98MB".into()],
        ]);
        // As `docker images` prints them: min width 10, padding 3.
        assert_eq!(t, "REPOSITORY   TAG       SIZE\nbb           1         1.98MB\n");
    }

    #[test]
    fn chain_ids_are_dockers() {
        let d = ["sha256:aa".to_string(), "sha256:bb".to_string()];
        let c = chain_ids(&d);
        assert_eq!(c[0], "sha256:aa");
        assert_eq!(c[1], crate::image::registry::sha256_digest(b"sha256:aa sha256:bb"));
    }

    #[test]
    fn references_and_patterns() {
        assert!(single_reference(&["docker.io/library/a:1".into()]));
        assert!(!single_reference(&["docker.io/library/a:1".into(), "docker.io/library/a:2".into()]));
        assert!(!single_reference(&[]));
        assert!(matches_reference("test/ex01", "docker.io/test/ex01:latest"));
        assert!(matches_reference("test/*", "docker.io/test/ex01:latest"));
        assert!(!matches_reference("t*", "docker.io/test/ex01:latest"), "* stops at /");
        assert!(matches_reference("test/ex01:lat*", "docker.io/test/ex01:latest"));
        assert!(!matches_reference("test/ex01:1", "docker.io/test/ex01:latest"));
        assert_eq!(ellipsis(&"x".repeat(50), 45).chars().count(), 45);
    }

    #[test]
    fn history_takes_h_false_as_docker() {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(subcommand)]
            c: Cmds,
        }
        for (args, human) in [
            (&["t", "history", "x"][..], true),
            (&["t", "history", "-H=false", "x"], false),
            (&["t", "history", "--human=false", "x"], false),
            (&["t", "history", "-H", "x"], true),
        ] {
            let T { c: Cmds::History(h) } = T::try_parse_from(args).unwrap() else { panic!() };
            assert_eq!(h.human, human, "{args:?}");
        }
    }
}
