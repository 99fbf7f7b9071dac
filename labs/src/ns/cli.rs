//! The command line of `ns-exec`: flags → [`Spec`] and [`Launch`] → the lab's
//! operations → what is printed. Nothing else of the lab prints.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::{IdMap, Launch, Mount, Ran, Spec, User, TOOL};
use crate::cli::CommonOpts;
use crate::error::{Error, Result};
use crate::exit::{Exit, Role};
use crate::kernel::{Kernel, MsFlags, NsKind, UserIds};

/// Run a command in new namespaces, join a process's namespaces, or list them.
///
/// Every request made of the kernel is printed on stderr, strace-style.
#[derive(Parser, Debug)]
#[command(name = TOOL, version)]
pub struct Cli {
    /// `show`, or nothing to run a command.
    #[command(subcommand)]
    pub sub: Option<Sub>,
    /// What to run, in which namespaces.
    #[command(flatten)]
    pub run: RunArgs,
    /// The trace flags every binary shares.
    #[command(flatten)]
    pub common: CommonOpts,
}

/// Subcommands other than running a command.
#[derive(Subcommand, Debug)]
pub enum Sub {
    /// List the namespaces of processes (the inodes of /proc/PID/ns/*), marking with
    /// `*` those that differ from PID 1's.
    Show(ShowArgs),
}

/// `ns-exec show`.
#[derive(Args, Debug)]
pub struct ShowArgs {
    /// Processes to show (default: PID 1, this process, and every process whose
    /// namespaces differ from PID 1's in at least one kind).
    pub pids: Vec<i32>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Compare with this process instead of PID 1 (the host's init).
    #[arg(long = "ref", value_name = "PID", default_value_t = 1)]
    pub reference: i32,
}

/// Running a command in new namespaces (or, with --enter, in existing ones).
#[derive(Args, Debug, Default)]
pub struct RunArgs {
    /// New mount namespace.
    #[arg(short = 'm', long)]
    pub mount: bool,
    /// New UTS namespace (hostname).
    #[arg(short = 'u', long)]
    pub uts: bool,
    /// New IPC namespace.
    #[arg(short = 'i', long)]
    pub ipc: bool,
    /// New PID namespace: the command is PID 1 in it.
    #[arg(short = 'p', long)]
    pub pid: bool,
    /// New network namespace (only a loopback interface, down).
    #[arg(short = 'n', long)]
    pub net: bool,
    /// New user namespace (see --map-root, --uid-map).
    #[arg(short = 'U', long)]
    pub user: bool,
    /// New cgroup namespace.
    #[arg(short = 'C', long)]
    pub cgroup: bool,
    /// New time namespace (see --monotonic, --boottime).
    #[arg(short = 'T', long)]
    pub time: bool,
    /// All eight kinds (with a user namespace mapping you to root inside).
    #[arg(short = 'a', long)]
    pub all: bool,

    /// Set the hostname in the new UTS namespace (implies --uts).
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Mount a fresh /proc for the new PID namespace (implies --mount).
    #[arg(long)]
    pub mount_proc: bool,
    /// Run a tiny init as PID 1 that starts the command, reaps orphaned zombies and
    /// forwards signals (requires --pid).
    #[arg(long, requires = "pid")]
    pub init: bool,
    /// Make DIR the root filesystem with pivot_root(2) (implies --mount).
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,

    /// Map root inside the user namespace to your own uid/gid (implies --user).
    #[arg(short = 'r', long)]
    pub map_root: bool,
    /// A uid mapping INSIDE:OUTSIDE:COUNT, repeatable (implies --user).
    #[arg(long, value_name = "IN:OUT:COUNT")]
    pub uid_map: Vec<String>,
    /// A gid mapping INSIDE:OUTSIDE:COUNT, repeatable (implies --user).
    #[arg(long, value_name = "IN:OUT:COUNT")]
    pub gid_map: Vec<String>,

    /// Offset CLOCK_MONOTONIC by SECS in the new time namespace (implies --time).
    #[arg(long, value_name = "SECS", allow_hyphen_values = true)]
    pub monotonic: Option<i64>,
    /// Offset CLOCK_BOOTTIME (uptime) by SECS in the new time namespace (implies --time).
    #[arg(long, value_name = "SECS", allow_hyphen_values = true)]
    pub boottime: Option<i64>,

