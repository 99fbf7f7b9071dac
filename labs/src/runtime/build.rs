//! # mini build: a Dockerfile, instruction by instruction, into an image
//!
//! An image is a stack of layers and a configuration ([`crate::image`]). `docker
//! build` makes one the way a person would by hand, one instruction at a time, each
//! from the image the previous one left:
//!
//! | instruction | what is made | the primitives |
//! |---|---|---|
//! | `FROM alpine` | nothing: the starting image | the image store (a pull if missing) |
//! | `RUN apk add curl` | a layer: what the command changed | a container of the current image (overlay, namespaces, cgroup), run to its end; its upper directory packed ([`crate::layer`]) |
//! | `COPY index.html /usr/share/nginx/html/` | a layer: the files | a container's root mounted (not run), the files written into it beneath its root; the upper directory packed |
//! | `WORKDIR /app` | a layer if the directory had to be made | as COPY, with one `mkdirat(2)` |
//! | `ENV`, `CMD`, `EXPOSE`, `LABEL`, `USER`... | no layer: the configuration changes | none: a new config blob and a history entry marked `empty_layer` |
//!
//! Each step's result is an image of its own in the store, without a name, that
//! records the image it was made on (its *parent*, docker's word) and, in
//! `container_config.Cmd`, what made it (`/bin/sh -c #(nop)  CMD ["sh"]`, `/bin/sh -c
//! apk add curl`). Those are docker's *intermediate images*: `mini images -a` shows
//! them, `mini history` names them, and they are the **build cache**. Before running a
//! step, the builder looks for an image whose parent is the current one and whose
//! `container_config` is the one this step would write; if there is one, the step is
//! not run: `---> Using cache`. For `RUN` that means "the same command on the same
//! image" (a command that downloads something is not run again, whatever changed on
//! the network: `--no-cache`); for `COPY`/`ADD` the command names a checksum of the
//! files copied (their names, modes, owners and contents, not their times), so
//! changing a file's content misses the cache from that step on, and `touch` does not.
//!
//! The build context is the directory given (`.`), read in place: docker's client
//! sends it whole to the daemon as a tar (`Sending build context to Docker daemon`),
//! mini has no daemon to send it to. `.dockerignore` ([`super::dockerignore`]) leaves
//! paths out of it: a `COPY . /app` does not see them, and no `COPY` can name them.
//!
//! Multi-stage builds are several of these chains in one file: each `FROM` starts
//! one, `COPY --from=NAME` reads files from another's last image (or from any image),
//! and only the last stage (or `--target`'s) is named by `-t`. The classic builder
//! runs every stage before the target, in order, as mini does.
//!
//! What the student sees in the trace: a `RUN` is a whole `mini run` (overlay mount,
//! cgroup, namespaces, `execve`), then `layer-diff`'s packing of the upper directory
//! into a gzip blob, then the image store's `rename(2)`s; a `CMD` is two blobs and
//! one `rename(2)` of index.json.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use sha2::Digest;

use super::changes::{empty_config, pack_layer, Source};
use super::copy::{Found, Rewrite, Root, Skip, SkipFn, TarOut, View};
use super::dockerfile::{self, Dockerfile, Form, Op, Src, Stage, Step};
use super::dockerignore::{glob_match, has_meta, Ignore};
use super::lifecycle::{self, CreateSpec, StartMode, Started};
use super::shell_words::Lex;
use super::state::{Container, Containers};
use crate::error::{Error, Result};
use crate::image::compose::{compose, Compose, NewLayer, Step as History};
use crate::image::store::{Image, Store, PARENT};
use crate::image::{self, Reference};
use crate::kernel::Kernel;

/// Where the build context comes from.
#[derive(Debug, Clone)]
pub enum Context {
    /// A directory, read in place.
    Dir(PathBuf),
    /// `-` with a Dockerfile on stdin: no context at all.
    Dockerfile(Vec<u8>),
    /// `-` with a tar on stdin: the context and its Dockerfile.
    Tar(Vec<u8>),
}

/// `mini build`, as plain data.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    /// The context.
    pub context: Context,
    /// `-f`: the Dockerfile (default `CONTEXT/Dockerfile`); relative to the current
    /// directory, as docker's client takes it.
    pub file: Option<PathBuf>,
    /// `-t`: full references.
    pub tags: Vec<String>,
    /// `--build-arg K=V` (or `K`: its value from the environment).
    pub build_args: Vec<(String, Option<String>)>,
    /// `--target`.
    pub target: Option<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull`: pull every FROM image, even one the store has.
    pub pull: bool,
    /// `--label K=V`.
    pub labels: Vec<(String, String)>,
    /// `--network` of the RUN containers (`default`, `none`, `host`).
    pub network: String,
    /// `-q`: RUN's output not shown.
    pub quiet: bool,
    /// `--rm`: remove the intermediate containers after a successful step.
    pub rm: bool,
    /// `--force-rm`: remove them after a failed one too.
    pub force_rm: bool,
    /// The trace options, for the RUN containers' monitors (`-q`...).
    pub trace_args: Vec<String>,
}

/// What a build made.
#[derive(Debug, Clone)]
pub struct Built {
    /// The final image's ID.
    pub id: String,
    /// The names it got.
    pub tags: Vec<String>,
}

/// The failure of a build, as docker words it.
fn failed(what: impl Into<String>) -> Error {
    Error::Failed { what: what.into(), hint: None }
}

fn short(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

/// Go's `%q` of a string list (`["nginx" "-g" "daemon off;"]`), as docker writes
/// CMD and ENTRYPOINT in history.
fn go_quoted(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| serde_json::to_string(s).unwrap_or_default()).collect();
    format!("[{}]", items.join(" "))
}

/// A Go duration (`30s`, `1m30s`, `500ms`) in nanoseconds.
fn duration_ns(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_digit() || n == '.' {
                break;
            }
            unit.push(n);
            chars.next();
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        let mult = match unit.as_str() {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * mult;
        any = true;
    }
    (any && num.is_empty()).then_some(total as i64)
}

/// The state of one stage: the image so far and what is in scope.
struct State {
    /// The image so far (`None`: `FROM scratch`, nothing made yet).
    image: Option<Image>,
    /// Its `config` (docker's container.Config).
    config: Map<String, Value>,
    /// `ARG`s declared in this stage, with their values (`None`: declared, no value).
    args: BTreeMap<String, Option<String>>,
    /// Whether this stage set CMD (an ENTRYPOINT then keeps it).
    cmd_set: bool,
    /// `MAINTAINER`.
    author: Option<String>,
}

impl State {
    fn id(&self) -> String {
        self.image.as_ref().map(|i| i.id().to_string()).unwrap_or_default()
    }

    fn env(&self) -> Vec<String> {
        match self.config.get("Env") {
            Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(String::from)).collect(),
            _ => vec![],
        }
    }

    fn shell(&self) -> Vec<String> {
        match self.config.get("Shell") {
            Some(Value::Array(a)) if !a.is_empty() => a.iter().filter_map(|v| v.as_str().map(String::from)).collect(),
            _ => vec!["/bin/sh".into(), "-c".into()],
        }
    }

    /// A variable's value for the builder's expansion: ENV first, then ARG.
    fn lookup(&self, name: &str) -> Option<String> {
        for e in self.env().iter().rev() {
            if let Some((k, v)) = e.split_once('=') {
                if k == name {
                    return Some(v.to_string());
                }
            }
        }
        self.args.get(name).cloned().flatten()
    }

    fn set_env(&mut self, key: &str, value: &str) {
        let mut env = self.env();
        super::spec::set_env(&mut env, format!("{key}={value}"));
        self.config.insert("Env".into(), json!(env));
    }

    fn form(&self, f: &Form) -> Vec<String> {
        match f {
            Form::Exec(v) => v.clone(),
            Form::Shell(s) => {
                let mut v = self.shell();
                v.push(s.clone());
                v
            }
        }
    }

    /// A map of the configuration (`Labels`, `Volumes`, `ExposedPorts`), empty if unset.
    fn object(&self, key: &str) -> Map<String, Value> {
        match self.config.get(key) {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        }
    }

    fn working_dir(&self) -> String {
        self.config.get("WorkingDir").and_then(|v| v.as_str()).unwrap_or_default().to_string()
    }

    /// An absolute path in the image: `p`, relative to WORKDIR (docker's rule).
    fn abs(&self, p: &str) -> String {
        let joined = if p.starts_with('/') { p.to_string() } else { format!("{}/{p}", self.working_dir()) };
        let trailing = p.ends_with('/') || p.ends_with("/.") || p == ".";
        let mut c = clean(&joined);
        if trailing && c != "/" {
            c.push('/');
        }
        c
    }
}

/// docker's record of a step that changes only the configuration: `SHELL #(nop)  MSG`.
fn nop(shell: &[String], msg: String) -> Vec<String> {
    let mut v = shell.to_vec();
    v.push("#(nop) ".into());
    v.push(msg);
    v
}

