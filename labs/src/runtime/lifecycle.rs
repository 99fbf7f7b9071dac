//! A container's life as operations over plain data: create, start, stop, kill,
//! remove, wait, rename, pause, update. Each returns a value and prints nothing; the
//! CLI ([`super::cli`]) turns flags into a [`CreateSpec`] and values into docker's
//! output.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::cgroup::{Cgroups, Group, Limits, Max};
use crate::error::{Error, Result};
use crate::image::{self, Reference, Store};
use crate::kernel::{Kernel, Pid, Signal, Want};

use super::resources::{self, Settings};
use super::spec::{self, ImageConfig};
use super::state::{no_such_container, Config, Container, Containers, Status};

/// Everything `mini create`/`run` was given, as plain data.
#[derive(Debug, Clone, Default)]
pub struct CreateSpec {
    /// The image as named.
    pub image: String,
    /// What follows the image.
    pub args: Vec<String>,
    /// `--name`.
    pub name: Option<String>,
    /// `--hostname`.
    pub hostname: Option<String>,
    /// `-e` (`KEY=VALUE` or `KEY`), after `--env-file`'s entries.
    pub env: Vec<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `--entrypoint` (`Some("")` removes the image's).
    pub entrypoint: Option<String>,
    /// `-t`.
    pub tty: bool,
    /// `-i`.
    pub stdin: bool,
    /// `--rm`.
    pub auto_remove: bool,
    /// `--init`.
    pub init: bool,
    /// `--network`.
    pub network: String,
    /// `--ip`, `--network-alias`, `-p`, `-P`, `--expose`, `--dns-search`,
    /// `--dns-option`, `--add-host`, `--link`, `--mac-address`.
    pub net: NetFlags,
    /// `--label`.
    pub labels: Vec<String>,
    /// `--stop-signal`.
    pub stop_signal: Option<String>,
    /// `--stop-timeout`.
    pub stop_timeout: Option<u32>,
    /// `--memory`, `--memory-swap`, `--cpus`, `--cpu-shares`, `--cpuset-cpus`, `--pids-limit`.
    pub memory: Option<u64>,
    /// See `memory`.
    pub memory_swap: Option<i64>,
    /// See `memory`.
    pub nano_cpus: Option<u64>,
    /// See `memory`.
    pub cpu_shares: Option<u64>,
    /// See `memory`.
    pub cpuset_cpus: Option<String>,
    /// See `memory`.
    pub pids_limit: Option<i64>,
    /// `--ulimit`.
    pub ulimits: Vec<(String, u64, u64)>,
    /// `--dns`.
    pub dns: Vec<String>,
    /// `--device`.
    pub devices: Vec<(String, String, String)>,
    /// `-v`, `--mount`, `--tmpfs`, in order.
    pub mounts: Vec<super::volumes::MountRequest>,
    /// `-v` as typed.
    pub binds: Vec<String>,
    /// `--volumes-from NAME[:ro|rw]`.
    pub volumes_from: Vec<String>,
    /// `--read-only`.
    pub readonly_rootfs: bool,
    /// `overlay2` or `devicemapper`.
    pub storage_driver: String,
    /// `--cap-add`, `--cap-drop` (as typed).
    pub cap_add: Vec<String>,
    /// See `cap_add`.
    pub cap_drop: Vec<String>,
    /// `--privileged`.
    pub privileged: bool,
    /// `--security-opt`.
    pub security_opt: Vec<String>,
    /// `--userns`: `host` (no user namespace even with userns-remap), or empty.
    pub userns: String,
    /// No anonymous volumes for the image's VOLUMEs (`mini build`'s COPY steps: docker's
    /// builder writes those into the layer).
    pub skip_image_volumes: bool,
}

/// The network flags of `run`/`create` besides `--network` (see [`super::network`]).
#[derive(Debug, Clone, Default)]
pub struct NetFlags {
    /// `--ip`.
    pub ip: Option<String>,
    /// `--network-alias`.
    pub aliases: Vec<String>,
    /// `-p`, parsed.
    pub publish: Vec<super::state::PortSpec>,
    /// `-P`.
    pub publish_all: bool,
    /// `--expose`, parsed (`80/tcp`).
    pub expose: Vec<String>,
    /// `--dns-search`.
    pub dns_search: Vec<String>,
    /// `--dns-option`.
    pub dns_options: Vec<String>,
    /// `--add-host NAME:IP`.
    pub extra_hosts: Vec<String>,
    /// `--link NAME[:ALIAS]`.
    pub links: Vec<String>,
    /// `--mac-address`.
    pub mac_address: String,
}

/// What happened while getting the image: docker's lines (`Unable to find image...`,
/// one per layer, `Digest:`, `Status:`), for the CLI to print.
pub type PullReport<'a> = &'a mut dyn FnMut(&str);

/// The image, from the store, or pulled (or, for `hello-world`, made from the program
/// contlab built), and its layers extracted once each; with the image store, still
/// locked: `create` holds it until the container's record is saved, so an `rmi` or
/// `prune` meanwhile cannot take the layers it is about to use.
pub fn image_for(
    k: &Kernel,
    root: &Path,
    name: &str,
    report: PullReport<'_>,
) -> Result<(image::Image, Vec<PathBuf>, Store)> {
    let _s = k.scope(image::TOOL);
    let st = Store::open(k, root, true)?;
    let img = match st.resolve(name) {
        Ok(img) => img,
        Err(_) => {
            drop(st);
            let r = Reference::parse(name).map_err(|e| Error::Usage(format!("invalid reference format: {e}")))?;
            report(&format!("Unable to find image '{}' locally", r.familiar()));
            if super::hello::is_hello(&r) {
                super::hello::make(k, root, &r)?;
            } else {
                let mut lines = super::view::PullPrinter::new(report);
                image::pull(k, root, &r, &image::PullOptions::default(), &mut |p| lines.event(p))?;
            }
            let st = Store::open(k, root, true)?;
            let img = st.resolve(&r.to_string())?;
            let dirs = image::layer_dirs(k, &st, &img)?;
            return Ok((img, dirs, st));
        }
    };
    let dirs = image::layer_dirs(k, &st, &img)?;
    Ok((img, dirs, st))
}

/// The configuration of `name` if the store has it (nothing is pulled).
pub fn stored_image_config(k: &Kernel, root: &Path, name: &str) -> Option<ImageConfig> {
    let _s = k.scope(image::TOOL);
    let st = Store::open(k, root, false).ok()?;
    st.resolve(name).ok().map(|img| image_config(&img))
}

fn image_config(img: &image::Image) -> ImageConfig {
    let c = &img.config.config;
    ImageConfig {
        entrypoint: c.entrypoint.clone(),
        cmd: c.cmd.clone(),
        env: c.env.clone(),
        user: c.user.clone(),
        working_dir: c.working_dir.clone(),
        stop_signal: c.stop_signal.clone().unwrap_or_default(),
        labels: c.labels.clone(),
        exposed_ports: c.exposed_ports.clone(),
        volumes: c.volumes.clone(),
    }
}

/// `mini create`: a new container (status `created`), its directories made; nothing
/// runs yet.
pub fn create(k: &Kernel, root: &Path, spec: &CreateSpec, report: PullReport<'_>) -> Result<Container> {
    if let Some(n) = &spec.name {
        if !super::names::valid_name(n) {
            return Err(Error::Usage(format!(
                "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
    }
    let endpoints = check_network(k, root, spec)?;
    // Refused before anything is made, with docker's messages.
    spec::capabilities(&spec.cap_add, &spec.cap_drop, spec.privileged)?;
    // A profile file is read now, as docker's client reads it: the container keeps
    // its text.
    let seccomp_profile = match spec::security_opts(&spec.security_opt)?.seccomp {
        spec::SeccompOpt::Profile(path) => {
            let text = std::fs::read_to_string(&path).map_err(|e| Error::Container {
                code: 125,
                message: format!("opening seccomp profile ({path}) failed: open {path}: {}", e.kind()),
            })?;
            crate::ns::seccomp::parse(&text, &path)?;
            text
        }
        _ => String::new(),
    };
    let remap = super::userns::remap_for(k, &Settings::load(k)?.userns_remap, &spec.userns)?;
    if remap.is_some() && spec.privileged {
        return Err(Error::Container {
            code: 125,
            message: "Error response from daemon: privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode.".into(),
        });
    }
    if remap.is_some() && spec.storage_driver == super::devmapper::NAME {
        return Err(Error::failed(
            "userns-remap works with the overlay2 storage driver only (a thin volume's mount is not idmapped)",
            "run with --userns=host, or use the overlay2 driver",
        ));
    }
    let (img, layers, images) = image_for(k, root, &spec.image, report)?;
    let ic = image_config(&img);
    let cmd = spec::command(&ic, spec.entrypoint.as_deref(), &spec.args)?;
    let argv = cmd.argv();
    let store = Containers::open(k, root)?;
    let id = super::names::new_id();
    let hostname = spec.hostname.clone().unwrap_or_else(|| id[..12].to_string());
    let env = spec::environment(&ic.env, &spec.env, &hostname, spec.tty, |key| std::env::var(key).ok());
    let mut labels: BTreeMap<String, String> = ic.labels.clone();
    for l in &spec.labels {
        let (key, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        labels.insert(key.to_string(), v.to_string());
    }
    let network = match spec.network.as_str() {
        "" | "default" => "bridge".to_string(),
        n => n.to_string(),
    };
    let _names = store.lock_names()?;
    let name = match &spec.name {
        Some(n) => {
            if let Some(other) = store.by_name(n)? {
                return Err(Error::failed(
                    format!(
                        "Error response from daemon: Conflict. The container name \"/{n}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                        other.id
                    ),
                    format!("remove it (`mini rm -f {n}`) or choose another --name"),
                ));
            }
            n.clone()
        }
        None => {
            let taken: Vec<String> = store.ids()?.iter().filter_map(|i| store.load(i).ok()).map(|c| c.name).collect();
            super::names::random_name(|n| taken.iter().any(|t| t == n))
        }
    };
    let mut from = vec![];
    for v in &spec.volumes_from {
        let (n, mode) = v.rsplit_once(':').filter(|(_, m)| *m == "ro" || *m == "rw").unwrap_or((v.as_str(), "rw"));
        from.push((find(&store, n)?, mode == "ro"));
    }
    let image_volumes: &[String] = if spec.skip_image_volumes { &[] } else { &ic.volumes };
    let mounts = super::volumes::resolve(k, root, &spec.mounts, image_volumes, &from)?;
    let mut c = Container {
        id: id.clone(),
        name,
        created: crate::units::rfc3339(crate::units::now_nanos()),
        config: Config {
            image: spec.image.clone(),
            image_id: img.id().to_string(),
            path: argv[0].clone(),
            args: argv[1..].to_vec(),
            entrypoint: cmd.entrypoint,
            cmd: cmd.cmd,
            env,
            user: spec.user.clone().unwrap_or(ic.user),
            working_dir: spec.workdir.clone().unwrap_or(ic.working_dir),
            hostname,
            labels,
            stop_signal: spec.stop_signal.clone().unwrap_or_else(|| {
                if ic.stop_signal.is_empty() {
                    spec::DEFAULT_STOP_SIGNAL.into()
                } else {
                    ic.stop_signal
                }
            }),
            stop_timeout: spec.stop_timeout,
            tty: spec.tty,
            open_stdin: spec.stdin,
            exposed_ports: {
                let mut e = ic.exposed_ports;
                for p in &spec.net.expose {
                    if !e.contains(p) {
                        e.push(p.clone());
                    }
                }
                e
            },
            endpoints,
            publish: spec.net.publish.clone(),
            publish_all: spec.net.publish_all,
            dns_search: spec.net.dns_search.clone(),
            dns_options: spec.net.dns_options.clone(),
            extra_hosts: spec.net.extra_hosts.clone(),
            links: spec.net.links.clone(),
            mac_address: spec.net.mac_address.clone(),
            memory: spec.memory,
            memory_swap: spec.memory_swap,
            nano_cpus: spec.nano_cpus,
            cpu_shares: spec.cpu_shares,
            cpuset_cpus: spec.cpuset_cpus.clone(),
            pids_limit: spec.pids_limit,
            ulimits: spec.ulimits.clone(),
            dns: spec.dns.clone(),
            devices: spec.devices.clone(),
            auto_remove: spec.auto_remove,
            init: spec.init,
            network,
            binds: spec.binds.clone(),
            readonly_rootfs: spec.readonly_rootfs,
            cap_add: spec.cap_add.clone(),
            cap_drop: spec.cap_drop.clone(),
            privileged: spec.privileged,
            security_opt: spec.security_opt.clone(),
            seccomp_profile,
            volumes_from: spec.volumes_from.clone(),
            volumes: ic.volumes.clone(),
            userns_mode: spec.userns.clone(),
            uid_map: remap.as_ref().map(|r| r.uid_map.clone()).unwrap_or_default(),
            gid_map: remap.as_ref().map(|r| r.gid_map.clone()).unwrap_or_default(),
        },
        layers: layers.iter().map(|p| p.display().to_string()).collect(),
        mounts,
        ..Default::default()
    };
    if spec.storage_driver == super::devmapper::NAME {
        c.driver = super::devmapper::NAME.into();
    }
    let made = resources::create_dirs(k, &store, &c).and_then(|_| store.save(&c)).and_then(|_| {
        if c.driver != super::devmapper::NAME {
            return Ok(());
        }
        // The image's layers and the container as thin snapshots, each of the one below.
        // The image store's lock (held since image_for) first, then the pool's: the
        // order rmi takes them in.
        let mut d = super::devmapper::Driver::open(k, root)?;
        let top = d.image(&images, &img)?;
        let p = &store.paths;
        c.device =
            Some(d.create_container(&c.id, &top, &p.init_layer(&c.id).join("diff"), &p.layer(&c.id).join("diff"))?);
        c.device_name = d.name(&c.id);
        store.save(&c)
    });
    if let Err(e) = made {
        let _ = resources::remove(k, &store, &c);
        // Only what no other container uses: --volumes-from's stay with their owner.
        let others = store.all().unwrap_or_default();
        let _ = super::volumes::remove_anonymous(k, root, &c, &others);
        return Err(e);
    }
    Ok(c)
}

/// docker's checks of the network flags at create, before anything is made; the
/// networks the container is to be attached to.
fn check_network(k: &Kernel, root: &Path, spec: &CreateSpec) -> Result<Vec<super::state::EndpointConfig>> {
    let mode = match spec.network.as_str() {
        "" | "default" => "bridge",
        n => n,
    };
    let f = &spec.net;
    let conflict = |what: &str| Error::Container { code: 125, message: format!("Error response from daemon: {what}") };
    if let Some(other) = mode.strip_prefix("container:") {
        if spec.hostname.is_some() {
            return Err(conflict("conflicting options: hostname and the network mode"));
        }
        if !f.publish.is_empty() || f.publish_all {
            return Err(conflict("conflicting options: port publishing and the container type network mode"));
        }
        if !spec.dns.is_empty() || !f.extra_hosts.is_empty() {
            return Err(conflict("conflicting options: dns and the network mode"));
        }
        Containers::open(k, root)?.find(other)?;
        return Ok(vec![]);
    }
    if mode == "host" || mode == "none" {
        if !f.links.is_empty() {
            return Err(conflict("conflicting options: host type networking can't be used with links. This would result in undefined behavior"));
        }
        return Ok(vec![]);
    }
    let rec = super::network::Networks::open(k, root)?.get(mode)?;
    if rec.driver != "bridge" && rec.driver != "overlay" {
        return Err(super::network::not_found(mode));
    }
    if f.ip.is_some() && !rec.user_subnet {
        return Err(conflict(
            "user specified IP address is supported only when connecting to networks with user configured subnets",
        ));
    }
    if !f.aliases.is_empty() && rec.name == "bridge" {
        return Err(conflict("network-scoped alias is supported only for containers in user defined networks"));
    }
    Ok(vec![super::state::EndpointConfig { network: rec.name, ip: f.ip.clone(), aliases: f.aliases.clone() }])
}

/// The trace of this command also goes to the container's trace file, so `mini trace`
/// replays everything done for it.
pub fn trace_into(k: &Kernel, root: &Path, id: &str) {
    let path = super::state::Paths::new(root).trace(id);
    if let Ok(f) =
        k.open_append(&path, "the container's trace file: what this command asks for it is replayed by `mini trace`")
    {
        k.tracer().add_sink(crate::kernel::Sink::new(
            crate::kernel::Target::File(f),
            crate::kernel::TraceFormat::Json,
            false,
            false,
        ));
    }
}

/// How to start: attached (relay stdio until the process ends) or not.
pub struct StartMode {
    /// Relay stdout/stderr (and stdin with `stdin`) until the end.
    pub attach: bool,
    /// Relay our stdin.
    pub stdin: bool,
    /// The detach keys.
    pub detach_keys: Vec<u8>,
    /// Trace options passed on to the monitor's command line.
    pub trace_args: Vec<String>,
}

/// What `start` ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// Running in the background (or it was already running).
    Detached,
    /// Attached until it ended: its exit status.
    Exited(i32),
    /// Attached until the user pressed the detach keys.
    DetachedByUser,
}

/// `mini start`: make what the run needs, start the monitor, ask it to start the
/// first process, and maybe stay attached.
pub fn start(k: &Kernel, root: &Path, c: &Container, mode: &StartMode) -> Result<Started> {
    let store = Containers::open(k, root)?;
    let settings = Settings::load(k)?;
    let mut c = {
        let _l = store.lock(&c.id)?;
        let mut c = store.load(&c.id)?;
        store.refresh(&mut c);
        if c.state.status.is_up() {
            return Ok(Started::Detached);
        }
        if c.state.status == Status::Dead {
            resources::release(k, &store, &mut c);
        }
        let caps = spec::capabilities(&c.config.cap_add, &c.config.cap_drop, c.config.privileged)?;
        resources::prepare(k, &store, &mut c, &settings, &caps)?;
        store.save(&c)?;
        c
    };
    let (sync_r, sync_w) = k.pipe()?;
    // The monitor says `ready` on this pipe; it inherits the write end at a number of
    // its own (not a fixed one: a low number may be a trace file this process writes).
    let inherited = k.dup_inheritable(std::os::fd::AsFd::as_fd(&sync_w), 10)?;
    drop(sync_w);
    let sync_w = inherited;
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "/proc/self/exe".into());
    let mut argv = vec![exe];
    argv.extend(mode.trace_args.iter().cloned());
    argv.extend(["--root".into(), root.display().to_string(), "__monitor".into(), c.id.clone()]);
    argv.extend(["--sync-fd".into(), sync_w.as_raw_fd().to_string()]);
    let spawned = {
        let _s = k.scope(super::TOOL);
        k.note("start the container's monitor: mini itself, executed again");
        k.spawn(&argv, |k| {
            // Not our stdin and stdout: a `$(mini run -d ...)` must not wait for the
            // monitor to close them. stderr carries the start's trace, until handover.
            k.redirect_fds(Path::new("/dev/null"), &[0, 1]).map_err(|e| e.to_string())
        })
    };
    drop(sync_w);
    if let Err(f) = spawned {
        resources::release(k, &store, &mut c);
        return Err(f.into());
    }
    // The monitor writes "ready" once its record is saved, or dies: end of file.
    let mut ready = [0u8; 16];
    let n = k.io().read(sync_r.as_fd(), &mut ready).unwrap_or(0);
    drop(sync_r);
    if !ready[..n].starts_with(b"ready") {
        let _l = store.lock(&c.id)?;
        let mut c = store.load(&c.id)?;
        resources::release(k, &store, &mut c);
        return Err(Error::failed(
            format!("the monitor of {} did not start", c.short_id()),
            format!("see its trace: mini trace {}", c.short_id()),
        ));
    }
    let trace = super::proto::TraceOpts::default();
    let size = if c.config.tty { k.winsize(std::io::stdout().as_fd()) } else { None };
    let hello = super::proto::Hello::Start { attach: mode.attach, stdin: mode.stdin, size, trace };
    let mut s = super::attach::connect(k, &store.paths.socket(&c.id), &hello)?;
    let pid = super::attach::started(&mut s)?;
    c.state.pid = pid;
    if !mode.attach {
        return Ok(Started::Detached);
    }
    let relay = super::attach::Relay {
        tty: c.config.tty,
        stdin: mode.stdin,
        detach_keys: (c.config.tty && mode.stdin).then(|| mode.detach_keys.clone()),
        sig_proxy: (!c.config.tty).then_some(pid),
        k,
    };
    match super::attach::relay(s, &relay)? {
        super::attach::Ended::Exit(code, _) => Ok(Started::Exited(code)),
        super::attach::Ended::Detached => Ok(Started::DetachedByUser),
        super::attach::Ended::Lost => {
            let c = store.find(&c.id).ok();
            Ok(Started::Exited(c.map(|c| c.state.exit_code).unwrap_or(125)))
        }
    }
}

/// Wait until the monitor of `c` has ended (it has recorded the exit), or `timeout_ms`.
/// Returns whether it ended.
pub fn wait_monitor(k: &Kernel, c: &Container, timeout_ms: i32) -> Result<bool> {
    if c.state.monitor_pid <= 0 || !c.state.status.is_up() {
        return Ok(true);
    }
    let fd: OwnedFd = match k.pidfd_open(c.state.monitor_pid) {
        Ok(fd) => fd,
        Err(_) => return Ok(true),
    };
    let r = k
        .io()
        .poll(&[(fd.as_fd(), Want::Read)], timeout_ms)
        .map_err(|e| Error::failed(format!("poll: {e}"), "retry"))?;
    Ok(r[0].read || r[0].hup)
}

/// `mini stop`: the stop signal, then SIGKILL after `timeout` seconds.
pub fn stop(k: &Kernel, store: &Containers, c: &Container, timeout: Option<u32>) -> Result<()> {
    if !c.state.status.is_up() || c.state.pid <= 0 {
        return Ok(());
    }
    let sig = spec::parse_signal(&c.config.stop_signal).unwrap_or(Signal::SIGTERM);
    let secs = timeout.or(c.config.stop_timeout).unwrap_or(10);
    if c.state.status == Status::Paused {
        let _ = unpause(k, store, c);
    }
    k.why("ask the container's first process to end (its image's StopSignal, else SIGTERM)")
        .kill(Pid::from_raw(c.state.pid), sig)
        .ok();
    if !wait_monitor(k, c, (secs * 1000) as i32)? {
        k.note(format!(
            "still running after {secs} s: SIGKILL (PID 1 of a PID namespace ignores signals it has no handler for)"
        ));
        k.kill(Pid::from_raw(c.state.pid), Signal::SIGKILL).ok();
        wait_monitor(k, c, 30_000)?;
    }
    Ok(())
}

/// `mini kill`: send a signal to the first process.
pub fn kill(k: &Kernel, c: &Container, sig: Signal) -> Result<()> {
    if !c.state.status.is_up() || c.state.pid <= 0 {
        return Err(Error::Failed {
            what: format!(
                "Error response from daemon: Cannot kill container: {}: Container {} is not running",
                c.name, c.id
            ),
            hint: None,
        });
    }
    k.kill(Pid::from_raw(c.state.pid), sig)?;
    Ok(())
}

/// `mini rm`: refuse a running container unless `force` (then SIGKILL it first).
pub fn remove(k: &Kernel, store: &Containers, c: &Container, force: bool) -> Result<()> {
    if c.state.status.is_up() {
        if !force {
            return Err(Error::Failed {
                what: format!(
                    "Error response from daemon: You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                    c.id
                ),
                hint: None,
            });
        }
        k.kill(Pid::from_raw(c.state.pid), Signal::SIGKILL).ok();
        wait_monitor(k, c, 30_000)?;
    }
    let _l = store.lock(&c.id)?;
    let Ok(mut now) = store.load(&c.id) else {
        // The monitor of an --rm container removed it meanwhile.
        return Ok(());
    };
    store.refresh(&mut now);
    resources::remove(k, store, &now)
}

/// `mini wait`: block until the container has stopped; its exit code.
pub fn wait(k: &Kernel, store: &Containers, c: &Container) -> Result<i32> {
    while !wait_monitor(k, c, 60_000)? {}
    match store.load(&c.id) {
        Ok(c) => Ok(c.state.exit_code),
        Err(_) => Ok(c.state.exit_code),
    }
}

/// `mini rename`.
pub fn rename(store: &Containers, c: &Container, new: &str) -> Result<()> {
    if !super::names::valid_name(new) {
        return Err(Error::Usage(format!(
            "Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    let _n = store.lock_names()?;
    if let Some(other) = store.by_name(new)? {
        return Err(Error::Failed {
            what: format!("Error response from daemon: Conflict. The container name \"/{new}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.", other.id),
            hint: None,
        });
    }
    let _l = store.lock(&c.id)?;
    let mut now = store.load(&c.id)?;
    now.name = new.to_string();
    store.save(&now)
}

fn group(k: &Kernel, c: &Container) -> Result<(std::rc::Rc<Cgroups>, Group)> {
    let s = Settings::load(k)?;
    let _s = k.scope(crate::cgroup::TOOL);
    let cg = resources::cgroups(k, &s.cgroup_root)?;
    let g = Group::open(k, &cg, &resources::group_name(c))?;
    Ok((cg, g))
}

fn must_run(c: &Container) -> Result<()> {
    if c.state.status.is_up() {
        Ok(())
    } else {
        Err(Error::Failed {
            what: format!("Error response from daemon: Container {} is not running", c.id),
            hint: None,
        })
    }
}

/// `mini pause`: freeze the container's cgroup.
pub fn pause(k: &Kernel, store: &Containers, c: &Container) -> Result<()> {
    must_run(c)?;
    if c.state.status == Status::Paused {
        return Err(Error::Failed {
            what: format!("Error response from daemon: Container {} is already paused", c.id),
            hint: None,
        });
    }
    let (_, mut g) = group(k, c)?;
    {
        let _s = k.scope(crate::cgroup::TOOL);
        g.freeze(k)?;
    }
    let _l = store.lock(&c.id)?;
    let mut now = store.load(&c.id)?;
    now.state.status = Status::Paused;
    store.save(&now)
}

/// `mini unpause`: thaw it.
pub fn unpause(k: &Kernel, store: &Containers, c: &Container) -> Result<()> {
    if c.state.status != Status::Paused {
        return Err(Error::Failed {
            what: format!("Error response from daemon: Container {} is not paused", c.id),
            hint: None,
        });
    }
    let (_, g) = group(k, c)?;
    {
        let _s = k.scope(crate::cgroup::TOOL);
        g.thaw(k)?;
    }
    let _l = store.lock(&c.id)?;
    let mut now = store.load(&c.id)?;
    now.state.status = Status::Running;
    store.save(&now)
}

/// What `mini update` changes.
#[derive(Debug, Clone, Default)]
pub struct Update {
    /// `--memory`.
    pub memory: Option<u64>,
    /// `--cpus`, as NanoCpus.
    pub nano_cpus: Option<u64>,
    /// `--pids-limit`.
    pub pids_limit: Option<i64>,
}

/// `mini update`: change the limits of a running container, live, and record them.
pub fn update(k: &Kernel, store: &Containers, c: &Container, u: &Update) -> Result<()> {
    let _l = store.lock(&c.id)?;
    let mut now = store.load(&c.id)?;
    if let Some(m) = u.memory {
        now.config.memory = Some(m);
    }
    if let Some(n) = u.nano_cpus {
        now.config.nano_cpus = Some(n);
    }
    if let Some(p) = u.pids_limit {
        now.config.pids_limit = Some(p);
    }
    if now.state.status.is_up() {
        let (_, mut g) = group(k, &now)?;
        let limits = Limits {
            memory: u.memory.map(Max::Value),
            memory_swap: u.memory.and(resources::memory_swap(now.config.memory, now.config.memory_swap)),
            cpus: u
                .nano_cpus
                .map(|n| crate::cgroup::Cpus::Quota { quota_us: (n / 10_000).max(1000), period_us: 100_000 }),
            pids: u.pids_limit.map(|p| if p <= 0 { Max::Max } else { Max::Value(p as u64) }),
            ..Default::default()
        };
        let _s = k.scope(crate::cgroup::TOOL);
        g.set(k, &limits)?;
    }
    store.save(&now)
}

/// One reading of a running container's counters, for `mini stats`: its cgroup's
/// CPU time, memory and tasks, its block I/O, and its network namespace's traffic
/// (`/proc/PID/net/dev` shows the counters of the namespace PID is in).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time used so far, µs, all CPUs summed.
    pub cpu_usec: u64,
    /// Memory in use, bytes, without the inactive page cache (as `docker stats`).
    pub memory: u64,
    /// The memory limit, bytes (`None`: no limit).
    pub memory_limit: Option<u64>,
    /// Processes and threads.
    pub pids: usize,
    /// Bytes received and sent on the container's interfaces (not `lo`).
    pub net: (u64, u64),
    /// Bytes read from and written to block devices.
    pub block: (u64, u64),
}

/// Read `c`'s counters (see [`Usage`]).
pub fn usage(k: &Kernel, c: &Container) -> Result<Usage> {
    must_run(c)?;
    let (_, g) = group(k, c)?;
    let st = g.stats(k);
    let block = g.io_bytes(k);
    // --network host: the host's interfaces are not the container's (docker shows none).
    let dev = if c.config.network == "host" {
        String::new()
    } else {
        k.read_file(Path::new(&format!("/proc/{}/net/dev", c.state.pid))).unwrap_or_default()
    };
    let mut net = (0, 0);
    for l in dev.lines().skip(2) {
        let Some((name, counters)) = l.split_once(':') else { continue };
        let f: Vec<u64> = counters.split_whitespace().map(|v| v.parse().unwrap_or(0)).collect();
        if name.trim() != "lo" && f.len() > 8 {
            net.0 += f[0];
            net.1 += f[8];
        }
    }
    let memory_limit = match st.limits.memory_max {
        Some(crate::cgroup::Max::Value(v)) if v < 1 << 62 => Some(v),
        _ => None,
    };
    Ok(Usage {
        cpu_usec: st.cpu.usage_usec.unwrap_or(0),
        memory: st.memory.current.unwrap_or(0).saturating_sub(g.inactive_file(k)),
        memory_limit,
        pids: st.pids.current.map(|n| n as usize).unwrap_or(st.procs.len()),
        net,
        block,
    })
}

/// The processes of `c` (host PIDs), for `mini top`.
pub fn processes(k: &Kernel, c: &Container) -> Result<Vec<i32>> {
    must_run(c)?;
    let (_, g) = group(k, c)?;
    let _s = k.scope(crate::cgroup::TOOL);
    g.procs(k)
}

/// Find every container named in `what` (IDs, names, prefixes), failing on the first
/// unknown one as docker does for commands that take one.
pub fn find(store: &Containers, what: &str) -> Result<Container> {
    store.find(what).map_err(|e| match e {
        Error::Failed { .. } => e,
        _ => no_such_container(what),
    })
}

/// The raw descriptor number (for logs).
pub fn raw(fd: &impl AsRawFd) -> i32 {
    fd.as_raw_fd()
}