    /// Join the namespaces of process PID instead of creating new ones (as nsenter
    /// does). With kind flags, join only those; without, every kind that differs.
    #[arg(short = 'e', long, value_name = "PID")]
    pub enter: Option<i32>,

    /// Run the command with only these environment variables (as `env -i`), KEY=VALUE,
    /// repeatable. A command name without / is then searched in this PATH, inside the
    /// new root.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// The command's working directory (inside the new root).
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Run the command as UID:GID (setgroups, setgid, then setuid, after the mounts).
    #[arg(long, value_name = "UID:GID")]
    pub setuid: Option<String>,
    /// The command's supplementary groups with --setuid, comma-separated (default: none).
    #[arg(long, value_name = "GID,...", requires = "setuid", value_delimiter = ',')]
    pub groups: Vec<u32>,
    /// Mount an empty tmpfs on DIR inside the new root, before pivot_root (implies
    /// --mount; repeatable; made before the --bind mounts).
    #[arg(long, value_name = "DIR")]
    pub tmpfs: Vec<PathBuf>,
    /// Bind the host's SRC onto DST inside the new root, before pivot_root (implies
    /// --mount; repeatable; DST must exist).
    #[arg(long, value_name = "SRC:DST")]
    pub bind: Vec<String>,
    /// Make PATH (as the command sees it) read-only, after pivot_root (implies --mount).
    #[arg(long, value_name = "PATH")]
    pub readonly_path: Vec<PathBuf>,
    /// Hide PATH (as the command sees it) behind /dev/null or an empty tmpfs, after
    /// pivot_root (implies --mount).
    #[arg(long, value_name = "PATH")]
    pub masked_path: Vec<PathBuf>,

    /// docker's minimal /dev in the new root (a tmpfs with null, zero, full, random,
    /// urandom, tty, its own devpts, shm, mqueue; needs --rootfs).
    #[arg(long, requires = "rootfs")]
    pub dev: bool,
    /// /sys read-only in the new root (and the cgroup2 tree on a cgroup v2 host; needs --rootfs).
    #[arg(long, requires = "rootfs")]
    pub sys: bool,
    /// Keep only these capabilities (CAP_CHOWN,CAP_KILL... or `docker` for docker's 14).
    #[arg(long, value_name = "LIST")]
    pub caps: Option<String>,
    /// Everything docker gives a container besides its namespaces: --dev, --sys,
    /// --caps docker, and docker's masked and read-only paths (needs --rootfs).
    #[arg(long, requires = "rootfs")]
    pub docker: bool,
    /// A seccomp filter, loaded last before `execve` (after the capabilities are
    /// dropped): `docker` for docker's default profile, or a profile file in docker's
    /// JSON format. Its capability-gated rules follow the capabilities kept.
    #[arg(long, value_name = "PROFILE")]
    pub seccomp: Option<String>,
    /// Join this network namespace before anything is unshared (`/run/netns/NAME`, made
    /// by `netns-bridge netns add`).
    #[arg(long, value_name = "PATH")]
    pub netns: Option<PathBuf>,

    /// Start the command in the background and print its PID on stdout.
    #[arg(short = 'd', long)]
    pub detach: bool,

    /// The command and its arguments.
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

impl Cli {
    /// Whether this command line runs a command (its own failures exit 125) or is a
    /// tool (`show`: failures exit 1).
    pub fn role(&self) -> Role {
        if self.sub.is_some() {
            Role::Tool
        } else {
            Role::Wrapper
        }
    }
}

impl RunArgs {
    /// The kinds the flags name, with their implications (`--hostname` means a UTS
    /// namespace, `--rootfs` a mount namespace...), in the order unshare creates them.
    pub fn kinds(&self) -> Vec<NsKind> {
        use NsKind::*;
        let mounts = !self.tmpfs.is_empty()
            || !self.bind.is_empty()
            || !self.readonly_path.is_empty()
            || !self.masked_path.is_empty();
        let want = [
            (User, self.user || self.map_root || !self.uid_map.is_empty() || !self.gid_map.is_empty()),
            (Mount, self.mount || self.mount_proc || self.rootfs.is_some() || mounts),
            (Uts, self.uts || self.hostname.is_some()),
            (Ipc, self.ipc),
            (Pid, self.pid),
            (Net, self.net),
            (Cgroup, self.cgroup),
            (Time, self.time || self.monotonic.is_some() || self.boottime.is_some()),
        ];
        want.iter().filter(|w| w.1 || self.all).map(|w| w.0).collect()
    }

