//! `img-pull`'s command line: flags → references and options → store operations →
//! docker's output (progress lines, or bars on a terminal; tables; JSON).

use std::cell::RefCell;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use super::archive::{self, Loaded};
use super::auth;
use super::manifest::Platform;
use super::pull::{pull, Progress, PullOptions};
use super::push::{self, PushOptions, PushProgress};
use super::reference::Reference;
use super::registry::{self, short};
use super::render::{self, history_rows, image_rows, inspect_json, render_format, table};
use super::store::Store;
use super::unpack;
use super::TOOL;
use crate::cli::CommonOpts;
use crate::error::{Error, Result};
use crate::exit::{Exit, Role};
use crate::kernel::{Event, Kernel, Ret, Sink, Target, TraceFormat};

/// Pull images from registries into an OCI store, look at them, unpack, save, push.
///
/// Every request made of the kernel is printed on stderr, strace-style, and every
/// HTTP request as a note beside them.
#[derive(Parser, Debug)]
#[command(name = TOOL, version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
    /// The store's directory (an OCI layout lives in ROOT/oci).
    #[arg(long, global = true, value_name = "DIR", env = "CONTLAB_ROOT", default_value = "/var/lib/contlab")]
    pub root: PathBuf,
    /// Shared flags.
    #[command(flatten)]
    pub common: CommonOpts,
}

impl Cli {
    /// How failures exit: `img-pull` runs no command, so always as a tool (1).
    pub fn role(&self) -> Role {
        Role::Tool
    }
}

/// How to reach registries (pull, push, login).
#[derive(Args, Debug, Clone)]
pub struct NetArgs {
    /// Allow plain HTTP for this registry (always allowed for localhost).
    #[arg(long)]
    pub insecure: bool,
    /// Trust this CA certificate (PEM) besides the system's.
    #[arg(long, value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,
    /// Credentials USER:PASSWORD (default: ~/.docker/config.json).
    #[arg(long, value_name = "USER:PASSWORD")]
    pub creds: Option<String>,
    /// Seconds without data before a connection is given up.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,
}

impl NetArgs {
    /// The flags as [`registry::Options`].
    pub fn options(&self) -> Result<registry::Options> {
        let creds = match &self.creds {
            Some(c) => Some(auth::Credentials::parse(c).map_err(Error::Usage)?),
            None => None,
        };
        Ok(registry::Options {
            insecure: self.insecure,
            ca_cert: self.ca_cert.clone(),
            creds,
            timeout: Duration::from_secs(self.timeout.max(1)),
        })
    }
}

