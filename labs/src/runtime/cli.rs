//! `mini`'s command line: docker's commands, flags, output formats and exit codes,
//! over the operations of [`super::lifecycle`].
//!
//! The trace options (`-q`, `--explain`, `--trace=json`, `--trace-file`, `--color`)
//! go *before* the command (`mini -q ps`, `mini --explain run ...`), because after it
//! docker's own flags rule: `mini ps -q` prints IDs, as `docker ps -q` does.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::cli::CommonOpts;
use crate::error::{Error, Result};
use crate::exit::{Exit, Role};
use crate::kernel::{ColorChoice, Kernel, TraceFormat};

use super::lifecycle::{self, CreateSpec, StartMode, Started};
use super::state::{Container, Containers};
use super::{spec, view, volumes, TOOL};

/// A daemonless container runtime made of contlab's labs: docker's commands, and every
/// request made of the kernel printed on stderr, grouped by the lab that made it.
#[derive(Parser, Debug)]
#[command(name = "mini", version, disable_help_subcommand = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
    /// The store: images, containers (`$CONTLAB_ROOT`).
    #[arg(long, value_name = "DIR", env = "CONTLAB_ROOT", default_value = "/var/lib/contlab")]
    pub root: PathBuf,
    /// Print no trace of kernel requests.
    #[arg(short, long)]
    pub quiet: bool,
    /// After each kernel request, what it does, why, and its man page.
    #[arg(long)]
    pub explain: bool,
    /// Trace format: text, or JSON Lines.
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "text")]
    pub trace: TraceFormat,
    /// Write the trace to this file (appended) instead of stderr.
    #[arg(long, value_name = "PATH")]
    pub trace_file: Option<PathBuf>,
    /// Color the trace: auto, always, never.
    #[arg(long, value_enum, value_name = "WHEN", default_value = "auto")]
    pub color: ColorChoice,
    /// The storage driver of new containers: overlay2 (default) or devicemapper
    /// (`$CONTLAB_STORAGE_DRIVER`, or mini.json's storage-driver).
    #[arg(long, short = 's', value_name = "DRIVER", env = "CONTLAB_STORAGE_DRIVER")]
    pub storage_driver: Option<String>,
}