    /// The container the flags describe, for a caller with ids `ids` (`--map-root`
    /// maps root inside to them).
    pub fn spec(&self, ids: UserIds) -> Result<Spec> {
        let kinds = self.kinds();
        let parse = |v: &[String]| v.iter().map(|s| IdMap::parse(s)).collect::<Result<Vec<_>>>();
        let (mut uid_map, mut gid_map) = (parse(&self.uid_map)?, parse(&self.gid_map)?);
        let explicit = !uid_map.is_empty() || !gid_map.is_empty();
        if kinds.contains(&NsKind::User) && !explicit {
            // --map-root, --user alone with --all, or --user: map root to ourselves.
            if self.map_root || self.all || self.user {
                uid_map = vec![IdMap { inside: 0, outside: ids.euid, count: 1 }];
                gid_map = vec![IdMap { inside: 0, outside: ids.egid, count: 1 }];
            }
        }
        if self.map_root && explicit {
            return Err(Error::Usage("--map-root and --uid-map/--gid-map are exclusive: choose one".into()));
        }
        let (mut masked, mut readonly) = (self.masked_path.clone(), self.readonly_path.clone());
        let mut mounts: Vec<Mount> = self
            .tmpfs
            .iter()
            .map(|t| Mount {
                source: Some("tmpfs".into()),
                target: t.clone(),
                fstype: Some("tmpfs".into()),
                flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                data: None,
            })
            .collect();
        for b in &self.bind {
            let Some((src, dst)) = b.split_once(':').filter(|(s, d)| !s.is_empty() && !d.is_empty()) else {
                return Err(Error::Usage(format!("--bind {b:?}: expected SRC:DST, e.g. /srv/data:/data")));
            };
            mounts.push(Mount {
                source: Some(src.into()),
                target: dst.into(),
                fstype: None,
                flags: MsFlags::MS_BIND | MsFlags::MS_REC,
                data: None,
            });
        }
        if let Some(e) = self.env.iter().find(|e| !e.contains('=') || e.starts_with('=')) {
            return Err(Error::Usage(format!("--env {e:?}: expected KEY=VALUE, e.g. PATH=/bin")));
        }
        let user = match &self.setuid {
            None => None,
            Some(s) => {
                let bad = || Error::Usage(format!("--setuid {s:?}: expected UID:GID with two numbers, e.g. 1000:1000"));
                let (u, g) = s.split_once(':').ok_or_else(bad)?;
                Some(User {
                    uid: u.parse().map_err(|_| bad())?,
                    gid: g.parse().map_err(|_| bad())?,
                    groups: self.groups.clone(),
                })
            }
        };
        if self.docker {
            masked.extend(super::DOCKER_MASKED.iter().map(PathBuf::from));
            readonly.extend(super::DOCKER_READONLY.iter().map(PathBuf::from));
        }
        let caps: Option<Vec<String>> = match (self.caps.as_deref(), self.docker) {
            (Some("docker"), _) | (None, true) => Some(super::DOCKER_CAPS.iter().map(|c| c.to_string()).collect()),
            (Some(list), _) => Some(
                list.split(',')
                    .map(|c| {
                        let c = c.trim().to_uppercase();
                        if c.starts_with("CAP_") {
                            c
                        } else {
                            format!("CAP_{c}")
                        }
                    })
                    .collect(),
            ),
            (None, false) => None,
        };
        let seccomp = self.seccomp_programs(caps.as_deref())?;
        Ok(Spec {
            in_user_ns: false,
            kinds,
            hostname: self.hostname.clone(),
            rootfs: self.rootfs.clone(),
            mount_proc: self.mount_proc,
            mounts,
            masked,
            readonly,
            uid_map,
            gid_map,
            clocks: super::Clocks { monotonic: self.monotonic.unwrap_or(0), boottime: self.boottime.unwrap_or(0) },
            env: (!self.env.is_empty()).then(|| self.env.clone()),
            cwd: self.cwd.clone(),
            user,
            dev: (self.dev || self.docker).then(Vec::new),
            sys: (self.sys || self.docker).then(|| {
                if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
                    super::SysMount::SysfsAndCgroup2
                } else {
                    super::SysMount::Sysfs
                }
            }),
            caps,
            netns: self.netns.clone(),
            readonly_root: false,
            no_new_privs: false,
            seccomp,
        })
    }