/// Lexical cleaning of an absolute path, as Go's `path.Clean`.
fn clean(p: &str) -> String {
    let mut out: Vec<&str> = vec![];
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

/// What a step does once its configuration and command are known.
enum Work<'k> {
    /// Nothing: only the configuration changes.
    Meta,
    /// Run a command in a container.
    Run { argv: Vec<String>, env: Vec<String>, network: String },
    /// Write files.
    Copy(Box<Gathered<'k>>),
    /// Make a directory (WORKDIR) if missing.
    Mkdir(String),
}

/// One source of a COPY/ADD, found.
enum Item {
    /// A path of a root (`rel` relative to it, `found` where it is).
    Path { rel: String, found: Box<Found>, dir: bool, archive: bool },
    /// Bytes (a here-document, a downloaded URL).
    Bytes { name: String, data: Vec<u8>, mode: u32 },
}

/// The sources of a COPY/ADD and what they will be written as.
struct Gathered<'k> {
    /// Where they come from: `None` for the context; for `--from`, the image's layers,
    /// mounted until the files are written.
    from: Option<FromRoot<'k>>,
    /// The sources.
    items: Vec<Item>,
    /// The destination as written (expanded), made absolute.
    dest: String,
    /// `--chown` (expanded), resolved against the image written into.
    chown: Option<String>,
    /// `--chmod`.
    mode: Option<u32>,
    /// The context's `.dockerignore` (`None`: sources from an image).
    ignore: Option<Ignore>,
}

/// The image a `COPY --from` reads: a container of it never started, its layers
/// mounted read-only (the root first: it is unmounted before the container goes).
struct FromRoot<'k> {
    root: Root<'k>,
    _temp: Temp<'k>,
}

/// A container made for one step, removed when dropped unless `keep`.
struct Temp<'k> {
    k: &'k Kernel,
    root: PathBuf,
    c: Container,
    keep: bool,
}

impl Drop for Temp<'_> {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if let Ok(store) = Containers::open(self.k, &self.root) {
            let _ = lifecycle::remove(self.k, &store, &self.c, true);
            let _ = super::volumes::remove_anonymous(self.k, &self.root, &self.c, &store.all().unwrap_or_default());
        }
    }
}

/// A directory of the store's tmp/, removed when dropped.
struct Staging<'k> {
    k: &'k Kernel,
    path: PathBuf,
}

impl Drop for Staging<'_> {
    fn drop(&mut self) {
        let _ = super::resources::remove_tree(self.k, &self.path);
    }
}

/// The builder.
struct Builder<'a> {
    k: &'a Kernel,
    root: &'a Path,
    spec: &'a BuildSpec,
    report: &'a mut dyn FnMut(&str),
    /// The context directory (`None`: no context).
    context: Option<PathBuf>,
    ignore: Ignore,
    lex: Lex,
    /// `--build-arg`s, and which were used.
    build_args: BTreeMap<String, Option<String>>,
    used: BTreeSet<String>,
    /// The ARGs before the first FROM, with their values.
    globals: BTreeMap<String, Option<String>>,
    /// Each stage done: its name and last image.
    stages: Vec<(Option<String>, Option<Image>)>,
    /// How many stages the file has.
    stage_count: usize,
    step: usize,
    total: usize,
}

/// Build (see the module documentation). `report` gets docker's lines (`Step 1/3 :
/// FROM alpine`, ` ---> 4a3b...`); a RUN's output goes to stdout and stderr, as the
/// command writes it (unless `quiet`).
pub fn build(k: &Kernel, root: &Path, spec: &BuildSpec, report: &mut dyn FnMut(&str)) -> Result<Built> {
    let mut staged: Option<Staging> = None;
    let (context, text) = match &spec.context {
        Context::Dir(d) => {
            let m = std::fs::metadata(d).map_err(|_| {
                failed(format!("unable to prepare context: path {:?} not found", d.display().to_string()))
            })?;
            if !m.is_dir() {
                return Err(failed(format!("unable to prepare context: context must be a directory: {}", d.display())));
            }
            let file = spec.file.clone().unwrap_or_else(|| {
                let upper = d.join("Dockerfile");
                let lower = d.join("dockerfile");
                if !upper.exists() && lower.exists() {
                    lower
                } else {
                    upper
                }
            });
            let text = read_dockerfile(&file)?;
            (Some(d.clone()), text)
        }
        Context::Dockerfile(b) => (None, String::from_utf8_lossy(b).into_owned()),
        Context::Tar(b) => {
            let dir = extract_context(k, root, b)?;
            let path = dir.path.clone();
            staged = Some(dir);
            let name = spec.file.as_ref().map(|f| f.display().to_string()).unwrap_or_else(|| "Dockerfile".into());
            let rel = name.trim_start_matches('/');
            if rel.split('/').any(|c| c == "..") {
                return Err(failed(format!("Cannot locate specified Dockerfile: {name}")));
            }
            let text = std::fs::read_to_string(path.join(rel))
                .map_err(|_| failed(format!("Cannot locate specified Dockerfile: {name}")))?;
            (Some(path), text)
        }
    };
    let ignore = match &context {
        Some(d) => match std::fs::read_to_string(d.join(".dockerignore")) {
            Ok(t) => Ignore::parse(&t).map_err(|e| failed(format!("error reading .dockerignore: {e}")))?,
            Err(_) => Ignore::parse("").map_err(failed)?,
        },
        None => Ignore::parse("").map_err(failed)?,
    };
    let name = spec.file.as_ref().and_then(|f| f.file_name()).map(|n| n.to_string_lossy().into_owned());
    let df = dockerfile::parse_named(&text, name.as_deref().unwrap_or("Dockerfile"))?;
    if let Some(t) = &spec.target {
        if !df.stages.iter().any(|s| s.name().as_deref() == Some(&t.to_lowercase())) {
            return Err(failed(format!("failed to reach build target {t} in Dockerfile")));
        }
    }
    let mut b = Builder {
        k,
        root,
        spec,
        report,
        context,
        ignore,
        lex: Lex::new(df.escape),
        build_args: spec.build_args.iter().cloned().collect(),
        used: BTreeSet::new(),
        globals: BTreeMap::new(),
        stages: vec![],
        stage_count: df.stages.len(),
        step: 0,
        total: count(&df, spec.target.as_deref()) + spec.labels.iter().map(|(k, _)| k).collect::<BTreeSet<_>>().len(),
    };
    let r = b.run(&df);
    drop(staged);
    r
}