/// docker's commands, as far as the course uses them (and further).
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Create and start a container (pulling the image if needed).
    #[command(disable_help_flag = true)]
    Run(RunArgs),
    /// Create a container without starting it; print its ID.
    #[command(disable_help_flag = true)]
    Create(RunArgs),
    /// Start stopped containers.
    Start {
        /// Attach stdout/stderr and wait for the end.
        #[arg(short, long)]
        attach: bool,
        /// Attach stdin.
        #[arg(short, long)]
        interactive: bool,
        /// The keys that detach: `ctrl-p,ctrl-q` unless given.
        #[arg(long, value_name = "KEYS")]
        detach_keys: Option<String>,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop running containers: the stop signal, then SIGKILL after a grace period.
    Stop {
        /// Seconds to wait before SIGKILL (the container's --stop-timeout, else 10).
        #[arg(short = 't', long = "time", value_name = "SECONDS")]
        time: Option<u32>,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Restart containers (stop, then start).
    Restart {
        /// Seconds to wait before SIGKILL.
        #[arg(short = 't', long = "time", value_name = "SECONDS")]
        time: Option<u32>,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Send a signal to running containers (SIGKILL by default).
    Kill {
        /// The signal.
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove containers.
    Rm {
        /// Kill a running container first.
        #[arg(short, long)]
        force: bool,
        /// Also its anonymous volumes.
        #[arg(short, long)]
        volumes: bool,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// List containers.
    Ps(PsArgs),
    /// Manage volumes: create, ls, inspect, rm, prune.
    Volume {
        /// What to do.
        #[command(subcommand)]
        cmd: super::volume_cli::VolumeCmd,
    },
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// Show a container's output.
    Logs {
        /// Follow the output until the container stops.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines (`all`).
        #[arg(short = 'n', long, value_name = "N")]
        tail: Option<String>,
        /// Prefix each line with its time.
        #[arg(short, long)]
        timestamps: bool,
        /// Only lines since this time (RFC 3339, Unix time, or 10m, 1h...).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// The container.
        container: String,
    },
    /// Attach to a running container's terminal or output.
    Attach {
        /// The keys that detach: `ctrl-p,ctrl-q` unless given.
        #[arg(long, value_name = "KEYS")]
        detach_keys: Option<String>,
        /// Do not attach stdin.
        #[arg(long)]
        no_stdin: bool,
        /// Pass the signals mini gets on to the container (without a terminal).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        sig_proxy: bool,
        /// The container.
        container: String,
    },
    /// Wait until containers stop; print their exit codes.
    Wait {
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Rename a container.
    Rename {
        /// The container.
        container: String,
        /// Its new name.
        new_name: String,
    },
    /// Show the processes of a container (the host's ps, with these options).
    Top {
        /// The container.
        container: String,
        /// Options for ps (default -ef).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Show a container's published ports.
    Port {
        /// The container.
        container: String,
        /// Only this port (80, 80/udp).
        port: Option<String>,
    },
    /// Manage networks: create, ls, inspect, rm, prune, connect, disconnect.
    Network {
        /// What to do.
        #[command(subcommand)]
        cmd: super::network_cli::NetworkCmd,
    },
    /// Freeze every process of containers (the cgroup freezer).
    Pause {
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Thaw paused containers.
    Unpause {
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Change the limits of containers, live.
    Update {
        /// Memory limit (64m, 1g).
        #[arg(short, long, value_name = "BYTES")]
        memory: Option<String>,
        /// CPUs (0.5, 2).
        #[arg(long, value_name = "CPUS")]
        cpus: Option<String>,
        /// Max tasks (-1: unlimited).
        #[arg(long, value_name = "N", allow_hyphen_values = true)]
        pids_limit: Option<i64>,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Show containers' resource usage.
    Stats {
        /// One sample, then exit.
        #[arg(long)]
        no_stream: bool,
        /// A Go template per container (`{{.Name}} {{.MemUsage}}`); `table ...` for columns.
        #[arg(long, value_name = "TEMPLATE")]
        format: Option<String>,
        /// Containers (default: all running).
        containers: Vec<String>,
    },
    /// Low-level information on containers (or images), as JSON.
    Inspect {
        /// A Go template (`{{.State.Pid}}`).
        #[arg(short, long, value_name = "TEMPLATE")]
        format: Option<String>,
        /// Containers or images.
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// Replay everything a container asked of the kernel (mini's commands and its monitor).
    Trace {
        /// Group the requests by the lab (primitive) that made them.
        #[arg(long)]
        by_primitive: bool,
        /// The container.
        container: String,
    },
    /// The image commands: pull, images, rmi, tag, history, save, load, image, system.
    #[command(flatten)]
    Images(super::images::Cmds),
    /// mini's version, and the kernel it runs on.
    Version,
    /// What mini sees of this machine: containers, storage, cgroups, kernel.
    Info,
    /// diff, commit, export, import, cp.
    #[command(flatten)]
    Changes(super::changes::Cmds),
    /// Build an image from a Dockerfile.
    Build(super::build_cli::BuildArgs),
    /// The monitor of one container (mini starts it; not for typing).
    #[command(name = "__monitor", hide = true)]
    Monitor {
        /// The container.
        id: String,
        /// The pipe to say `ready` on.
        #[arg(long)]
        sync_fd: Option<i32>,
    },
}

impl Cmd {
    /// Whether the command makes or changes kernel objects (mounts, cgroups,
    /// namespaces, signals to root's processes): those need root.
    fn needs_root(&self) -> bool {
        if let Cmd::Run(a) | Cmd::Create(a) = self {
            // --script only prints.
            return !a.script;
        }
        if let Cmd::Changes(c) = self {
            return c.needs_root();
        }
        if let Cmd::Images(c) = self {
            return c.needs_root();
        }
        if let Cmd::Network { cmd } = self {
            return cmd.needs_root();
        }
        matches!(
            self,
            Cmd::Start { .. }
                | Cmd::Stop { .. }
                | Cmd::Restart { .. }
                | Cmd::Kill { .. }
                | Cmd::Rm { .. }
                | Cmd::Exec(_)
                | Cmd::Pause { .. }
                | Cmd::Unpause { .. }
                | Cmd::Update { .. }
                | Cmd::Monitor { .. }
                | Cmd::Build(_)
        )
    }

    /// The command's name, as typed.
    fn name(&self) -> String {
        if let Cmd::Changes(c) = self {
            return c.name();
        }
        if let Cmd::Images(c) = self {
            return c.name().into();
        }
        format!("{self:?}").split(['(', ' ', '{']).next().unwrap_or_default().to_lowercase()
    }
}

/// `run` and `create`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Print help (`-h` is --hostname, as with docker).
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Run in the background; print the container's ID.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep stdin open.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Its name (a random adjective_surname otherwise).
    #[arg(long)]
    pub name: Option<String>,
    /// Its hostname (its short ID otherwise).
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Set environment variables (KEY=VALUE, or KEY to take mini's value).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read environment variables from a file.
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// The working directory inside.
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// uid[:gid] or name[:group], looked up in the image's /etc/passwd and /etc/group.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Replace the image's entrypoint ("" removes it).
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Run a tiny init as PID 1 that forwards signals and reaps zombies.
    #[arg(long)]
    pub init: bool,
    /// Memory limit (64m, 1g).
    #[arg(short, long, value_name = "BYTES")]
    pub memory: Option<String>,
    /// Memory + swap limit (-1: unlimited swap).
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs (0.5, 2).
    #[arg(long, value_name = "CPUS")]
    pub cpus: Option<String>,
    /// CPU shares (relative weight).
    #[arg(short = 'c', long, value_name = "N")]
    pub cpu_shares: Option<u64>,
    /// CPUs it may run on (0-1, 0,2).
    #[arg(long, value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// Max tasks (-1: unlimited).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Resource limits (nofile=1024:2048).
    #[arg(long, value_name = "NAME=SOFT[:HARD]")]
    pub ulimit: Vec<String>,
    /// A DNS server for the container's /etc/resolv.conf, in place of the host's.
    #[arg(long, value_name = "IP")]
    pub dns: Vec<std::net::IpAddr>,
    /// The signal `stop` sends first.
    #[arg(long, value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL.
    #[arg(long, value_name = "SECONDS")]
    pub stop_timeout: Option<u32>,
    /// Labels (KEY=VALUE).
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// A host device in the container (HOST[:CONTAINER[:PERMS]]).
    #[arg(long, value_name = "DEVICE")]
    pub device: Vec<String>,
    /// bridge (mini's default bridge), a network's name, none, host, or
    /// container:NAME (share that container's).
    #[arg(long, alias = "net", default_value = "bridge")]
    pub network: String,
    /// Its address on the network (one whose subnet was given).
    #[arg(long, value_name = "IP")]
    pub ip: Option<String>,
    /// More names on the network (user networks only).
    #[arg(long, alias = "net-alias", value_name = "NAME")]
    pub network_alias: Vec<String>,
    /// Publish a port: [IP:][HOST_PORT:]CONTAINER_PORT[/udp].
    #[arg(short, long, value_name = "SPEC")]
    pub publish: Vec<String>,
    /// Publish every exposed port to a free host port.
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// Expose a port (or a range) without publishing it.
    #[arg(long, value_name = "PORT")]
    pub expose: Vec<String>,
    /// A search domain for /etc/resolv.conf.
    #[arg(long, value_name = "DOMAIN")]
    pub dns_search: Vec<String>,
    /// An option for /etc/resolv.conf (ndots:2).
    #[arg(long, alias = "dns-opt", value_name = "OPTION")]
    pub dns_option: Vec<String>,
    /// A line of /etc/hosts: NAME:IP (IP may be host-gateway).
    #[arg(long, value_name = "NAME:IP")]
    pub add_host: Vec<String>,
    /// Legacy link: NAME[:ALIAS] in /etc/hosts (the default bridge).
    #[arg(long, value_name = "NAME[:ALIAS]")]
    pub link: Vec<String>,
    /// The MAC address of eth0.
    #[arg(long, value_name = "MAC")]
    pub mac_address: Option<String>,
    /// A volume or bind mount: NAME:/path, /host/path:/path, or /path (anonymous);
    /// `:ro` for read-only.
    #[arg(short, long = "volume", value_name = "[SRC:]DST[:MODE]")]
    pub volume: Vec<String>,
    /// A mount: type=bind|volume|tmpfs,source=…,target=…[,readonly][,tmpfs-size=…]…
    #[arg(long, value_name = "SPEC")]
    pub mount: Vec<String>,
    /// A tmpfs on a path (/run:size=64m,mode=1777).
    #[arg(long, value_name = "DST[:OPTIONS]")]
    pub tmpfs: Vec<String>,
    /// The volumes and binds of another container (NAME[:ro|rw]).
    #[arg(long, value_name = "CONTAINER")]
    pub volumes_from: Vec<String>,
    /// The root filesystem read-only.
    #[arg(long)]
    pub read_only: bool,
    /// Add Linux capabilities (`NET_ADMIN`, `CAP_SYS_TIME`, `ALL`).
    #[arg(long, value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities (`ALL` drops every one; then --cap-add puts some back).
    #[arg(long, value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Give extended privileges: every capability, every host device, no masked or
    /// read-only paths, /sys writable.
    #[arg(long)]
    pub privileged: bool,
    /// Security options: `no-new-privileges[:true|false]`, `seccomp=unconfined`.
    #[arg(long, value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// User namespace to use: `host` runs without one even when mini's settings say
    /// `userns-remap`.
    #[arg(long, value_name = "MODE", default_value = "")]
    pub userns: String,
    /// The keys that detach: `ctrl-p,ctrl-q` unless given.
    #[arg(long, value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// Print, instead of running, a shell script of the primitives that make the same
    /// container.
    #[arg(long)]
    pub script: bool,
    /// The image, then the command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE [COMMAND] [ARG...]"
    )]
    pub image_and_command: Vec<String>,
}

/// `ps`.
#[derive(Args, Debug, Clone)]
pub struct PsArgs {
    /// All containers (default: running ones).
    #[arg(short, long)]
    pub all: bool,
    /// Only IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// The last N created.
    #[arg(short = 'n', long, value_name = "N")]
    pub last: Option<usize>,
    /// The last created.
    #[arg(short, long)]
    pub latest: bool,
    /// Do not cut IDs and commands.
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter: status=, name=, ancestor=, id=, label=.
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// A Go template, or `table TEMPLATE`.
    #[arg(long, value_name = "TEMPLATE")]
    pub format: Option<String>,
}

/// `exec`.
#[derive(Args, Debug, Clone)]
pub struct ExecArgs {
    /// Run in the background.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep stdin open.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// uid[:gid] or name.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Environment variables.
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// The keys that detach.
    #[arg(long, value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// The container, then the command.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CONTAINER COMMAND [ARG...]"
    )]
    pub target_and_command: Vec<String>,
}

/// Parse mini's command line as docker's does: a bad flag exits 125 (clap's own
/// usage errors exit 2), help and version 0.
pub fn parse() -> std::result::Result<Cli, std::process::ExitCode> {
    Cli::try_parse().map_err(|e| {
        let _ = e.print();
        match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0.into(),
            _ => 125.into(),
        }
    })
}

impl Cli {
    /// `run`, `start`, `exec`, `attach` run a command: their own failures exit 125,
    /// as docker's do; the rest exit 1.
    pub fn role(&self) -> Role {
        match self.cmd {
            Cmd::Run(_) | Cmd::Start { .. } | Cmd::Exec(_) | Cmd::Create(_) => Role::Docker,
            _ => Role::Tool,
        }
    }

    fn common(&self) -> CommonOpts {
        CommonOpts {
            quiet: self.quiet,
            explain: self.explain,
            trace: self.trace,
            trace_file: self.trace_file.clone(),
            color: self.color,
            dry_run: false,
        }
    }

    /// The trace flags again, for the monitor's command line.
    fn trace_args(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.quiet {
            v.push("-q".into());
        }
        if self.explain {
            v.push("--explain".into());
        }
        if self.trace == TraceFormat::Json {
            v.push("--trace=json".into());
        }
        if let Some(f) = &self.trace_file {
            v.push("--trace-file".into());
            v.push(f.display().to_string());
        }
        v.push(format!(
            "--color={}",
            if self.common().kernel(TOOL).map(|k| k.color()).unwrap_or(false) { "always" } else { "never" }
        ));
        v
    }
}

pub(super) fn out(text: &str) -> Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes()).and_then(|_| o.flush()).map_err(Error::Output)
}

/// Ask docker's question (`… [y/N] `) on stdout; whether the answer, a line of stdin,
/// is yes (`y`, `Y` or `yes`).
pub(super) fn confirm(question: &str) -> bool {
    let _ = out(&format!("{question} [y/N] "));
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    matches!(line.trim(), "y" | "Y" | "yes")
}

pub(super) fn stderr_line(s: &str) {
    let _ = writeln!(std::io::stderr(), "{s}");
}

/// A limit docker's daemon refuses (so docker exits 125, not 2 as for a bad flag).
fn daemon_refuses(what: &str) -> Error {
    Error::failed(format!("Error response from daemon: {what}"), "see mini run --help for the limits' rules")
}

fn create_spec(k: &Kernel, a: &RunArgs) -> Result<CreateSpec> {
    let mut env = Vec::new();
    for f in &a.env_file {
        let text = k.read_file(f).map_err(|e| Error::Usage(format!("open {}: {}", f.display(), e.errno.desc())))?;
        env.extend(spec::parse_env_file(&text, &f.display().to_string())?);
    }
    env.extend(a.env.iter().cloned());
    let memory = a.memory.as_deref().map(spec::ram_in_bytes).transpose()?;
    if memory.is_some_and(|m| m < 6 << 20) {
        return Err(daemon_refuses("Minimum memory limit allowed is 6MB"));
    }
    // docker's rules: 0 is unset, -1 unlimited; it needs --memory, and holds it.
    let memory_swap = match a.memory_swap.as_deref() {
        Some("-1") => Some(-1),
        Some("0") | None => None,
        Some(s) => Some(spec::ram_in_bytes(s)? as i64),
    };
    match (memory, memory_swap) {
        (None, Some(_)) => {
            return Err(daemon_refuses("You should always set the Memory limit when using Memoryswap limit, see usage"))
        }
        (Some(m), Some(t)) if t >= 0 && (t as u64) < m => {
            return Err(daemon_refuses("Minimum memoryswap limit should be larger than memory limit, see usage"))
        }
        _ => {}
    }
    Ok(CreateSpec {
        image: a.image_and_command[0].clone(),
        args: a.image_and_command[1..].to_vec(),
        name: a.name.clone(),
        hostname: a.hostname.clone(),
        env,
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        entrypoint: a.entrypoint.clone(),
        tty: a.tty,
        stdin: a.interactive,
        auto_remove: a.rm,
        init: a.init,
        network: a.network.clone(),
        net: net_flags(a)?,
        labels: a.label.clone(),
        stop_signal: a
            .stop_signal
            .as_deref()
            .map(|s| spec::parse_signal(s).map(|sg| sg.as_str().to_string()))
            .transpose()?,
        stop_timeout: a.stop_timeout,
        memory,
        memory_swap,
        nano_cpus: a.cpus.as_deref().map(spec::nano_cpus).transpose()?,
        // 0 is docker's "unset".
        cpu_shares: a.cpu_shares.filter(|s| *s > 0),
        cpuset_cpus: a.cpuset_cpus.clone(),
        pids_limit: a.pids_limit,
        ulimits: a.ulimit.iter().map(|u| spec::parse_ulimit(u)).collect::<Result<_>>()?,
        dns: a.dns.iter().map(|ip| ip.to_string()).collect(),
        devices: a.device.iter().map(|d| spec::parse_device(d)).collect::<Result<_>>()?,
        mounts: a
            .volume
            .iter()
            .map(|v| volumes::parse_volume_flag(v))
            .chain(a.mount.iter().map(|m| volumes::parse_mount_flag(m)))
            .chain(a.tmpfs.iter().map(|t| volumes::parse_tmpfs_flag(t)))
            .collect::<Result<_>>()?,
        binds: a.volume.clone(),
        volumes_from: a.volumes_from.clone(),
        readonly_rootfs: a.read_only,
        storage_driver: String::new(),
        skip_image_volumes: false,
        cap_add: a.cap_add.clone(),
        cap_drop: a.cap_drop.clone(),
        privileged: a.privileged,
        security_opt: a.security_opt.clone(),
        userns: a.userns.clone(),
    })
}

fn net_flags(a: &RunArgs) -> Result<lifecycle::NetFlags> {
    let mut publish = vec![];
    for p in &a.publish {
        publish.extend(super::network::parse_publish(p)?);
    }
    let mut expose = vec![];
    for e in &a.expose {
        expose.extend(super::network::parse_expose(e)?);
    }
    for h in &a.add_host {
        let ok = h.split_once(':').is_some_and(|(n, ip)| {
            !n.is_empty() && (ip == "host-gateway" || ip.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok())
        });
        if !ok {
            return Err(Error::Usage(format!(
                "invalid argument \"{h}\" for \"--add-host\" flag: invalid IP address in add-host: \"{}\"",
                h.split_once(':').map(|x| x.1).unwrap_or("")
            )));
        }
    }
    if let Some(m) = &a.mac_address {
        super::network::parse_mac(m)?;
    }
    if a.ip.as_deref().is_some_and(|ip| ip.parse::<std::net::Ipv4Addr>().is_err()) {
        return Err(Error::Usage(format!(
            "invalid argument \"{}\" for \"--ip\" flag: invalid IPv4 address",
            a.ip.as_deref().unwrap_or("")
        )));
    }
    if a.network == "host" && (!publish.is_empty() || a.publish_all) {
        stderr_line("WARNING: Published ports are discarded when using host network mode");
        publish.clear();
    }
    Ok(lifecycle::NetFlags {
        ip: a.ip.clone(),
        aliases: a.network_alias.clone(),
        publish,
        publish_all: a.publish_all && a.network != "host",
        expose,
        dns_search: a.dns_search.clone(),
        dns_options: a.dns_option.clone(),
        extra_hosts: a.add_host.clone(),
        links: a.link.clone(),
        mac_address: a.mac_address.clone().unwrap_or_default(),
    })
}

fn detach_keys(s: &Option<String>) -> Result<Vec<u8>> {
    match s {
        Some(k) => super::attach::parse_detach_keys(k),
        None => Ok(super::attach::DEFAULT_DETACH.to_vec()),
    }
}

/// Run `mini` as parsed.
pub fn run(cli: Cli) -> Result<Exit> {
    let k = cli.common().kernel(TOOL)?;
    if cli.cmd.needs_root() && k.ids().euid != 0 {
        return Err(Error::failed(
            format!(
                "mini {} needs root: a container is mounts, cgroups and namespaces, which only root may make",
                cli.cmd.name()
            ),
            "run it as root (sudo mini ...)",
        ));
    }
    // The monitor runs from `/`: a relative store path must mean the same directory to
    // it, so it is made absolute first.
    let root = if cli.root.is_absolute() {
        cli.root.clone()
    } else {
        let cwd = k.why("where a relative --root is").readlink(Path::new("/proc/self/cwd")).map_err(|e| {
            Error::failed(
                format!("cannot resolve the store path {}: {e}", cli.root.display()),
                "pass --root an absolute path",
            )
        })?;
        Path::new(&cwd).join(&cli.root)
    };
    match &cli.cmd {
        Cmd::Monitor { id, sync_fd } => {
            let sync = sync_fd.map(|fd| {
                // SAFETY: the starting mini put the write end of its pipe at this number.
                unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
            });
            super::monitor::run(&k, &root, id, sync)?;
            Ok(Exit::Ok)
        }
        Cmd::Run(a) | Cmd::Create(a) => {
            let creating = matches!(cli.cmd, Cmd::Create(_));
            let mut spec = create_spec(&k, a)?;
            spec.storage_driver = match &cli.storage_driver {
                Some(d) => d.clone(),
                None => super::resources::Settings::load(&k)?.storage_driver,
            };
            super::devmapper::check_driver(&spec.storage_driver)?;
            if a.script {
                let image = lifecycle::stored_image_config(&k, &root, &spec.image);
                // The command as typed, without --script, for the script's first comment.
                let typed: Vec<String> = std::env::args().skip(1).filter(|w| w != "--script").collect();
                out(&super::script::script(&k, &spec, image.as_ref(), &root, &typed))?;
                return Ok(Exit::Ok);
            }
            let keys = detach_keys(&a.detach_keys)?;
            k.why("hold Ctrl-C and kill while the container is made: they are passed on once it runs, never leave it half made")
                .block_forwarded()?;
            let c = lifecycle::create(&k, &root, &spec, &mut |l| stderr_line(l))?;
            lifecycle::trace_into(&k, &root, &c.id);
            if creating {
                out(&format!("{}\n", c.id))?;
                return Ok(Exit::Ok);
            }
            let mode =
                StartMode { attach: !a.detach, stdin: a.interactive, detach_keys: keys, trace_args: cli.trace_args() };
            let started = lifecycle::start(&k, &root, &c, &mode).inspect_err(|_| {
                if spec.auto_remove {
                    // docker run --rm removes a container that could not start, too; one
                    // that runs (the failure came after, attaching) its monitor removes.
                    if let Ok(store) = Containers::open(&k, &root) {
                        if let Some(now) = store.find(&c.id).ok().filter(|now| !now.state.status.is_up()) {
                            let _ = lifecycle::remove(&k, &store, &now, true);
                            let _ = volumes::remove_anonymous(&k, &root, &now, &store.all().unwrap_or_default());
                        }
                    }
                }
            })?;
            match started {
                Started::Detached => {
                    out(&format!("{}\n", c.id))?;
                    Ok(Exit::Ok)
                }
                Started::DetachedByUser => Ok(Exit::Ok),
                Started::Exited(code) => Ok(Exit::Status(code as u8)),
            }
        }
        Cmd::Start { attach, interactive, detach_keys: dk, containers } => {
            let store = Containers::open(&k, &root)?;
            let keys = detach_keys(dk)?;
            if (*attach || *interactive) && containers.len() > 1 {
                return Err(Error::Usage("you cannot start and attach multiple containers at once".into()));
            }
            k.block_forwarded()?;
            let mut status = Exit::Ok;
            for name in containers {
                let r = lifecycle::find(&store, name).and_then(|c| {
                    lifecycle::trace_into(&k, &root, &c.id);
                    let mode = StartMode {
                        attach: *attach || *interactive,
                        stdin: *interactive,
                        detach_keys: keys.clone(),
                        trace_args: cli.trace_args(),
                    };
                    lifecycle::start(&k, &root, &c, &mode)
                });
                match r {
                    Ok(Started::Detached) => out(&format!("{name}\n"))?,
                    Ok(Started::DetachedByUser) => {}
                    Ok(Started::Exited(code)) => status = Exit::Status(code as u8),
                    Err(e) if containers.len() == 1 => return Err(e),
                    Err(e) => {
                        stderr_line(&e.to_string());
                        status = Exit::Failed;
                    }
                }
            }
            Ok(status)
        }
        Cmd::Stop { time, containers } => each(&k, &root, containers, |k, st, c, name| {
            lifecycle::stop(k, st, c, *time)?;
            out(&format!("{name}\n"))
        }),
        Cmd::Restart { time, containers } => each(&k, &root, containers, |k, st, c, name| {
            lifecycle::stop(k, st, c, *time)?;
            let c = st.find(&c.id)?;
            let mode = StartMode { attach: false, stdin: false, detach_keys: vec![], trace_args: cli.trace_args() };
            lifecycle::start(k, &root, &c, &mode)?;
            out(&format!("{name}\n"))
        }),
        Cmd::Kill { signal, containers } => {
            let sig = spec::parse_signal(signal)?;
            each(&k, &root, containers, |k, _, c, name| {
                lifecycle::kill(k, c, sig)?;
                out(&format!("{name}\n"))
            })
        }
        Cmd::Rm { force, volumes: with_volumes, containers } => each(&k, &root, containers, |k, st, c, name| {
            lifecycle::remove(k, st, c, *force)?;
            if *with_volumes {
                volumes::remove_anonymous(k, &root, c, &st.all()?)?;
            }
            out(&format!("{name}\n"))
        }),
        Cmd::Volume { cmd } => super::volume_cli::run(&k, &root, cmd),
        Cmd::Ps(a) => ps(&k, &root, a),
        Cmd::Exec(a) => exec(&k, &root, a),
        Cmd::Logs { follow, tail, timestamps, since, container } => {
            logs(&k, &root, *follow, tail, *timestamps, since, container)
        }
        Cmd::Attach { detach_keys: dk, no_stdin, sig_proxy, container } => {
            let store = Containers::open(&k, &root)?;
            let c = lifecycle::find(&store, container)?;
            if !c.state.status.is_up() {
                return Err(Error::Failed {
                    what: "You cannot attach to a stopped container, start it first".into(),
                    hint: None,
                });
            }
            let stdin = c.config.open_stdin && !no_stdin;
            let size = if c.config.tty { k.winsize(std::os::fd::AsFd::as_fd(&std::io::stdout())) } else { None };
            let s =
                super::attach::connect(&k, &store.paths.socket(&c.id), &super::proto::Hello::Attach { stdin, size })?;
            let relay = super::attach::Relay {
                tty: c.config.tty,
                stdin,
                detach_keys: stdin.then(|| detach_keys(dk)).transpose()?,
                sig_proxy: (*sig_proxy && !c.config.tty).then_some(c.state.pid),
                k: &k,
            };
            match super::attach::relay(s, &relay)? {
                super::attach::Ended::Exit(code, _) => Ok(Exit::Status(code as u8)),
                super::attach::Ended::Detached => {
                    stderr_line("read escape sequence");
                    Ok(Exit::Ok)
                }
                super::attach::Ended::Lost => Ok(Exit::Ok),
            }
        }
        Cmd::Wait { containers } => {
            each(&k, &root, containers, |k, st, c, _| out(&format!("{}\n", lifecycle::wait(k, st, c)?)))
        }
        Cmd::Rename { container, new_name } => {
            let store = Containers::open(&k, &root)?;
            let c = lifecycle::find(&store, container)?;
            lifecycle::rename(&store, &c, new_name)?;
            Ok(Exit::Ok)
        }
        Cmd::Top { container, ps_args } => top(&k, &root, container, ps_args),
        Cmd::Port { container, port } => {
            let store = Containers::open(&k, &root)?;
            let c = lifecycle::find(&store, container)?;
            let lines = super::network::port_lines(&c, port.as_deref());
            if lines.is_empty() {
                if let Some(p) = port {
                    return Err(Error::failed(
                        format!(
                            "Error: No public port '{}' published for {}",
                            if p.contains('/') { p.clone() } else { format!("{p}/tcp") },
                            c.name
                        ),
                        "publish it with -p at run",
                    ));
                }
            }
            out(&lines.iter().map(|l| format!("{l}\n")).collect::<String>())?;
            Ok(Exit::Ok)
        }
        Cmd::Network { cmd } => super::network_cli::run(&k, &root, cmd),
        Cmd::Pause { containers } => each(&k, &root, containers, |k, st, c, name| {
            lifecycle::pause(k, st, c)?;
            out(&format!("{name}\n"))
        }),
        Cmd::Unpause { containers } => each(&k, &root, containers, |k, st, c, name| {
            lifecycle::unpause(k, st, c)?;
            out(&format!("{name}\n"))
        }),
        Cmd::Update { memory, cpus, pids_limit, containers } => {
            let u = lifecycle::Update {
                memory: memory.as_deref().map(spec::ram_in_bytes).transpose()?,
                nano_cpus: cpus.as_deref().map(spec::nano_cpus).transpose()?,
                pids_limit: *pids_limit,
            };
            each(&k, &root, containers, |k, st, c, name| {
                lifecycle::update(k, st, c, &u)?;
                out(&format!("{name}\n"))
            })
        }
        Cmd::Stats { no_stream, format, containers } => stats(&k, &root, *no_stream, format.as_deref(), containers),
        Cmd::Inspect { format, targets } => inspect(&k, &root, format.as_deref(), targets),
        Cmd::Trace { by_primitive, container } => trace(&root, &k, container, *by_primitive, cli.explain),
        Cmd::Images(c) => super::images::run(&k, &root, c),
        Cmd::Version => {
            let uname = kernel_release(&k);
            out(&format!(
                "Client: mini (contlab)\n Version:    {}\n OS/Arch:    linux/{}\n\nServer: none\n mini is daemonless: each command does its own work; each running container has a small monitor process.\n Kernel:     {}\n",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::ARCH,
                uname
            ))?;
            Ok(Exit::Ok)
        }
        Cmd::Info => info(&k, &root),
        Cmd::Changes(c) => super::changes::run(&k, &root, c),
        Cmd::Build(a) => super::build_cli::run(&k, &root, a, cli.trace_args()),
    }
}

/// The kernel's release (`/proc/sys/kernel/osrelease`, as uname(2) says it).
fn kernel_release(k: &Kernel) -> String {
    k.read_file(Path::new("/proc/sys/kernel/osrelease")).map(|s| s.trim().to_string()).unwrap_or_default()
}

/// The machine's memory, in bytes (`MemTotal` in /proc/meminfo).
fn total_memory(k: &Kernel) -> u64 {
    k.read_file(Path::new("/proc/meminfo"))
        .ok()
        .and_then(|m| m.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<u64>().ok()))
        .unwrap_or(0)
        * 1024
}

/// Apply `f` to each named container; an unknown one is reported on stderr and the
/// command exits 1 at the end, as docker's do.
fn each(
    k: &Kernel,
    root: &Path,
    names: &[String],
    mut f: impl FnMut(&Kernel, &Containers, &Container, &str) -> Result<()>,
) -> Result<Exit> {
    let store = Containers::open(k, root)?;
    let mut failed = false;
    for name in names {
        match lifecycle::find(&store, name).and_then(|c| f(k, &store, &c, name)) {
            Ok(()) => {}
            Err(Error::Output(e)) => return Err(Error::Output(e)),
            Err(e) if names.len() == 1 => return Err(e),
            Err(e) => {
                stderr_line(&e.to_string());
                failed = true;
            }
        }
    }
    Ok(if failed { Exit::Failed } else { Exit::Ok })
}

fn ps(k: &Kernel, root: &Path, a: &PsArgs) -> Result<Exit> {
    let store = Containers::open(k, root)?;
    let now = crate::units::now_nanos();
    let mut all = store.all()?;
    let limit = if a.latest { Some(1) } else { a.last };
    let show_all = a.all || limit.is_some();
    all.retain(|c| show_all || c.state.status.is_up());
    for f in &a.filter {
        let (key, v) = f
            .split_once('=')
            .ok_or_else(|| Error::Usage(format!("Error response from daemon: invalid filter '{f}'")))?;
        match key {
            "status" => all.retain(|c| c.state.status.as_str() == v),
            "name" => all.retain(|c| c.name.contains(v)),
            "id" => all.retain(|c| c.id.starts_with(v)),
            "ancestor" => all.retain(|c| {
                c.config.image == v || c.config.image.split(':').next() == Some(v) || c.config.image_id.contains(v)
            }),
            "label" => all.retain(|c| labels_match(&c.config.labels, v)),
            "exited" => {
                all.retain(|c| c.state.status == super::state::Status::Exited && c.state.exit_code.to_string() == v)
            }
            other => return Err(Error::Usage(format!("Error response from daemon: invalid filter '{other}'"))),
        }
    }
    if let Some(n) = limit {
        all.truncate(n);
    }
    let rows: Vec<serde_json::Value> = all.iter().map(|c| view::ps_fields(c, now, !a.no_trunc)).collect();
    if a.quiet {
        let ids: String = rows.iter().map(|r| format!("{}\n", r["ID"].as_str().unwrap_or_default())).collect();
        out(&ids)?;
        return Ok(Exit::Ok);
    }
    out(&formatted(&rows, a.format.as_deref(), view::ps_table)?)?;
    Ok(Exit::Ok)
}

/// A `label=KEY` or `label=KEY=VALUE` filter's answer for `labels`.
pub(super) fn labels_match(labels: &std::collections::BTreeMap<String, String>, want: &str) -> bool {
    let (key, value) = want.split_once('=').map(|(a, b)| (a, Some(b))).unwrap_or((want, None));
    labels.get(key).is_some_and(|x| value.is_none_or(|v| x == v))
}

/// `inspect`'s output: the objects as one JSON array, or each through `--format`.
pub(super) fn print_inspected(objs: &[serde_json::Value], format: Option<&str>) -> Result<()> {
    match format {
        Some(f) => {
            let fmt = super::template::Format::parse(f)?;
            for o in objs {
                out(&format!("{}\n", fmt.render(o)?))?;
            }
            Ok(())
        }
        None => out(&format!("{}\n", serde_json::to_string_pretty(objs).unwrap_or_default())),
    }
}

/// Rows printed through `--format` (a Go template, `table ...` for headed columns),
/// or else as the command's `default` table.
pub(super) fn formatted(
    rows: &[serde_json::Value],
    format: Option<&str>,
    default: fn(&[serde_json::Value]) -> String,
) -> Result<String> {
    let Some(f) = format else { return Ok(default(rows)) };
    let fmt = super::template::Format::parse(f)?;
    let lines = rows.iter().map(|r| fmt.render(r)).collect::<Result<Vec<_>>>()?;
    if fmt.table {
        let mut t = vec![fmt.headers.clone()];
        t.extend(lines.iter().map(|l| l.split('\t').map(str::to_string).collect()));
        Ok(super::template::columns(&t))
    } else {
        Ok(lines.iter().map(|l| format!("{l}\n")).collect())
    }
}

fn exec(k: &Kernel, root: &Path, a: &ExecArgs) -> Result<Exit> {
    let store = Containers::open(k, root)?;
    let target = &a.target_and_command[0];
    let argv = a.target_and_command[1..].to_vec();
    if argv.is_empty() {
        return Err(Error::Usage("\"mini exec\" requires at least 2 arguments: CONTAINER COMMAND [ARG...]".into()));
    }
    let c = lifecycle::find(&store, target)?;
    if !c.state.status.is_up() {
        return Err(Error::Failed {
            what: format!("Error response from daemon: Container {} is not running", c.id),
            hint: None,
        });
    }
    if c.state.status == super::state::Status::Paused {
        return Err(Error::Failed {
            what: format!(
                "Error response from daemon: Container {} is paused, unpause the container before exec",
                c.id
            ),
            hint: None,
        });
    }
    let size = if a.tty { k.winsize(std::os::fd::AsFd::as_fd(&std::io::stdout())) } else { None };
    let req = super::proto::ExecRequest {
        argv,
        env: a.env.clone(),
        user: a.user.clone().unwrap_or_default(),
        workdir: a.workdir.clone().unwrap_or_default(),
        tty: a.tty,
        stdin: a.interactive,
        detach: a.detach,
        size,
    };
    lifecycle::trace_into(k, root, &c.id);
    let mut s = super::attach::connect(
        k,
        &store.paths.socket(&c.id),
        &super::proto::Hello::Exec { req, trace: Default::default() },
    )?;
    let pid = super::attach::started(&mut s)?;
    if a.detach {
        return Ok(Exit::Ok);
    }
    let relay = super::attach::Relay {
        tty: a.tty,
        stdin: a.interactive,
        detach_keys: (a.tty && a.interactive).then(|| detach_keys(&a.detach_keys)).transpose()?,
        sig_proxy: (!a.tty).then_some(pid),
        k,
    };
    match super::attach::relay(s, &relay)? {
        super::attach::Ended::Exit(code, _) => Ok(Exit::Status(code as u8)),
        _ => Ok(Exit::Ok),
    }
}

fn logs(
    k: &Kernel,
    root: &Path,
    follow: bool,
    tail: &Option<String>,
    timestamps: bool,
    since: &Option<String>,
    container: &str,
) -> Result<Exit> {
    use super::logs as l;
    let store = Containers::open(k, root)?;
    let c = lifecycle::find(&store, container)?;
    let tail = match tail.as_deref() {
        None | Some("all") => None,
        Some(n) => Some(n.parse::<usize>().map_err(|_| Error::Usage(format!("invalid value for --tail: {n}")))?),
    };
    let now = crate::units::now_nanos();
    let since = since
        .as_deref()
        .map(|s| l::parse_since(s, now).ok_or_else(|| Error::Usage(format!("invalid value for --since: {s}"))))
        .transpose()?;
    let path = store.paths.log(&c.id);
    let text = k.read_file(&path).unwrap_or_default();
    let mut offset = text.len();
    let print = |entries: Vec<l::Entry>| -> Result<()> {
        for e in entries {
            let line = l::render(&e, timestamps);
            if e.stream == "stderr" {
                let _ = std::io::stderr().write_all(line.as_bytes());
            } else {
                out(&line)?;
            }
        }
        Ok(())
    };
    print(l::select(l::parse(&text), tail, since))?;
    if !follow {
        return Ok(Exit::Ok);
    }
    loop {
        let running = lifecycle::wait_monitor(k, &store.find(&c.id).unwrap_or(c.clone()), 200)?;
        // Read again every 200 ms while following: counted, not traced one by one.
        let text = String::from_utf8(k.read_counted(&path).unwrap_or_default()).unwrap_or_default();
        if text.len() > offset {
            // Only whole lines: a line being written is read next time.
            let new = &text[offset..];
            let upto = new.rfind('\n').map(|i| i + 1).unwrap_or(0);
            print(l::parse(&new[..upto]))?;
            offset += upto;
        }
        if running {
            k.flush_counts("followed the log");
            return Ok(Exit::Ok);
        }
    }
}

fn top(k: &Kernel, root: &Path, container: &str, ps_args: &[String]) -> Result<Exit> {
    let store = Containers::open(k, root)?;
    let c = lifecycle::find(&store, container)?;
    let pids = lifecycle::processes(k, &c)?;
    let args: Vec<String> = if ps_args.is_empty() { vec!["-ef".into()] } else { ps_args.to_vec() };
    // The host's ps as docker runs it: asked for the container's PIDs only (`-q`, so
    // `-o pid,user,args` alone lists them whatever their user and terminal), and again
    // without `-q` when the options refuse it (`f`); then only the container's lines.
    let run = |argv: Vec<String>, quiet: bool| {
        k.why("the host's ps lists the processes; the container's are picked by PID").output(&argv, quiet).map_err(
            |e| match e {
                crate::kernel::ExecFailure::Exec { errno: crate::kernel::Errno::ENOENT, .. } => {
                    Error::failed("cannot run ps: not found", "install procps (apt-get install procps)")
                }
                e => e.into(),
            },
        )
    };
    let argv: Vec<String> = std::iter::once("ps".to_string()).chain(args).collect();
    let quick = pids.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",");
    let first = if pids.is_empty() {
        None
    } else {
        Some(run(argv.iter().cloned().chain(["-q".to_string(), quick]).collect(), true)?)
    };
    let (st, stdout) = match first {
        Some((crate::kernel::Exited::Code(0), stdout)) => (crate::kernel::Exited::Code(0), stdout),
        _ => run(argv, false)?,
    };
    if st != crate::kernel::Exited::Code(0) {
        return Err(Error::Failed {
            what: "Error response from daemon: ps failed (its message is above)".into(),
            hint: None,
        });
    }
    let text = String::from_utf8_lossy(&stdout);
    let mut lines = text.lines();
    let head = lines.next().unwrap_or_default();
    let col = head.split_whitespace().position(|h| h == "PID").ok_or_else(|| Error::Failed {
        what: "Error response from daemon: Couldn't find PID field in ps output".into(),
        hint: None,
    })?;
    let mut shown = format!("{head}\n");
    for l in lines {
        if l.split_whitespace().nth(col).and_then(|p| p.parse::<i32>().ok()).is_some_and(|p| pids.contains(&p)) {
            shown.push_str(l);
            shown.push('\n');
        }
    }
    out(&shown)?;
    Ok(Exit::Ok)
}

fn stats(k: &Kernel, root: &Path, no_stream: bool, format: Option<&str>, names: &[String]) -> Result<Exit> {
    use crate::units::{bytes_size, human_size};
    let store = Containers::open(k, root)?;
    let list: Vec<Container> = if names.is_empty() {
        store.all()?.into_iter().filter(|c| c.state.status.is_up()).collect()
    } else {
        names.iter().map(|n| lifecycle::find(&store, n)).collect::<Result<_>>()?
    };
    let live = !no_stream && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let total = total_memory(k);
    // CPU % is CPU time over wall time between two readings half a second apart.
    let window = std::time::Duration::from_millis(500);
    loop {
        let now = std::time::Instant::now;
        let before: Vec<_> = list.iter().map(|c| (lifecycle::usage(k, c).ok(), now())).collect();
        k.sleep(window)?;
        let rows: Vec<serde_json::Value> = list
            .iter()
            .zip(before)
            .map(|(c, (b, t0))| {
                let a = lifecycle::usage(k, c).ok();
                // Over the time that really passed between the two readings.
                let wall = t0.elapsed().as_micros().max(1) as f64;
                let cpu = match (&b, &a) {
                    (Some(b), Some(a)) => a.cpu_usec.saturating_sub(b.cpu_usec) as f64 * 100.0 / wall,
                    _ => 0.0,
                };
                let u = a.unwrap_or_default();
                let lim = u.memory_limit.unwrap_or(total);
                let mem_pct = if lim > 0 { u.memory as f64 * 100.0 / lim as f64 } else { 0.0 };
                serde_json::json!({
                    "Container": c.short_id(),
                    "ID": c.short_id(),
                    "Name": c.name,
                    "CPUPerc": format!("{cpu:.2}%"),
                    "MemUsage": format!("{} / {}", bytes_size(u.memory), bytes_size(lim)),
                    "MemPerc": format!("{mem_pct:.2}%"),
                    "NetIO": format!("{} / {}", human_size(u.net.0), human_size(u.net.1)),
                    "BlockIO": format!("{} / {}", human_size(u.block.0), human_size(u.block.1)),
                    "PIDs": u.pids.to_string(),
                })
            })
            .collect();
        let text = formatted(&rows, format, view::stats_table)?;
        if live {
            out(&format!("\x1b[2J\x1b[H{text}"))?;
        } else {
            out(&text)?;
            return Ok(Exit::Ok);
        }
    }
}

fn inspect(k: &Kernel, root: &Path, format: Option<&str>, targets: &[String]) -> Result<Exit> {
    let store = Containers::open(k, root)?;
    let fmt = format.map(super::template::Format::parse).transpose()?;
    let mut objs = Vec::new();
    let mut failed = false;
    for t in targets {
        match store.find(t) {
            Ok(c) => objs.push(view::inspect(&c, &store.paths)),
            Err(_) => match crate::image::Store::open(k, root, false)
                .and_then(|st| st.resolve(t).map(|img| crate::image::render::docker_inspect(&st, &img)))
            {
                Ok(v) => objs.push(v),
                Err(_) => {
                    stderr_line(&format!("Error: No such object: {t}"));
                    failed = true;
                }
            },
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
    Ok(if failed { Exit::Failed } else { Exit::Ok })
}

fn trace(root: &Path, k: &Kernel, container: &str, by_primitive: bool, explain: bool) -> Result<Exit> {
    let store = Containers::open(k, root)?;
    let c = lifecycle::find(&store, container)?;
    let text = k.read_file(&store.paths.trace(&c.id)).unwrap_or_default();
    let events: Vec<serde_json::Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let line = |e: &serde_json::Value| -> String {
        let s = |f: &str| e[f].as_str().unwrap_or_default().to_string();
        let (tool, lab) = (s("tool"), s("lab"));
        let prefix = if lab == tool || lab.is_empty() {
            format!("[{tool} {}]", e["pid"])
        } else {
            format!("[{tool} \u{25b8} {lab} {}]", e["pid"])
        };
        let args: Vec<String> = e["args"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let mut body = match s("kind").as_str() {
            "note" => format!("# {}", args.join(" ")),
            "netlink" => format!("{} {}", s("call"), args.join(", ")),
            _ => format!("{}({})", s("call"), args.join(", ")),
        };
        if s("kind") != "note" {
            match (&e["ret"], e["errno"].as_str()) {
                (_, Some(errno)) => body.push_str(&format!(" = -1 {errno}")),
                (serde_json::Value::Null, None) => {}
                (r, None) => {
                    body.push_str(&format!(" = {}", r.as_str().map(str::to_string).unwrap_or_else(|| r.to_string())))
                }
            }
        }
        let mut l = format!("{prefix} {body}\n");
        if explain {
            if let Some(w) = e["why"].as_str() {
                l.push_str(&format!("    \u{21b3} {} {w}\n", s("man")));
            }
        }
        l
    };
    let mut shown = String::new();
    if by_primitive {
        let mut labs: Vec<String> = Vec::new();
        for e in &events {
            let lab = e["lab"].as_str().unwrap_or("mini").to_string();
            if !labs.contains(&lab) {
                labs.push(lab);
            }
        }
        for lab in labs {
            let mine: Vec<&serde_json::Value> =
                events.iter().filter(|e| e["lab"].as_str().unwrap_or("mini") == lab).collect();
            shown.push_str(&format!("── {lab} ({} requests) ──\n", mine.len()));
            for e in mine {
                shown.push_str(&line(e));
            }
        }
    } else {
        for e in &events {
            shown.push_str(&line(e));
        }
    }
    out(&shown)?;
    Ok(Exit::Ok)
}

/// The CPUs online (`/sys/devices/system/cpu/online`: `0-1`, `0,2-3`).
fn online_cpus(k: &Kernel) -> usize {
    let text = k.read_file(Path::new("/sys/devices/system/cpu/online")).unwrap_or_default();
    let n: usize = text
        .trim()
        .split(',')
        .filter_map(|r| match r.split_once('-') {
            Some((a, b)) => Some(b.parse::<usize>().ok()? + 1 - a.parse::<usize>().ok()?),
            None => r.parse::<usize>().ok().map(|_| 1),
        })
        .sum();
    n.max(1)
}

fn info(k: &Kernel, root: &Path) -> Result<Exit> {
    let store = Containers::open(k, root)?;
    let all = store.all()?;
    let count = |s: super::state::Status| all.iter().filter(|c| c.state.status == s).count();
    let images = crate::image::Store::open(k, root, false).and_then(|st| st.images()).map(|v| v.len()).unwrap_or(0);
    let settings = super::resources::Settings::load(k)?;
    let cg = crate::cgroup::Cgroups::detect(k, &settings.cgroup_root)?;
    let version = if matches!(cg, crate::cgroup::Cgroups::V2(_)) { "2" } else { "1" };
    let mem = total_memory(k);
    let cpus = online_cpus(k);
    out(&format!(
        "Client: mini (contlab) {}\n\nServer: none (daemonless)\n Containers: {}\n  Running: {}\n  Paused: {}\n  Stopped: {}\n Images: {images}\n Storage Driver: overlay2\n Logging Driver: json-file\n Cgroup Driver: cgroupfs\n Cgroup Version: {version}\n Default Bridge: {} ({})\n Kernel Version: {}\n Architecture: {}\n CPUs: {cpus}\n Total Memory: {}\n Root Dir: {}\n",
        env!("CARGO_PKG_VERSION"),
        all.len(),
        count(super::state::Status::Running),
        count(super::state::Status::Paused),
        all.len() - count(super::state::Status::Running) - count(super::state::Status::Paused),
        settings.bridge,
        settings.bip,
        kernel_release(k),
        std::env::consts::ARCH,
        crate::units::bytes_size(mem),
        root.display(),
    ))?;
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_after_the_image_belong_to_the_command() {
        let c = Cli::try_parse_from(["mini", "run", "-it", "--rm", "-h", "box", "alpine", "ls", "-la"]).unwrap();
        let Cmd::Run(a) = c.cmd else { panic!() };
        assert!(a.interactive && a.tty && a.rm);
        assert_eq!(a.hostname.as_deref(), Some("box"));
        assert_eq!(a.image_and_command, ["alpine", "ls", "-la"]);
        let c = Cli::try_parse_from(["mini", "-q", "ps", "-aq"]).unwrap();
        assert!(c.quiet);
        let Cmd::Ps(p) = c.cmd else { panic!() };
        assert!(p.all && p.quiet);
    }
}