    /// `--seccomp`: the profile compiled to BPF for the capabilities kept (all of
    /// them when none are dropped). A file is read as mini reads `--security-opt
    /// seccomp=PATH`: as the caller's configuration, before any request is made.
    fn seccomp_programs(&self, caps: Option<&[String]>) -> Result<Option<Vec<super::seccomp::Program>>> {
        let Some(which) = &self.seccomp else { return Ok(None) };
        let profile = if which == "docker" {
            super::seccomp::docker_default()
        } else {
            let text = std::fs::read_to_string(which).map_err(|e| {
                Error::Usage(format!(
                    "--seccomp {which}: cannot read the profile: {e} (give `docker` or a profile file)"
                ))
            })?;
            super::seccomp::parse(&text, which)?
        };
        let caps: Vec<String> = match caps {
            Some(c) => c.to_vec(),
            None => caps::all().iter().map(|c| c.to_string()).collect(),
        };
        Ok(Some(super::seccomp::compile(&profile, &caps)?.0))
    }

    /// How the command starts.
    pub fn launch(&self) -> Launch {
        Launch { argv: self.command.clone(), init: self.init, detach: self.detach, report: report_child_error }
    }
}

/// What the map helper and the tiny init do with an error they cannot return: one
/// line on stderr, as the tool's own errors.
fn report_child_error(e: &Error) {
    eprintln!("{TOOL}: {e}");
}

/// Run `ns-exec` as the command line asked.
pub(super) fn run(cli: Cli) -> Result<Exit> {
    let k = cli.common.kernel(TOOL)?;
    match cli.sub {
        Some(Sub::Show(a)) => show(&k, &a),
        None if cli.run.enter.is_some() => enter(&k, &cli.run),
        None => create(&k, &cli.run),
    }
}

fn need_command(a: &RunArgs) -> Result<()> {
    if a.command.is_empty() {
        return Err(Error::Usage(format!(
            "no command given: put the command after the options, e.g. `{TOOL} --pid --mount-proc -- sh`"
        )));
    }
    Ok(())
}

fn finish(ran: Ran) -> Result<Exit> {
    match ran {
        Ran::Started { pid } => {
            writeln!(std::io::stdout(), "{pid}").map_err(Error::Output)?;
            Ok(Exit::Ok)
        }
        Ran::Exited(st) => Ok(Exit::of(st)),
    }
}

/// Create namespaces and run the command in them.
fn create(k: &Kernel, a: &RunArgs) -> Result<Exit> {
    need_command(a)?;
    let ids = k.ids();
    let spec = a.spec(ids)?;
    finish(super::create(k, &spec, ids, &a.launch())?)
}

/// Join the namespaces of `--enter PID` and run the command there.
fn enter(k: &Kernel, a: &RunArgs) -> Result<Exit> {
    need_command(a)?;
    let chosen = a.kinds();
    let kinds = (!chosen.is_empty()).then_some(chosen.as_slice());
    finish(super::enter(k, a.enter.unwrap_or(0), kinds, &a.launch())?)
}

/// `ns-exec show`.
fn show(k: &Kernel, a: &ShowArgs) -> Result<Exit> {
    let table = super::show(k, &a.pids, a.reference)?;
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &table.rows).map_err(|e| Error::Output(e.into()))?;
        writeln!(out).map_err(Error::Output)?;
    } else {
        out.write_all(table.text().as_bytes()).map_err(Error::Output)?;
    }
    Ok(Exit::Ok)
}