/// docker's `Step N/M` count: the instructions up to the target's stage.
fn count(df: &Dockerfile, target: Option<&str>) -> usize {
    let mut n = df.global_args.len();
    for s in &df.stages {
        n += 1 + s.steps.len();
        if target.is_some_and(|t| s.name().as_deref() == Some(&t.to_lowercase())) {
            break;
        }
    }
    n
}

fn read_dockerfile(file: &Path) -> Result<String> {
    let abs = match file.is_absolute() {
        true => file.to_path_buf(),
        false => std::env::current_dir().map(|d| d.join(file)).unwrap_or_else(|_| file.to_path_buf()),
    };
    std::fs::read_to_string(&abs).map_err(|e| {
        let d = crate::kernel::Errno::from_raw(e.raw_os_error().unwrap_or(0)).desc().to_lowercase();
        failed(format!(
            "unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat {}: {d}",
            abs.display()
        ))
    })
}

/// A tar on stdin as the context: extracted into the store's tmp/ (by the layer lab,
/// under its rules), removed after the build.
fn extract_context<'k>(k: &'k Kernel, root: &Path, tar: &[u8]) -> Result<Staging<'k>> {
    let st = Store::open(k, root, true)?;
    let path = st.temp_path("context");
    drop(st);
    k.why("the context tar is extracted here for the build, and removed after it").mkdir(&path, 0o755)?;
    let dir = Staging { k, path };
    let _s = k.scope(crate::layer::TOOL);
    let opts = crate::layer::ApplyOptions { overlay_whiteouts: false, same_owner: true, allow_devices: false };
    crate::layer::apply(k, crate::layer::decompress(std::io::Cursor::new(tar))?, &dir.path, &opts)?;
    Ok(dir)
}

impl<'a> Builder<'a> {
    fn say(&mut self, line: &str) {
        (self.report)(line);
    }

    fn run(&mut self, df: &Dockerfile) -> Result<Built> {
        for a in &df.global_args {
            self.next_step(a);
            let Op::Arg(text) = &a.op else { continue };
            let globals = self.globals.clone();
            let lookup = move |n: &str| globals.get(n).cloned().flatten();
            for (name, default) in self.arg_words(text, &lookup)? {
                let v = self.arg_value(&name, default);
                self.globals.insert(name, v);
            }
        }
        let mut last: Option<Image> = None;
        for stage in &df.stages {
            last = self.stage(stage)?;
            self.stages.push((stage.name(), last.clone()));
            if self.spec.target.as_ref().is_some_and(|t| stage.name().as_deref() == Some(&t.to_lowercase())) {
                break;
            }
        }
        let unused: Vec<&String> = self.build_args.keys().filter(|k| !self.used.contains(*k)).collect();
        if !unused.is_empty() {
            let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
            self.say(&format!("[Warning] One or more build-args [{}] were not consumed", names.join(" ")));
        }
        let Some(img) = last else {
            return Err(failed("No image was generated. Is your Dockerfile empty?"));
        };
        let id = img.id().to_string();
        self.say(&format!("Successfully built {}", short(&id)));
        let mut tags = vec![];
        if !self.spec.tags.is_empty() {
            let _s = self.k.scope(image::TOOL);
            let st = Store::open(self.k, self.root, true)?;
            super::images::name_image(self.k, &st, &img, &self.spec.tags)?;
            for t in &self.spec.tags {
                let shown = Reference::parse(t).map(|r| r.familiar()).unwrap_or_else(|_| t.clone());
                self.say(&format!("Successfully tagged {shown}"));
                tags.push(t.clone());
            }
        }
        Ok(Built { id, tags })
    }

    fn next_step(&mut self, s: &Step) {
        self.step += 1;
        let line = format!("Step {}/{} : {}", self.step, self.total, s.text);
        self.say(&line);
    }

    /// `ARG A=1 B`: names and defaults.
    fn arg_words(&self, text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Vec<(String, Option<String>)>> {
        let words = self.lex.words(text, lookup).map_err(failed)?;
        Ok(words
            .into_iter()
            .map(|w| match w.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (w, None),
            })
            .collect())
    }

    /// An ARG's value: the --build-arg, else its default.
    fn arg_value(&mut self, name: &str, default: Option<String>) -> Option<String> {
        match self.build_args.get(name) {
            Some(v) => {
                self.used.insert(name.to_string());
                v.clone().or(default)
            }
            None => default,
        }
    }

