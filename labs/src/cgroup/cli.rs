//! The command line of `cg-limit`: flags → [`Limits`], [`GroupName`] → the lab's
//! operations ([`Group`], [`run_command`]) → what is printed. Nothing else of the
//! lab prints.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use super::limits::{parse_cpus, parse_cpuset, parse_device_rule, parse_memory, parse_pids};
use super::{
    list, run_command, top, Cgroups, Cpus, DeviceRule, Group, GroupName, Limits, Max, Report, Run, PARENT, TOOL,
};
use crate::cli::CommonOpts;
use crate::error::{Error, Result};
use crate::exit::{Exit, Role};
use crate::kernel::Kernel;

/// Put processes in control groups: limit their memory, CPU and number of tasks,
/// and watch what they use.
///
/// Works with cgroup v2 (one tree at /sys/fs/cgroup) and with cgroup v1 or hybrid
/// setups (one tree per controller), detected with statfs(2). Groups live under
/// `contlab/`. Every request made of the kernel is printed on stderr, strace-style;
/// the tool's own output goes to stdout.
///
/// Exit status: `run` exits with the command's status (128+N when it was killed by
/// signal N: 137 after an OOM kill), 125 when cg-limit itself failed, 126 when the
/// command cannot be run, 127 when it is not found. The other subcommands exit 1 on
/// failure. Usage errors (a bad limit, a missing command) exit 2.
#[derive(Parser, Debug)]
#[command(name = TOOL, version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,

    /// Where cgroupfs is mounted. Tests point it at a fake tree in a temp dir.
    #[arg(long, global = true, value_name = "DIR", env = "CONTLAB_CGROUP_ROOT", default_value = "/sys/fs/cgroup")]
    pub cgroup_root: PathBuf,

    /// Trace options shared by every contlab tool.
    #[command(flatten)]
    pub common: CommonOpts,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run a command in a new group with limits, then remove the group.
    ///
    /// The child joins the group before it execs the command. Signals sent to
    /// cg-limit (Ctrl-C, kill) are passed on to the command. When the command ends,
    /// a line on stderr says whether it was OOM-killed or refused forks, leftover
    /// processes are killed, and the group is removed.
    Run(RunArgs),
    /// Create a group with limits; print its directory (one per v1 hierarchy).
    Create {
        /// The group, under contlab/ (`web`, `lab/db`).
        name: GroupName,
        /// The limits to set.
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Change the limits of a group (those given; the others stay).
    Set {
        /// The group, under contlab/.
        name: GroupName,
        /// The limits to change.
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Move a running process (all its threads) into a group.
    Add {
        /// The group, under contlab/.
        name: GroupName,
        /// The process to move.
        pid: i32,
    },
    /// Show a group's limits, usage (memory, CPU, throttling, tasks) and events.
    Show {
        /// The group, under contlab/.
        name: GroupName,
        /// Print JSON (numbers; limits are a number or "max"; null when not available).
        #[arg(long)]
        json: bool,
    },
    /// Watch the groups under contlab/, like systemd-cgtop: tasks, CPU, memory, I/O.
    ///
    /// When the view redraws on a terminal (stdout is a terminal, no --once or
    /// --iterations) and the trace would go to the same terminal, the trace is not
    /// shown, so it does not garble the screen: give --trace-file to keep it.
    Top(top::TopArgs),
    /// Remove a group. It must be empty, unless --kill.
    Rm {
        /// The group, under contlab/.
        name: GroupName,
        /// Kill the group's processes first (v2: write 1 to cgroup.kill; else SIGKILL
        /// each PID of cgroup.procs), wait until it is empty, then remove it.
        #[arg(long)]
        kill: bool,
    },
    /// List the groups under contlab/, one per line.
    Ls,
    /// Freeze every process of a group (docker pause): they stop being scheduled
    /// until `thaw`, without being told (no signal). Returns once they all are frozen.
    ///
    /// cgroup v2: writes 1 to cgroup.freeze and waits for `frozen 1` in cgroup.events.
    /// cgroup v1: the freezer hierarchy (the group is made there, and its processes
    /// moved in, if it is not there yet): FROZEN into freezer.state, then reads it
    /// until it says FROZEN rather than FREEZING.
    Freeze {
        /// The group, under contlab/.
        name: GroupName,
    },
    /// Let the processes of a frozen group run again (docker unpause).
    Thaw {
        /// The group, under contlab/.
        name: GroupName,
    },
}

/// `cg-limit run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// The limits of the group.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Name the group contlab/NAME instead of the transient contlab/run-PID (it must
    /// not exist yet).
    #[arg(long, value_name = "NAME")]
    pub name: Option<GroupName>,
    /// Keep the group when the command ends (needs --name), to `show` it; remove it
    /// later with `cg-limit rm NAME --kill`. Nothing extra is printed.
    #[arg(long, requires = "name")]
    pub keep: bool,
    /// The command and its arguments, after `--`. Without one, cg-limit exits 2
    /// (usage error), before touching any cgroup.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

/// The limits flags of `run`, `create` and `set`. Every one is optional.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitArgs {
    /// Memory limit, e.g. 64M, 1G, 1048576, max.
    ///
    /// Bytes, with an optional K, M, G or T suffix (powers of 1024, any case: 64M =
    /// 67108864), or `max`. Past it the kernel reclaims memory, then its OOM killer
    /// kills a process of the group (exit 137). Swap is no escape: the same limit is
    /// set for memory+swap.
    #[arg(long, value_name = "SIZE", value_parser = parse_memory)]
    pub memory: Option<Max>,

    /// Memory+swap limit with --memory, e.g. 128M, or max (swap unlimited).
    ///
    /// docker's --memory-swap: the group may swap out what passes --memory, up to this
    /// total (v1 memory.memsw.limit_in_bytes; v2 memory.swap.max = this - memory).
    #[arg(long, value_name = "SIZE", value_parser = parse_memory, requires = "memory")]
    pub memory_swap: Option<Max>,

    /// CPU limit in CPUs, e.g. 0.5, 2, max.
    ///
    /// 0.5 lets the group run half of one CPU's time (50 ms every 100 ms period,
    /// cgroup v2 cpu.max "50000 100000"); 2 allows two CPUs' worth. A group that used
    /// its quota is throttled until the next period.
    #[arg(long, value_name = "CPUS", value_parser = parse_cpus)]
    pub cpus: Option<Cpus>,

    /// CPU weight against sibling groups, docker's --cpu-shares (2..262144, default 1024).
    ///
    /// cgroup v1 cpu.shares; cgroup v2 cpu.weight, mapped onto 1..10000 as runc does.
    /// It only acts when CPUs are contended.
    #[arg(long, value_name = "SHARES", value_parser = clap::value_parser!(u64).range(2..=262144))]
    pub cpu_shares: Option<u64>,

    /// Max tasks (processes and threads) in the group, or max.
    ///
    /// fork(2) and clone(2) fail with EAGAIN beyond it, which stops a fork bomb.
    #[arg(long, value_name = "N", value_parser = parse_pids)]
    pub pids: Option<Max>,

    /// I/O weight 1..10000 (default 100), against sibling groups.
    ///
    /// cgroup v2 io.weight (or io.bfq.weight); on cgroup v1 blkio.weight, scaled to its 10..1000
    /// range (×5, as systemd does), or blkio.bfq.weight (1..1000). A weight only acts on
    /// disks whose I/O scheduler uses it (bfq for the bfq files).
    #[arg(long, value_name = "WEIGHT", value_parser = clap::value_parser!(u16).range(1..=10000))]
    pub io_weight: Option<u16>,

    /// CPUs the group may run on, e.g. 0, 0-1, 0,2-3.
    #[arg(long, value_name = "LIST", value_parser = parse_cpuset)]
    pub cpuset: Option<String>,

    /// Allow only the devices this rule names, e.g. 'c 1:3 rwm' (/dev/null); repeatable.
    ///
    /// cgroup v1: `a` is written to devices.deny, then each rule to devices.allow
    /// (TYPE c, b or a; MAJOR:MINOR, * for any; ACCESS some of r, w, m). cgroup v2 has
    /// no device files: the rules become an eBPF program attached to the group.
    #[arg(long = "allow-device", value_name = "RULE", value_parser = parse_device_rule)]
    pub allow_device: Vec<DeviceRule>,
}