/// The subcommands, named after docker's.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Download an image (docker pull).
    Pull {
        /// `alpine`, `alpine:3.17`, `localhost:5000/x/y:tag`, `name@sha256:…`.
        reference: String,
        /// The platform to choose in a multi-platform image (default: this machine's).
        #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
        platform: Option<String>,
        /// Layers downloaded at once.
        #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=64))]
        jobs: u32,
        /// Network options.
        #[command(flatten)]
        net: NetArgs,
    },
    /// List the images (docker images).
    #[command(alias = "images")]
    Ls {
        /// Show the registry digest too.
        #[arg(long)]
        digests: bool,
        /// Only the image IDs (what `docker images -q` prints; `-q` is every contlab
        /// tool's "no trace").
        #[arg(long)]
        ids: bool,
    },
    /// Show an image's details as JSON (docker inspect).
    Inspect {
        /// The image (reference or ID).
        image: String,
        /// One field, Go-template style: `{{json .RootFS.Layers}}`, `{{.Id}}`.
        #[arg(short, long)]
        format: Option<String>,
        /// Print the raw manifest instead (`manifest`), or the raw config (`config`).
        #[arg(long, value_parser = ["manifest", "config"])]
        raw: Option<String>,
    },
    /// Show an image's build steps (docker history).
    History {
        /// The image.
        image: String,
        /// Do not cut long CREATED BY lines.
        #[arg(long)]
        no_trunc: bool,
    },
    /// Remove an image's name, then every blob nothing refers to (docker rmi).
    #[command(alias = "rmi")]
    Rm {
        /// The images.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Apply an image's layers into a directory: a root file system.
    Unpack {
        /// The image.
        image: String,
        /// Where (created if missing; must be empty).
        dir: PathBuf,
        /// Instead: extract each layer on its own in the store (cached by diff_id),
        /// overlay whiteouts kept, link them as DIR/0, DIR/1… and print the overlayfs
        /// lowerdir= value on stdout.
        #[arg(long)]
        layers: bool,
    },
    /// Write images to a tar file in `docker save` format.
    Save {
        /// The images.
        #[arg(required = true)]
        images: Vec<String>,
        /// The tar file (default: stdout).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Read images from a tar file made by `docker save`, `podman save` or ours.
    Load {
        /// The tar file.
        #[arg(short, long)]
        input: PathBuf,
    },
    /// Copy an image into a separate OCI layout directory (`skopeo copy … oci:DIR:TAG`).
    Export {
        /// The image.
        image: String,
        /// The layout directory (created if missing).
        dir: PathBuf,
    },
    /// Copy an image from an OCI layout directory: `DIR` or `DIR:NAME`.
    Import {
        /// The layout, optionally `:NAME` (its org.opencontainers.image.ref.name).
        source: String,
        /// The reference to give it in the store (default: the name in the layout).
        #[arg(long, short)]
        tag: Option<String>,
    },
    /// Give an image another name (docker tag).
    Tag {
        /// The image.
        image: String,
        /// The new reference.
        target: String,
    },
    /// Upload an image to its registry (docker push).
    Push {
        /// The image, named with the registry to push to.
        image: String,
        /// Push under this reference instead.
        target: Option<String>,
        /// Upload blobs in PATCH chunks of this many bytes (default: one PUT).
        #[arg(long, value_name = "BYTES")]
        chunk_size: Option<u64>,
        /// Network options.
        #[command(flatten)]
        net: NetArgs,
    },
    /// Store credentials for a registry in ~/.docker/config.json (docker login).
    Login {
        /// The registry (`localhost:5000`; default Docker Hub).
        #[arg(default_value = "docker.io")]
        registry: String,
        /// The user.
        #[arg(short, long)]
        username: String,
        /// The password (prefer --password-stdin).
        #[arg(short, long)]
        password: Option<String>,
        /// Read the password from stdin.
        #[arg(long)]
        password_stdin: bool,
        /// Network options.
        #[command(flatten)]
        net: NetArgs,
    },
    /// Remove a registry's credentials from ~/.docker/config.json.
    Logout {
        /// The registry.
        #[arg(default_value = "docker.io")]
        registry: String,
    },
}

/// Run `img-pull`.
pub fn run(cli: Cli) -> Result<Exit> {
    let k = cli.common.kernel(TOOL)?;
    // The trace is text on stderr, where progress bars would be drawn too.
    let text_on_stderr = cli.common.trace == TraceFormat::Text && cli.common.trace_file.is_none() && !cli.common.quiet;
    let out = std::io::stdout();
    let mut out = out.lock();
    dispatch(&k, &cli.root, cli.cmd, text_on_stderr, &mut out)?;
    Ok(Exit::Ok)
}

/// Writing to stdout: a failure is the tool's output failing (a closed pipe: quiet).
fn w(r: std::io::Result<()>) -> Result<()> {
    r.map_err(Error::Output)
}

fn dispatch(k: &Kernel, root: &Path, cmd: Cmd, text_on_stderr: bool, out: &mut dyn Write) -> Result<()> {
    match cmd {
        Cmd::Pull { reference, platform, jobs, net } => {
            let r = parse_ref(&reference)?;
            let platform = match platform {
                Some(p) => Platform::parse(&p).map_err(Error::Usage)?,
                None => Platform::host(),
            };
            let opts = PullOptions { platform, jobs: jobs as usize, registry: net.options()? };
            let mut view = PullView::new(k, text_on_stderr);
            let res = pull(k, root, &r, &opts, &mut |p| view.show(p, out));
            view.finish()?;
            res.map(|_| ())
        }
        Cmd::Ls { digests, ids } => {
            let st = Store::open(k, root, false)?;
            let imgs = st.images()?;
            if ids {
                return imgs.iter().try_for_each(|i| w(writeln!(out, "{}", short(i.id()))));
            }
            let (head, rows) = image_rows(&st, &imgs, digests, render::now());
            w(table(out, &head, &rows))
        }
        Cmd::Inspect { image, format, raw } => {
            let st = Store::open(k, root, false)?;
            let img = st.resolve(&image)?;
            match raw.as_deref() {
                Some("manifest") => w(out.write_all(&img.manifest_bytes).and_then(|()| writeln!(out))),
                Some(_) => w(out.write_all(&img.config_bytes).and_then(|()| writeln!(out))),
                None => {
                    let v = inspect_json(&st, &img);
                    match format {
                        Some(f) => w(writeln!(out, "{}", render_format(&f, &v)?)),
                        None => {
                            w(writeln!(out, "{}", serde_json::to_string_pretty(&serde_json::json!([v])).expect("json")))
                        }
                    }
                }
            }
        }
        Cmd::History { image, no_trunc } => {
            let st = Store::open(k, root, false)?;
            let img = st.resolve(&image)?;
            let rows = history_rows(&st, &img, no_trunc, render::now());
            w(table(out, &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], &rows))
        }
        Cmd::Rm { images } => {
            let st = Store::open(k, root, true)?;
            let r = st.remove(k, &images)?;
            for g in &r.untagged {
                let shown = Reference::parse(g).map(|r| r.familiar()).unwrap_or_else(|_| g.clone());
                w(writeln!(out, "Untagged: {shown}"))?;
            }
            w(writeln!(out, "Deleted: {} blob(s), {} freed", r.blobs, render::human_size(r.bytes)))
        }
        Cmd::Unpack { image, dir, layers } => {
            let st = Store::open(k, root, layers)?;
            let img = st.resolve(&image)?;
            if !layers {
                return unpack::unpack(k, &st, &img, &dir);
            }
            let dirs = unpack::link_layers(k, &st, &img, &dir)?;
            let lower: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            w(writeln!(out, "{}", lower.join(":")))
        }
        Cmd::Save { images, output } => {
            let st = Store::open(k, root, false)?;
            let imgs = images.iter().map(|i| st.resolve(i).map(|img| (i.clone(), img))).collect::<Result<Vec<_>>>()?;
            match output {
                Some(o) => archive::save_file(k, &st, &imgs, &o),
                None => archive::save(k, &st, &imgs, out),
            }
        }
        Cmd::Load { input } => {
            let st = Store::open(k, root, true)?;
            for l in archive::load(k, &st, &input)? {
                match l {
                    Loaded::Image(n) => w(writeln!(out, "Loaded image: {n}"))?,
                    Loaded::Id(id) => w(writeln!(out, "Loaded image ID: {id}"))?,
                }
            }
            Ok(())
        }
        Cmd::Export { image, dir } => {
            let st = Store::open(k, root, false)?;
            let img = st.resolve(&image)?;
            let tag = archive::export_tag(&image, &img);
            archive::export(k, &st, &img, &tag, &dir)?;
            if k.mode() == crate::kernel::Mode::Live {
                w(writeln!(out, "{}:{tag}", dir.display()))?;
            }
            Ok(())
        }
        Cmd::Import { source, tag } => {
            let st = Store::open(k, root, true)?;
            let i = archive::import(k, &st, &source, tag.as_deref())?;
            if k.mode() == crate::kernel::Mode::Live {
                w(writeln!(out, "Imported {} as {}", short(&i.digest), i.name.familiar()))?;
            }
            Ok(())
        }
        Cmd::Tag { image, target } => {
            let t = parse_ref(&target)?;
            let st = Store::open(k, root, true)?;
            let img = st.resolve(&image)?;
            st.tag_image(k, &img, &t)
        }
        Cmd::Push { image, target, chunk_size, net } => {
            let opts = PushOptions { chunk_size, registry: net.options()? };
            let st = Store::open(k, root, false)?;
            let img = st.resolve(&image)?;
            let t = parse_ref(target.as_deref().unwrap_or(&image))?;
            let mut err = None;
            let mut show = |p: PushProgress| {
                let line = match p {
                    PushProgress::Repository(n) => format!("The push refers to repository [{n}]"),
                    PushProgress::Exists(id) => format!("{id}: Layer already exists"),
                    PushProgress::Mounted { id, from } => format!("{id}: Mounted from {from}"),
                    PushProgress::Pushed(id) => format!("{id}: Pushed"),
                };
                if let Err(e) = writeln!(out, "{line}") {
                    err.get_or_insert(e);
                }
            };
            let p = push::push(k, &st, &img, &t, &opts, &mut show);
            if let Some(e) = err {
                return Err(Error::Output(e));
            }
            let p = p?;
            w(writeln!(out, "{}: digest: {} size: {}", p.tag, p.digest, p.size))
        }
        Cmd::Login { registry, username, password, password_stdin, net } => {
            let password = match (password, password_stdin) {
                (Some(p), false) => p,
                (None, true) => {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .map_err(|e| Error::failed(format!("reading the password from stdin: {e}"), "pipe it in"))?;
                    s.trim_end_matches(['\n', '\r']).to_string()
                }
                _ => return Err(Error::Usage("give the password with --password-stdin (or -p)".into())),
            };
            let domain = push::registry_domain(&registry)?;
            let creds = auth::Credentials { username, password };
            push::login(k, &domain, creds, &net.options()?)?;
            w(writeln!(out, "Login Succeeded"))
        }
        Cmd::Logout { registry } => {
            let changed = push::logout(k, &push::registry_domain(&registry)?)?;
            match changed {
                true => w(writeln!(out, "Removing login credentials for {registry}")),
                false => w(writeln!(out, "Not logged in to {registry}")),
            }
        }
    }
}