    fn stage(&mut self, stage: &Stage) -> Result<Option<Image>> {
        self.next_step(&stage.from);
        let Op::From { image: name, platform, .. } = &stage.from.op else { unreachable!() };
        let globals = self.globals.clone();
        let name = self.lex.word(name, &move |n: &str| globals.get(n).cloned().flatten()).map_err(failed)?;
        if let Some(p) = platform {
            let host = crate::image::manifest::Platform::host();
            let want = format!("linux/{}", host.architecture);
            if p != &want && !p.starts_with('$') {
                return Err(failed(format!(
                    "image platform {p} does not match the host platform {want}: mini builds for this machine only"
                )));
            }
        }
        let image = self.image_named(&name)?;
        match &image {
            Some(i) => self.say(&format!(" ---> {}", short(i.id()))),
            None => self.say(" ---> "),
        }
        // docker's container.Config, whole (every key, empty ones too), with the
        // image's values.
        let mut config = empty_config();
        if let Some(i) = &image {
            if let Some(Value::Object(m)) =
                serde_json::from_slice::<Value>(&i.config_bytes).ok().and_then(|v| v.get("config").cloned())
            {
                config.extend(m);
            }
        }
        let mut st = State { image, config, args: BTreeMap::new(), cmd_set: false, author: None };
        let triggers: Vec<String> = match st.config.get("OnBuild") {
            Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(String::from)).collect(),
            _ => vec![],
        };
        if !triggers.is_empty() {
            self.say(&format!(
                "# Executing {} build trigger{}",
                triggers.len(),
                if triggers.len() == 1 { "" } else { "s" }
            ));
            st.config.insert("OnBuild".into(), Value::Null);
            for t in &triggers {
                let d = dockerfile::parse(&format!("FROM scratch\n{t}\n"))?;
                for s in &d.stages[0].steps {
                    self.instruction(&mut st, s)?;
                }
            }
        }
        for s in &stage.steps {
            self.next_step(s);
            self.instruction(&mut st, s)?;
        }
        let last_stage = match &self.spec.target {
            Some(t) => stage.name() == Some(t.to_lowercase()),
            None => self.stages.len() + 1 == self.stage_count,
        };
        if last_stage {
            // docker's --label: one more LABEL step per label, sorted, on the image the
            // build names.
            // The values as given: not expanded, as docker's.
            let labels: BTreeMap<String, String> = self.spec.labels.iter().cloned().collect();
            for (key, v) in labels {
                let text = format!("{key}={v}");
                let s = Step { line: 0, text: format!("LABEL {text}"), op: Op::Label(text.clone()) };
                self.next_step(&s);
                let mut all = st.object("Labels");
                all.insert(key, json!(v));
                st.config.insert("Labels".into(), Value::Object(all));
                let cmd = nop(&st.shell(), format!("LABEL {text}"));
                self.commit(&mut st, cmd, Work::Meta)?;
            }
        }
        Ok(st.image)
    }

    /// The image a FROM names: `scratch` (none), an earlier stage, or an image.
    fn image_named(&mut self, name: &str) -> Result<Option<Image>> {
        if name.eq_ignore_ascii_case("scratch") {
            return Ok(None);
        }
        if let Some((_, img)) = self.stages.iter().rev().find(|(n, _)| n.as_deref() == Some(&name.to_lowercase())) {
            return Ok(img.clone());
        }
        let k = self.k;
        if self.spec.pull {
            let r = Reference::parse(name).map_err(|e| failed(format!("invalid reference format: {e}")))?;
            let mut lines = vec![];
            {
                let mut push = |l: &str| lines.push(l.to_string());
                let mut p = super::view::PullPrinter::new(&mut push);
                image::pull(k, self.root, &r, &image::PullOptions::default(), &mut |e| p.event(e))?;
            }
            for l in lines {
                self.say(&l);
            }
        }
        let mut lines = vec![];
        let got = {
            let mut push = |l: &str| lines.push(l.to_string());
            lifecycle::image_for(k, self.root, name, &mut push)
        };
        for l in lines {
            self.say(&l);
        }
        let (img, _, _) = got?;
        Ok(Some(img))
    }

    /// One instruction of a stage.
    fn instruction(&mut self, st: &mut State, s: &Step) -> Result<()> {
        let shell = st.shell();
        let nop = |msg: String| nop(&shell, msg);
        let (cmd, work): (Vec<String>, Work<'_>) = match &s.op {
            Op::From { .. } => return Err(failed("FROM inside a stage")),
            Op::Env(text) => {
                let pairs = self.lex.pairs(text, &|n: &str| st.lookup(n)).map_err(failed)?;
                let mut msg = "ENV".to_string();
                for (k, v) in &pairs {
                    st.set_env(k, v);
                    msg.push_str(&format!(" {k}={v}"));
                }
                (nop(msg), Work::Meta)
            }
            Op::Label(text) => {
                let pairs = self.lex.pairs_for("LABEL", text, &|n: &str| st.lookup(n)).map_err(failed)?;
                let mut labels = st.object("Labels");
                let mut msg = "LABEL".to_string();
                for (k, v) in &pairs {
                    if k.is_empty() {
                        return Err(failed("LABEL names can not be blank"));
                    }
                    labels.insert(k.clone(), json!(v));
                    msg.push_str(&format!(" {k}={v}"));
                }
                st.config.insert("Labels".into(), Value::Object(labels));
                (nop(msg), Work::Meta)
            }
            Op::Arg(text) => {
                let mut msg = "ARG".to_string();
                for (name, default) in self.arg_words(text, &|n: &str| st.lookup(n))? {
                    let v = match (&default, self.build_args.contains_key(&name)) {
                        (_, true) => self.arg_value(&name, default.clone()),
                        (None, false) => self.globals.get(&name).cloned().flatten(),
                        (Some(_), false) => default.clone(),
                    };
                    msg.push(' ');
                    msg.push_str(&name);
                    if let Some(d) = &default {
                        msg.push_str(&format!("={d}"));
                    }
                    st.args.insert(name, v);
                }
                (nop(msg), Work::Meta)
            }
            Op::Workdir(text) => {
                let w = self.lex.word(text, &|n: &str| st.lookup(n)).map_err(failed)?;
                let dir = clean(&if w.starts_with('/') { w.clone() } else { format!("{}/{w}", st.working_dir()) });
                st.config.insert("WorkingDir".into(), json!(dir));
                let mut v = shell.clone();
                v.push(format!("#(nop) WORKDIR {dir}"));
                (v, Work::Mkdir(dir))
            }
            Op::User(text) => {
                let u = self.lex.word(text, &|n: &str| st.lookup(n)).map_err(failed)?;
                st.config.insert("User".into(), json!(u));
                (nop(format!("USER {u}")), Work::Meta)
            }
            Op::Expose(words) => {
                let mut ports = st.object("ExposedPorts");
                let mut list = vec![];
                for w in words {
                    let expanded = self.lex.words(w, &|n: &str| st.lookup(n)).map_err(failed)?;
                    for p in &expanded {
                        let p = if p.contains('/') { p.to_lowercase() } else { format!("{p}/tcp") };
                        let (num, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                        let bounds: Vec<Option<u16>> = num.split('-').map(|n| n.parse::<u16>().ok()).collect();
                        let range = match bounds.as_slice() {
                            [Some(a)] => Some((*a, *a)),
                            [Some(a), Some(b)] if a <= b => Some((*a, *b)),
                            _ => None,
                        };
                        let (Some((lo, hi)), true) = (range, ["tcp", "udp", "sctp"].contains(&proto)) else {
                            return Err(failed(format!("Invalid containerPort: {}", p.trim_end_matches("/tcp"))));
                        };
                        // A range is its ports, one by one (docker's nat.ParsePortSpecs).
                        for port in lo..=hi {
                            ports.insert(format!("{port}/{proto}"), json!({}));
                        }
                    }
                    list.extend(expanded);
                }
                // docker's order here is its map's (Go's: random); mini keeps the file's.
                st.config.insert("ExposedPorts".into(), Value::Object(ports));
                (nop(format!("EXPOSE {}", list.join(" "))), Work::Meta)
            }
            Op::Volume(words) => {
                let mut vols = st.object("Volumes");
                let mut list = vec![];
                for w in words {
                    let v = self.lex.word(w, &|n: &str| st.lookup(n)).map_err(failed)?;
                    if v.trim().is_empty() {
                        return Err(failed("VOLUME specified can not be an empty string"));
                    }
                    vols.insert(v.clone(), json!({}));
                    list.push(v);
                }
                st.config.insert("Volumes".into(), Value::Object(vols));
                (nop(format!("VOLUME [{}]", list.join(" "))), Work::Meta)
            }
            Op::Cmd(f) => {
                let v = st.form(f);
                st.config.insert("Cmd".into(), json!(v));
                st.cmd_set = true;
                (nop(format!("CMD {}", go_quoted(&v))), Work::Meta)
            }
            Op::Entrypoint(f) => {
                let v = st.form(f);
                st.config.insert("Entrypoint".into(), json!(v));
                if !st.cmd_set {
                    st.config.insert("Cmd".into(), Value::Null);
                }
                (nop(format!("ENTRYPOINT {}", go_quoted(&v))), Work::Meta)
            }
            Op::Shell(v) => {
                if v.is_empty() {
                    return Err(failed("SHELL requires at least one argument"));
                }
                st.config.insert("Shell".into(), json!(v));
                let mut c = v.clone();
                c.push("#(nop) ".into());
                c.push(format!("SHELL [{}]", v.join(" ")));
                (c, Work::Meta)
            }
            Op::Stopsignal(text) => {
                let sig = self.lex.word(text, &|n: &str| st.lookup(n)).map_err(failed)?;
                super::spec::parse_signal(&sig)?;
                st.config.insert("StopSignal".into(), json!(sig));
                (nop(format!("STOPSIGNAL {sig}")), Work::Meta)
            }
            Op::Healthcheck { flags, cmd } => {
                let mut hc = Map::new();
                let test = match cmd {
                    None => vec!["NONE".to_string()],
                    Some(Form::Exec(v)) => std::iter::once("CMD".to_string()).chain(v.iter().cloned()).collect(),
                    Some(Form::Shell(s)) => vec!["CMD-SHELL".to_string(), s.clone()],
                };
                hc.insert("Test".into(), json!(test));
                for (flag, key) in [
                    ("interval", "Interval"),
                    ("timeout", "Timeout"),
                    ("start-period", "StartPeriod"),
                    ("start-interval", "StartInterval"),
                ] {
                    if let Some(v) = flags.get(flag) {
                        let ns = duration_ns(v).ok_or_else(|| failed(format!("time: invalid duration {v:?}")))?;
                        hc.insert(key.into(), json!(ns));
                    }
                }
                if let Some(r) = flags.get("retries") {
                    let n: i64 = r.parse().map_err(|_| failed(format!("invalid retries {r:?}")))?;
                    hc.insert("Retries".into(), json!(n));
                }
                st.config.insert("Healthcheck".into(), Value::Object(hc));
                let dur = |k: &str| flags.get(k).cloned().unwrap_or_else(|| "0s".into());
                let msg = format!(
                    "HEALTHCHECK &{{{} {:?} {:?} {:?} '\\x{:02x}'}}",
                    go_quoted(&test),
                    dur("interval"),
                    dur("timeout"),
                    dur("start-period"),
                    flags.get("retries").and_then(|r| r.parse::<u8>().ok()).unwrap_or(0)
                );
                (nop(msg), Work::Meta)
            }
            Op::Onbuild(t) => {
                let mut list = match st.config.get("OnBuild") {
                    Some(Value::Array(a)) => a.clone(),
                    _ => vec![],
                };
                list.push(json!(t));
                st.config.insert("OnBuild".into(), Value::Array(list));
                (nop(format!("ONBUILD {t}")), Work::Meta)
            }
            Op::Maintainer(m) => {
                st.author = Some(m.clone());
                (nop(format!("MAINTAINER {m}")), Work::Meta)
            }
            Op::Run { cmd, network } => {
                let argv = st.form(cmd);
                // docker's record of the build args a RUN saw: `|N K=V... CMD`.
                let env_keys: Vec<String> =
                    st.env().iter().map(|e| e.split('=').next().unwrap_or_default().to_string()).collect();
                let mut with_values: Vec<String> = st
                    .args
                    .iter()
                    .filter(|(k, _)| !env_keys.contains(k))
                    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
                    .collect();
                // Sorted as docker sorts them: the `K=V` strings.
                with_values.sort();
                let mut saved = vec![];
                if !with_values.is_empty() {
                    saved.push(format!("|{}", with_values.len()));
                    saved.extend(with_values.iter().cloned());
                }
                saved.extend(argv.iter().cloned());
                let network = network.clone().unwrap_or_else(|| self.spec.network.clone());
                (saved, Work::Run { argv, env: with_values, network })
            }
            Op::Copy { add, srcs, dest, from, chown, chmod } => {
                let g = self.gather(st, *add, srcs, dest, from.as_deref(), chown.as_deref(), chmod.as_deref())?;
                let (kind, sum) = self.checksum(&g)?;
                let word = if *add { "ADD" } else { "COPY" };
                let mut flags = String::new();
                if let Some(c) = chown {
                    flags.push_str(&format!("--chown={c} "));
                }
                if let Some(c) = chmod {
                    flags.push_str(&format!("--chmod={c} "));
                }
                let expanded = self.lex.word(dest, &|n: &str| st.lookup(n)).map_err(failed)?;
                let mut v = shell.clone();
                v.push(format!("#(nop) {word} {flags}{kind}:{sum} in {expanded} "));
                (v, Work::Copy(Box::new(g)))
            }
        };
        self.commit(st, cmd, work)
    }

    /// The step's image: from the cache, or made.
    fn commit(&mut self, st: &mut State, cmd: Vec<String>, work: Work<'_>) -> Result<()> {
        let parent = st.id();
        let mut ccfg = st.config.clone();
        ccfg.insert("Cmd".into(), json!(cmd));
        ccfg.insert("Image".into(), json!(parent));
        let ccfg = Value::Object(ccfg);
        if !self.spec.no_cache {
            if let Some(hit) = self.cached(&parent, &ccfg)? {
                self.say(" ---> Using cache");
                self.say(&format!(" ---> {}", short(hit.id())));
                st.image = Some(hit);
                return Ok(());
            }
        }
        let created_by = cmd.join(" ");
        let k = self.k;
        let made = match work {
            Work::Meta => self.compose(st, NewLayer::none(), &created_by, ccfg, None)?,
            Work::Run { argv, env, network } => {
                let shown = argv.join(" ");
                let Some(img) = &st.image else {
                    return Err(failed(format!(
                        "The command '{created_by}' cannot run: the image is empty (FROM scratch), it has no program to run"
                    )));
                };
                let spec = CreateSpec {
                    image: img.id().to_string(),
                    args: argv,
                    entrypoint: Some(String::new()),
                    env,
                    network,
                    storage_driver: "overlay2".into(),
                    ..Default::default()
                };
                let c = lifecycle::create(k, self.root, &spec, &mut |_| {})?;
                let mut temp = Temp { k, root: self.root.to_path_buf(), c: c.clone(), keep: false };
                self.say(&format!(" ---> Running in {}", c.short_id()));
                let code = self.run_container(&c)?;
                if code != 0 {
                    temp.keep = !self.spec.force_rm;
                    return Err(Error::Container {
                        code: code.clamp(1, 255) as u8,
                        message: format!("The command '{shown}' returned a non-zero code: {code}"),
                    });
                }
                let store = Containers::open(k, self.root)?;
                let upper = store.paths.layer(&c.id).join("diff");
                let img = self.pack_and_compose(st, &upper, &created_by, ccfg, Some(&c.id), false)?;
                if self.spec.rm {
                    self.say(&format!("Removing intermediate container {}", c.short_id()));
                } else {
                    temp.keep = true;
                }
                drop(temp);
                img
            }
            Work::Copy(g) => self.in_root(st, &created_by, ccfg, true, |k, root| write_items(k, root, &g))?,
            Work::Mkdir(dir) => self.in_root(st, &created_by, ccfg, false, |k, root| {
                make_dirs(k, root, &dir, (0, 0))?;
                Ok(())
            })?,
        };
        self.say(&format!(" ---> {}", short(made.id())));
        st.image = Some(made);
        Ok(())
    }

    /// Run the step's container to its end: attached (its output is the build's), or
    /// with `-q` detached and waited for.
    fn run_container(&mut self, c: &Container) -> Result<i32> {
        let mode = StartMode {
            attach: !self.spec.quiet,
            stdin: false,
            detach_keys: vec![],
            trace_args: self.spec.trace_args.clone(),
        };
        match lifecycle::start(self.k, self.root, c, &mode)? {
            Started::Exited(code) => Ok(code),
            _ => {
                let store = Containers::open(self.k, self.root)?;
                let now = store.find(&c.id)?;
                lifecycle::wait(self.k, &store, &now)
            }
        }
    }

    /// Write into the current image's root (a container's, mounted for this step; or
    /// for an empty image a directory of tmp/), then pack what changed.
    fn in_root(
        &mut self,
        st: &State,
        created_by: &str,
        ccfg: Value,
        always: bool,
        write: impl FnOnce(&Kernel, &Root) -> Result<()>,
    ) -> Result<Image> {
        let k = self.k;
        match &st.image {
            None => {
                let path = {
                    let s = Store::open(k, self.root, true)?;
                    s.temp_path("build")
                };
                k.why("FROM scratch: the step's files are written here, then packed as a layer").mkdir(&path, 0o755)?;
                let stage = Staging { k, path };
                {
                    let root = Root::host(k, &stage.path)?;
                    write(k, &root)?;
                }
                self.pack_and_compose(st, &stage.path, created_by, ccfg, None, always)
            }
            Some(img) => {
                let c = self.scratch_container(img)?;
                let temp = Temp { k, root: self.root.to_path_buf(), c: c.clone(), keep: false };
                {
                    let store = Containers::open(k, self.root)?;
                    let root = Root::container(k, &store, &c, View::Layers, true)?;
                    write(k, &root)?;
                }
                let store = Containers::open(k, self.root)?;
                let upper = store.paths.layer(&c.id).join("diff");
                let made = self.pack_and_compose(st, &upper, created_by, ccfg, None, always)?;
                drop(temp);
                Ok(made)
            }
        }
    }

    /// A container of `img` that is never started: its root is only mounted.
    fn scratch_container(&self, img: &Image) -> Result<Container> {
        let spec = CreateSpec {
            image: img.id().to_string(),
            args: vec!["true".into()],
            entrypoint: Some(String::new()),
            network: "none".into(),
            storage_driver: "overlay2".into(),
            skip_image_volumes: true,
            // Its files are written from the host, as root: no user namespace.
            userns: "host".into(),
            ..Default::default()
        };
        lifecycle::create(self.k, self.root, &spec, &mut |_| {})
    }

    fn pack_and_compose(
        &mut self,
        st: &State,
        dir: &Path,
        created_by: &str,
        ccfg: Value,
        container: Option<&str>,
        always: bool,
    ) -> Result<Image> {
        let mut layer = {
            let _s = self.k.scope(image::TOOL);
            let store = Store::open(self.k, self.root, true)?;
            pack_layer(self.k, &store, Source::Dir(dir))?
        };
        // A RUN or a WORKDIR that changed nothing adds no layer; COPY and ADD add one
        // always, empty or not, as docker's do.
        if always {
            layer.empty = false;
        }
        self.compose(st, layer, created_by, ccfg, container)
    }

    fn compose(
        &mut self,
        st: &State,
        layer: NewLayer,
        created_by: &str,
        ccfg: Value,
        container: Option<&str>,
    ) -> Result<Image> {
        let _s = self.k.scope(image::TOOL);
        let store = Store::open(self.k, self.root, true)?;
        let mut extra = Map::new();
        extra.insert("container_config".into(), ccfg);
        if let Some(c) = container {
            extra.insert("container".into(), json!(c));
        }
        extra.insert("docker_version".into(), json!(format!("mini {}", env!("CARGO_PKG_VERSION"))));
        let mut annotations = BTreeMap::new();
        annotations.insert(PARENT.to_string(), st.id());
        let c = Compose {
            parent: st.image.as_ref(),
            layer,
            config: Value::Object(st.config.clone()),
            step: History {
                created: crate::units::rfc3339(crate::units::now_nanos()),
                created_by: Some(created_by.to_string()),
                comment: None,
                author: st.author.clone(),
            },
            extra,
            name: None,
            annotations,
        };
        let img = compose(self.k, &store, &c)?;
        super::images::record_sizes(self.k, &store, &img)?;
        Ok(img)
    }

    /// An image made on `parent` by the same step: the cache.
    fn cached(&self, parent: &str, ccfg: &Value) -> Result<Option<Image>> {
        let _s = self.k.scope(image::TOOL);
        let store = Store::open(self.k, self.root, false)?;
        let ix = store.index()?;
        for d in ix.manifests.iter().filter(|d| d.annotation(PARENT) == Some(parent)) {
            let Ok(img) = store.load_image(d.clone(), vec![]) else { continue };
            let Ok(v) = serde_json::from_slice::<Value>(&img.config_bytes) else { continue };
            if v.get("container_config") == Some(ccfg) {
                return Ok(Some(store.resolve(img.id())?));
            }
        }
        Ok(None)
    }

    // ------------------------------------------------------------ COPY and ADD

    #[allow(clippy::too_many_arguments)]
    fn gather(
        &mut self,
        st: &State,
        add: bool,
        srcs: &[Src],
        dest: &str,
        from: Option<&str>,
        chown: Option<&str>,
        chmod: Option<&str>,
    ) -> Result<Gathered<'a>> {
        let word = if add { "ADD" } else { "COPY" };
        let env = |n: &str| st.lookup(n);
        let dest_w = self.lex.word(dest, &env).map_err(failed)?;
        let dest_abs = st.abs(&dest_w);
        let mode = match chmod {
            Some(m) => Some(u32::from_str_radix(m, 8).map_err(|_| failed(format!("invalid chmod parameter: {m}")))?),
            None => None,
        };
        let chown = chown.map(|c| self.lex.word(c, &env).map_err(failed)).transpose()?;
        if let Some(c) = &chown {
            if c.is_empty() || c.split(':').count() > 2 {
                return Err(failed(format!("invalid chown string format: {c}")));
            }
        }
        let from_img = match from {
            None => None,
            Some(f) => {
                let f = self.lex.word(f, &env).map_err(failed)?;
                let by_name = self.stages.iter().find(|(n, _)| n.as_deref() == Some(&f.to_lowercase()));
                let by_index = match f.parse::<usize>() {
                    Ok(i) if i >= self.stages.len() => {
                        return Err(failed(format!("invalid from flag value {f}: index out of bounds")))
                    }
                    Ok(i) => self.stages.get(i),
                    Err(_) => None,
                };
                match by_name.or(by_index) {
                    Some((_, Some(img))) => Some(img.clone()),
                    Some((_, None)) => {
                        return Err(failed(format!(
                            "{word} --from={f}: that stage is empty (FROM scratch, nothing made)"
                        )))
                    }
                    None => match self.image_named(&f)? {
                        Some(i) => Some(i),
                        None => return Err(failed(format!("{word} --from=scratch: there is nothing to copy"))),
                    },
                }
            }
        };
        let mut words = vec![];
        for s in srcs {
            match s {
                Src::Path(p) => words.push(self.lex.word(p, &env).map_err(failed)?),
                Src::Inline { name, text } => words.push(format!("\0{name}\0{text}")),
            }
        }
        let ignore = from_img.is_none().then(|| self.ignore.clone());
        let from = match &from_img {
            Some(img) => {
                let k = self.k;
                let c = self.scratch_container(img)?;
                let temp = Temp { k, root: self.root.to_path_buf(), c: c.clone(), keep: false };
                let store = Containers::open(k, self.root)?;
                let root = Root::container(k, &store, &c, View::Layers, false)?;
                Some(FromRoot { root, _temp: temp })
            }
            None => None,
        };
        let mut g = Gathered { from, items: vec![], dest: dest_abs, chown, mode, ignore };
        g.items = self.items(g.from.as_ref().map(|f| &f.root), add, &words, word)?;
        if g.items.len() > 1 && !g.dest.ends_with('/') {
            return Err(failed(format!(
                "When using {word} with more than one source file, the destination must be a directory and end with a /"
            )));
        }
        Ok(g)
    }

    /// Find the sources.
    fn items(&mut self, from: Option<&Root>, add: bool, words: &[String], word: &str) -> Result<Vec<Item>> {
        let mut items = vec![];
        let context = match (&self.context, from) {
            (Some(d), None) => Some(Root::host(self.k, d)?),
            _ => None,
        };
        let in_context = from.is_none();
        let root = from.or(context.as_ref());
        for w in words {
            if let Some(rest) = w.strip_prefix('\0') {
                let (name, text) = rest.split_once('\0').unwrap_or((rest, ""));
                items.push(Item::Bytes { name: name.to_string(), data: text.as_bytes().to_vec(), mode: 0o644 });
                continue;
            }
            if add && (w.starts_with("http://") || w.starts_with("https://")) {
                items.push(self.download(w)?);
                continue;
            }
            if add && w.starts_with("git@") {
                return Err(failed(format!("{word} of a git repository needs BuildKit: not supported by mini build")));
            }
            let rel = clean(&format!("/{w}"));
            let outside = {
                // `..` that climbs above the context.
                let mut depth = 0i32;
                let mut out = false;
                for c in w.split('/') {
                    match c {
                        ".." => {
                            depth -= 1;
                            out |= depth < 0;
                        }
                        "" | "." => {}
                        _ => depth += 1,
                    }
                }
                out
            };
            if outside && in_context {
                return Err(failed(format!("{word} failed: forbidden path outside the build context: {w} ()")));
            }
            let rel = rel.trim_start_matches('/').to_string();
            let not_found = || {
                failed(match in_context {
                    true => format!(
                        "{word} failed: file not found in build context or excluded by .dockerignore: stat {w}: file does not exist"
                    ),
                    false => format!("{word} failed: stat {w}: file does not exist"),
                })
            };
            let Some(root) = root else { return Err(not_found()) };
            if has_meta(&rel) {
                let mut matched = vec![];
                self.walk(root, "", in_context, &mut |p| {
                    if glob_match(&rel, p).unwrap_or(false) {
                        matched.push(p.to_string());
                    }
                })?;
                for m in matched {
                    let f = root.locate(&m, true)?;
                    if in_context && self.ignore.excluded(f.path.trim_start_matches('/')) {
                        continue;
                    }
                    items.push(self.item(root, &m, add)?);
                }
                continue;
            }
            if in_context && !rel.is_empty() && self.ignore.excluded(&rel) {
                return Err(not_found());
            }
            let f = root.locate(&rel, true)?;
            // Through a symlink, to a path .dockerignore leaves out: not in the context.
            let excluded = in_context && self.ignore.excluded(f.path.trim_start_matches('/'));
            if f.meta.is_none() || excluded {
                return Err(not_found());
            }
            items.push(self.item(root, &rel, add)?);
        }
        if items.is_empty() {
            return Err(failed(format!("{word} failed: no source files were specified")));
        }
        Ok(items)
    }

    fn item(&self, root: &Root, rel: &str, add: bool) -> Result<Item> {
        let found = root.locate(if rel.is_empty() { "/" } else { rel }, true)?;
        let meta = found.meta.as_ref().ok_or_else(|| failed(format!("stat {rel}: file does not exist")))?;
        let dir = meta.is_dir();
        let archive = add && !dir && meta.is_file() && {
            let mut head = [0u8; 512];
            let n = self
                .k
                .open_read_at(&found.dir, &found.shown, &found.name)
                .ok()
                .and_then(|mut f| f.read(&mut head).ok())
                .unwrap_or(0);
            // A compressed file that is not a tar is copied as it is, as docker does.
            is_archive(&head[..n])
                && self.k.open_read_at(&found.dir, &found.shown, &found.name).ok().is_some_and(|f| {
                    crate::layer::decompress(f).is_ok_and(|r| {
                        tar::Archive::new(r).entries().ok().and_then(|mut e| e.next()).is_some_and(|e| e.is_ok())
                    })
                })
        };
        Ok(Item::Path { rel: rel.to_string(), found: Box::new(found), dir, archive })
    }

    /// Every path of `root` below `rel` (not left out by .dockerignore), depth first.
    fn walk(&self, root: &Root, rel: &str, in_context: bool, seen: &mut dyn FnMut(&str)) -> Result<()> {
        let f = root.locate(if rel.is_empty() { "/" } else { rel }, false)?;
        let dir = self.k.open_beneath(&f.dir, &f.shown, &f.name)?;
        let shown = format!("{}/{}", f.shown.trim_end_matches('/'), f.name);
        for n in self.k.list_at(&dir, &shown, ".")? {
            let p = if rel.is_empty() { n.clone() } else { format!("{rel}/{n}") };
            let m = self.k.stat_at(&dir, &n)?;
            let is_dir = m.as_ref().is_some_and(|m| m.is_dir());
            let excluded = in_context && self.ignore.excluded(&p);
            if !excluded {
                seen(&p);
            }
            if is_dir && (!excluded || self.ignore.may_include_beneath(&p)) {
                self.walk(root, &p, in_context, seen)?;
            }
        }
        Ok(())
    }

    /// `ADD URL`: the file downloaded (mode 0600, as docker's).
    fn download(&self, url: &str) -> Result<Item> {
        let name = url.split(['?', '#']).next().unwrap_or(url).rsplit('/').next().unwrap_or_default().to_string();
        let name = if name.is_empty() { "download".to_string() } else { name };
        let r = ureq::get(url).call();
        let r = match r {
            Ok(r) => r,
            Err(ureq::Error::Status(code, _)) => {
                self.k.note(format!("GET {url} → {code}"));
                return Err(failed(format!("failed to GET {url} with status {code}")));
            }
            Err(e) => {
                self.k.note(format!("GET {url} → failed: {e}"));
                return Err(failed(format!("error downloading {url}: {e}")));
            }
        };
        self.k.note(format!("GET {url} → {}", r.status()));
        let mut data = vec![];
        r.into_reader()
            .take(1 << 32)
            .read_to_end(&mut data)
            .map_err(|e| failed(format!("error downloading {url}: {e}")))?;
        Ok(Item::Bytes { name, data, mode: 0o600 })
    }

    /// docker's `file:HASH` / `dir:HASH` / `multi:HASH` of what will be written
    /// (see [`Rewrite::sums`]; `file:` and `multi:` are docker's own, byte for byte).
    fn checksum(&self, g: &Gathered) -> Result<(&'static str, String)> {
        let sha = |s: &[u8]| format!("{:x}", sha2::Sha256::digest(s));
        let mut parts: Vec<(&'static str, String)> = vec![];
        for it in &g.items {
            match it {
                Item::Bytes { name, data, mode } => {
                    let mut h = super::copy::entry_sum(name, 0o100000 | mode, data.len() as u64, '0', "", None);
                    h.update(data);
                    parts.push(("file", format!("{:x}", h.finalize())));
                }
                Item::Path { found, dir, rel, .. } => {
                    let mut t = TarOut::new(self.k, std::io::sink());
                    t.rewrite = rewrite(g, "", *dir, true, None);
                    let arc = if rel.is_empty() { String::new() } else { rel.clone() };
                    t.add(&found.dir, &found.shown, &found.name, &arc, "/")?;
                    let mut sums = t.rewrite.sums.take().unwrap_or_default();
                    match dir {
                        true => {
                            sums.sort();
                            parts.push(("dir", sha(sums.join(",").as_bytes())));
                        }
                        false => parts.push(("file", sums.pop().unwrap_or_default())),
                    }
                }
            }
        }
        Ok(match parts.as_slice() {
            [(kind, h)] => (kind, h.clone()),
            _ => {
                let list: Vec<String> = parts.iter().map(|(k, h)| format!("{k}:{h}")).collect();
                ("multi", sha(list.join(",").as_bytes()))
            }
        })
    }
}