impl LimitArgs {
    /// The limits these flags ask for.
    pub fn limits(&self) -> Limits {
        Limits {
            memory: self.memory,
            memory_swap: self.memory_swap,
            cpus: self.cpus,
            cpu_shares: self.cpu_shares,
            pids: self.pids,
            io_weight: self.io_weight,
            cpuset: self.cpuset.clone(),
            devices: (!self.allow_device.is_empty()).then(|| self.allow_device.clone()),
        }
    }
}

impl Cli {
    /// Whether this command line runs a command (`run`: its own failures exit 125) or
    /// is a tool (the others: failures exit 1).
    pub fn role(&self) -> Role {
        if matches!(self.cmd, Cmd::Run(_)) {
            Role::Wrapper
        } else {
            Role::Tool
        }
    }
}

/// Run `cg-limit` as parsed by `cli`.
pub(super) fn run(cli: Cli) -> Result<Exit> {
    let mut common = cli.common.clone();
    if let Cmd::Top(t) = &cli.cmd {
        if t.hides_trace(&common) {
            common.quiet = true;
        }
    }
    let k = common.kernel(TOOL)?;
    let mut out = std::io::stdout().lock();
    execute(&k, &cli.cgroup_root, cli.cmd, &mut out)
}

fn out_err(e: std::io::Error) -> Error {
    Error::Output(e)
}