fn parse_ref(s: &str) -> Result<Reference> {
    Reference::parse(s).map_err(|e| {
        Error::Usage(format!(
            "{e}\n  hint: references look like alpine, alpine:3.17, localhost:5000/team/app:1.0, name@sha256:…"
        ))
    })
}

/// The trace's own sinks, set apart while bars hold stderr, and the events kept meanwhile.
type Held = (Vec<Sink>, Rc<RefCell<Vec<Event>>>);

/// Docker's pull output from [`Progress`] events: a line per layer state on stdout,
/// or, on a terminal, one progress bar per layer on stderr. While bars are drawn the
/// text trace is held in memory and printed between two redraws, so the two never
/// tear each other's lines.
struct PullView<'k> {
    k: &'k Kernel,
    ids: Vec<String>,
    bars: Option<(indicatif::MultiProgress, Vec<indicatif::ProgressBar>)>,
    /// The trace's own sinks, while bars hold stderr; and the events held meanwhile.
    held: Option<Held>,
    swap: bool,
    err: Option<std::io::Error>,
}

impl<'k> PullView<'k> {
    fn new(k: &'k Kernel, text_on_stderr: bool) -> PullView<'k> {
        PullView { k, ids: Vec::new(), bars: None, held: None, swap: text_on_stderr, err: None }
    }

    fn line(&mut self, out: &mut dyn Write, text: String) {
        if let Err(e) = writeln!(out, "{text}") {
            self.err.get_or_insert(e);
        }
    }

    fn layer_done(&mut self, out: &mut dyn Write, i: usize, msg: &str) {
        match &self.bars {
            Some((_, b)) => b[i].finish_with_message(msg.to_string()),
            None => {
                let id = self.ids.get(i).cloned().unwrap_or_default();
                self.line(out, format!("{id}: {msg}"));
            }
        }
    }

    fn bar(&self, i: usize, msg: &'static str, pos: Option<u64>) {
        if let Some((_, b)) = &self.bars {
            b[i].set_message(msg);
            if let Some(n) = pos {
                b[i].set_position(n);
            }
        }
    }

    fn show(&mut self, p: Progress, out: &mut dyn Write) {
        self.flush_trace();
        match p {
            Progress::Resolving { tag, path } => self.line(out, format!("{tag}: Pulling from {path}")),
            Progress::Layers(layers) => {
                self.ids = layers.iter().map(|(id, _)| id.clone()).collect();
                if std::io::stderr().is_terminal() {
                    self.start_bars(&layers);
                }
            }
            Progress::Exists { index } => self.layer_done(out, index, "Already exists"),
            Progress::Downloading { index, bytes } => self.bar(index, "Downloading", Some(bytes)),
            Progress::Verifying { index } => self.bar(index, "Verifying Checksum", None),
            Progress::DownloadComplete { index } => self.bar(index, "Download complete", None),
            Progress::PullComplete { index } => self.layer_done(out, index, "Pull complete"),
            Progress::Failed { index } => self.layer_done(out, index, "Failed"),
            Progress::Digest(d) => self.line(out, format!("Digest: {d}")),
            Progress::Status { up_to_date: true, name } => {
                self.line(out, format!("Status: Image is up to date for {name}"))
            }
            Progress::Status { up_to_date: false, name } => {
                self.line(out, format!("Status: Downloaded newer image for {name}"))
            }
        }
    }

    fn start_bars(&mut self, layers: &[(String, u64)]) {
        let mp = indicatif::MultiProgress::new();
        let style = indicatif::ProgressStyle::with_template("{prefix}: {msg:<16} [{bar:40}] {bytes}/{total_bytes}")
            .expect("template")
            .progress_chars("=> ");
        let bars = layers
            .iter()
            .map(|(id, size)| {
                let b = mp.add(indicatif::ProgressBar::new(*size));
                b.set_style(style.clone());
                b.set_prefix(id.clone());
                b.set_message("Waiting");
                b
            })
            .collect();
        self.bars = Some((mp, bars));
        if self.swap {
            let mem = Rc::new(RefCell::new(Vec::new()));
            let own = self.k.tracer().take_sinks();
            self.k.tracer().add_sink(Sink::new(Target::Memory(mem.clone()), TraceFormat::Text, false, false));
            self.held = Some((own, mem));
        }
    }

    /// Print the trace held while bars are drawn, between two redraws.
    fn flush_trace(&self) {
        let (Some((own, mem)), Some((mp, _))) = (&self.held, &self.bars) else { return };
        let events: Vec<Event> = mem.borrow_mut().drain(..).collect();
        for ev in events.iter().filter(|e| !(e.bulk && matches!(e.ret, Ret::Ok(_)))) {
            let text: String = own.iter().map(|s| s.render(ev)).collect();
            mp.suspend(|| eprint!("{text}"));
        }
    }

    /// The pull is over: the held trace is printed, the trace's sinks are back, and
    /// the first error writing stdout (if any) is the result.
    fn finish(mut self) -> Result<()> {
        self.flush_trace();
        if let Some((own, _)) = self.held.take() {
            self.k.tracer().take_sinks();
            for s in own {
                self.k.tracer().add_sink(s);
            }
        }
        match self.err.take() {
            Some(e) => Err(Error::Output(e)),
            None => Ok(()),
        }
    }
}