/// How a source is written: owner and mode, what .dockerignore leaves out below a
/// directory (`prefix`: the directory's path in the context, when the archive's names
/// are relative to it), and (with `sum`) docker's checksums.
fn rewrite(g: &Gathered, prefix: &str, dir: bool, sum: bool, owner: Option<(u32, u32)>) -> Rewrite {
    let skip: Option<SkipFn> = match &g.ignore {
        Some(ignore) if dir && !ignore.is_empty() => {
            let ignore = ignore.clone();
            let prefix = prefix.to_string();
            Some(Box::new(move |arc: &str, is_dir: bool| {
                let p = if prefix.is_empty() { arc.to_string() } else { format!("{prefix}/{arc}") };
                match (ignore.excluded(&p), is_dir && ignore.may_include_beneath(&p)) {
                    (false, _) => Skip::No,
                    (true, true) => Skip::Walk,
                    (true, false) => Skip::Yes,
                }
            }))
        }
        _ => None,
    };
    Rewrite { owner, mode: g.mode, skip, sums: sum.then(Vec::new), image_sums: g.from.is_some() }
}

/// Whether these first bytes are a tar, plain, gzip or zstd (what the layer lab reads):
/// ADD extracts those (bzip2 and xz tars are copied as files).
fn is_archive(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || (head.len() >= 262 && &head[257..262] == b"ustar")
}