/// What `run` reports while it runs, as a line on stderr.
fn print_report(r: Report<'_>) {
    match r {
        Report::OomKilled { group, count, limit } => {
            let lim = limit.map(|m| format!(" ({})", m.human_bytes())).unwrap_or_default();
            eprintln!("{TOOL}: the group {PARENT}/{group} reached its memory limit{lim}: the kernel's OOM killer killed {count} process(es) (SIGKILL, exit 137)");
        }
        Report::ForksRefused { group, count, limit } => {
            let lim = limit.map(|m| format!(" ({m})")).unwrap_or_default();
            eprintln!("{TOOL}: the group {PARENT}/{group} reached its task limit{lim}: fork()/clone() failed {count} time(s) with EAGAIN");
        }
        Report::LeftoversNotKilled { error, .. } => eprintln!("{TOOL}: {error}"),
        Report::NotRemoved { group, error } => eprintln!(
            "{TOOL}: could not remove the group {PARENT}/{group}: {error}\n  hint: remove it with `{TOOL} rm {group} --kill`"
        ),
    }
}

/// Do one subcommand with kernel `k` on the tree at `root`, writing the tool's output
/// to `out`.
pub fn execute(k: &Kernel, root: &Path, cmd: Cmd, out: &mut dyn Write) -> Result<Exit> {
    let cg = Cgroups::detect(k, root)?;
    match cmd {
        Cmd::Run(a) => {
            let spec = Run {
                name: a.name.clone().unwrap_or_else(GroupName::transient),
                limits: a.limits.limits(),
                argv: a.cmd,
                keep: a.keep,
            };
            let st = run_command(k, &cg, &spec, &mut print_report)?;
            Ok(Exit::of(st))
        }
        Cmd::Create { name, limits } => {
            let limits = limits.limits();
            k.note(format!("create {PARENT}/{name} with {}", limits.describe()));
            let g = Group::create(k, &cg, &name, &limits)?;
            for d in g.dirs() {
                writeln!(out, "{}", d.display()).map_err(out_err)?;
            }
            Ok(Exit::Ok)
        }
        Cmd::Set { name, limits } => {
            let limits = limits.limits();
            if limits.is_empty() {
                return Err(Error::Usage(format!(
                    "{TOOL} set: give at least one limit (--memory, --cpus, --pids, --io-weight, --cpuset)"
                )));
            }
            Group::open(k, &cg, &name)?.set(k, &limits)?;
            Ok(Exit::Ok)
        }
        Cmd::Add { name, pid } => {
            if pid <= 0 {
                return Err(Error::Usage(format!("{TOOL} add: {pid} is not a process ID")));
            }
            Group::open(k, &cg, &name)?.add(k, pid)?;
            Ok(Exit::Ok)
        }
        Cmd::Show { name, json } => {
            let stats = Group::open(k, &cg, &name)?.stats(k);
            if json {
                let text = serde_json::to_string_pretty(&stats).map_err(|e| Error::Output(e.into()))?;
                writeln!(out, "{text}").map_err(out_err)?;
            } else {
                out.write_all(stats.text().as_bytes()).map_err(out_err)?;
            }
            Ok(Exit::Ok)
        }
        Cmd::Top(t) => top::run(k, cg.backend(), &t, out),
        Cmd::Rm { name, kill } => {
            Group::open(k, &cg, &name)?.remove(k, kill)?;
            Ok(Exit::Ok)
        }
        Cmd::Ls => {
            for g in list(k, &cg) {
                writeln!(out, "{g}").map_err(out_err)?;
            }
            Ok(Exit::Ok)
        }
        Cmd::Freeze { name } => {
            Group::open(k, &cg, &name)?.freeze(k)?;
            Ok(Exit::Ok)
        }
        Cmd::Thaw { name } => {
            Group::open(k, &cg, &name)?.thaw(k)?;
            Ok(Exit::Ok)
        }
    }
}