/// `mkdir -p` beneath a root: each missing directory made (`mkdirat(2)`, 0755, owned
/// by `owner`); the last one opened.
fn make_dirs(k: &Kernel, root: &Root, path: &str, owner: (u32, u32)) -> Result<(OwnedFd, String)> {
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for i in 1..=comps.len() {
        let prefix = format!("/{}", comps[..i].join("/"));
        let f = root.locate(&prefix, true)?;
        match &f.meta {
            Some(m) if m.is_dir() => {}
            Some(_) => {
                return Err(failed(format!("failed to copy files: {prefix} is not a directory")));
            }
            None => {
                k.mkdir_at(&f.dir, &f.shown, &f.name, 0o755)?;
                if owner != (0, 0) || k.ids().euid != 0 {
                    k.chown_at(&f.dir, &f.shown, &f.name, owner.0, owner.1)?;
                }
            }
        }
    }
    let f = root.locate(path, true)?;
    let name = if f.name.is_empty() { "." } else { &f.name };
    let fd = k.open_beneath(&f.dir, &f.shown, name)?;
    Ok((fd, format!("{}/{}", f.shown.trim_end_matches('/'), f.name)))
}

/// A file of `root` as text (empty if it has none).
fn read_in(k: &Kernel, root: &Root, path: &str) -> String {
    let Ok(f) = root.locate(path, true) else { return String::new() };
    if f.meta.as_ref().is_none_or(|m| !m.is_file()) {
        return String::new();
    }
    let mut text = String::new();
    if let Ok(mut file) = k.open_read_at(&f.dir, &f.shown, &f.name) {
        let _ = file.read_to_string(&mut text);
    }
    text
}

/// `--chown=USER[:GROUP]` as ids: numbers as they are, names looked up in the
/// `/etc/passwd` and `/etc/group` of `root` (read beneath it); a user without a group
/// is looked up as a group too, as docker does.
fn owner_in(k: &Kernel, root: &Root, spec: &str) -> Result<(u32, u32)> {
    let numeric = |s: &str| s.parse::<u32>().ok();
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, numeric(spec).is_none().then_some(spec)),
    };
    let entry = |text: &str, name: &str| -> Option<(u32, u32)> {
        text.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.first() != Some(&name) || f.len() < 3 {
                return None;
            }
            Some((f[2].parse().ok()?, f.get(3).and_then(|g| g.parse().ok()).unwrap_or(0)))
        })
    };
    let uid = match numeric(u) {
        Some(n) => n,
        None => entry(&read_in(k, root, "/etc/passwd"), u).map(|(uid, _)| uid).ok_or_else(|| {
            failed(format!(
                "unable to convert uid/gid chown string to host mapping: can't find uid for user {u}: no such user: {u}"
            ))
        })?,
    };
    let gid = match g {
        None => uid,
        Some(g) => match numeric(g) {
            Some(n) => n,
            None => entry(&read_in(k, root, "/etc/group"), g).map(|(gid, _)| gid).ok_or_else(|| {
                failed(format!(
                    "unable to convert uid/gid chown string to host mapping: can't find gid for group {g}: no such group: {g}"
                ))
            })?,
        },
    };
    Ok((uid, gid))
}

/// Write the sources of a COPY/ADD into `root` (see the module documentation of
/// [`super::copy`] for how paths are resolved beneath it).
fn write_items(k: &Kernel, root: &Root, g: &Gathered) -> Result<()> {
    // docker's owners: the context's files are root's, an image's keep theirs, and
    // `--chown` gives everything (the directories it makes too) to its user.
    let chown = g.chown.as_deref().map(|c| owner_in(k, root, c)).transpose()?;
    let owner = match (chown, &g.from) {
        (Some(o), _) => Some(o),
        (None, Some(_)) => None,
        (None, None) => Some((0, 0)),
    };
    let dir_owner = chown.unwrap_or((0, 0));
    let to_dir = g.dest.ends_with('/') || {
        let f = root.locate(&g.dest, true)?;
        f.meta.as_ref().is_some_and(|m| m.is_dir())
    };
    let opts = crate::layer::ApplyOptions { overlay_whiteouts: false, same_owner: true, allow_devices: false };
    for it in &g.items {
        // Where it goes: into DEST, or as DEST (a single file to a path that is not a directory).
        let (dir_path, name) = match (to_dir, it) {
            (true, _) | (false, Item::Path { dir: true, .. }) | (false, Item::Path { archive: true, .. }) => {
                (g.dest.trim_end_matches('/').to_string(), None)
            }
            (false, _) => {
                let d = g.dest.trim_end_matches('/');
                let (parent, base) = d.rsplit_once('/').unwrap_or(("", d));
                (if parent.is_empty() { "/".to_string() } else { parent.to_string() }, Some(base.to_string()))
            }
        };
        let dir_path = if dir_path.is_empty() { "/".to_string() } else { dir_path };
        let (dir, shown) = make_dirs(k, root, &dir_path, dir_owner)?;
        let mut tar = vec![];
        match it {
            Item::Bytes { name: n, data, mode } => {
                let mut b = tar::Builder::new(&mut tar);
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(g.mode.unwrap_or(*mode));
                let (uid, gid) = owner.unwrap_or((0, 0));
                h.set_uid(uid as u64);
                h.set_gid(gid as u64);
                h.set_size(data.len() as u64);
                h.set_mtime((crate::units::now_nanos() / 1_000_000_000) as u64);
                let arc = name.clone().unwrap_or_else(|| n.clone());
                b.append_data(&mut h, arc, data.as_slice()).map_err(Error::Output)?;
                b.finish().map_err(Error::Output)?;
            }
            Item::Path { archive: true, found, .. } => {
                let f = k.open_read_at(&found.dir, &found.shown, &found.name)?;
                let _s = k.scope(crate::layer::TOOL);
                let r = crate::layer::decompress(f)?;
                crate::layer::apply_at(k, r, dir, &shown, &opts)?;
                continue;
            }
            Item::Path { rel, found, dir: is_dir, .. } => {
                let mut t = TarOut::new(k, &mut tar);
                t.rewrite = rewrite(g, rel, *is_dir, false, owner);
                let base = rel.rsplit('/').next().unwrap_or(rel).to_string();
                let arc = match (is_dir, &name) {
                    (true, _) => String::new(),
                    (false, Some(n)) => n.clone(),
                    (false, None) => base,
                };
                t.add(&found.dir, &found.shown, &found.name, &arc, "/")?;
                t.finish()?;
            }
        }
        let _s = k.scope(crate::layer::TOOL);
        crate::layer::apply_at(k, std::io::Cursor::new(tar), dir, &shown, &opts)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_quoting_as_go() {
        assert_eq!(duration_ns("5s"), Some(5_000_000_000));
        assert_eq!(duration_ns("1m30s"), Some(90_000_000_000));
        assert_eq!(duration_ns("500ms"), Some(500_000_000));
        assert_eq!(duration_ns("5"), None);
        assert_eq!(go_quoted(&["nginx".into(), "-g".into(), "daemon off;".into()]), r#"["nginx" "-g" "daemon off;"]"#);
    }

    #[test]
    fn paths_are_cleaned_as_go() {
        assert_eq!(clean("/a/./b/../c//d"), "/a/c/d");
        assert_eq!(clean("/../x"), "/x");
        let st = State {
            image: None,
            config: serde_json::from_value(json!({"WorkingDir": "/srv"})).unwrap(),
            args: BTreeMap::new(),
            cmd_set: false,
            author: None,
        };
        assert_eq!(st.abs("app/"), "/srv/app/");
        assert_eq!(st.abs("."), "/srv/");
        assert_eq!(st.abs("/etc/x"), "/etc/x");
    }

    #[test]
    fn archives_are_told_by_their_first_bytes() {
        assert!(is_archive(&[0x1f, 0x8b, 8, 0]));
        let mut t = vec![0u8; 512];
        t[257..262].copy_from_slice(b"ustar");
        assert!(is_archive(&t));
        assert!(!is_archive(b"hello"));
    }
}
