//! # mini: a container runtime made of the labs
//!
//! The kernel has no "container" object. `docker run -it alpine sh` is a handful of the
//! primitives this book's labs expose, one after the other, and `mini` makes them in
//! the same order, in-process, printing each request as the labs do:
//!
//! | step | lab | what the kernel is asked |
//! |---|---|---|
//! | find or pull the image, extract each layer once | img-pull, layer-diff | HTTP to the registry; `openat2`/`mkdirat`/`fchownat`... per entry |
//! | the container's root | ovl-mount | `fsopen("overlay")`, `fsconfig(lowerdir+, upperdir, workdir)`, `fsmount`, `move_mount` |
//! | its limits | cg-limit | `mkdir` of a cgroup, writes to `memory.max`, `cpu.max`, `pids.max` |
//! | its volumes and bind mounts | mini | `mkdir` of `volumes/NAME/_data`; `mount(MS_BIND)` of each, before `pivot_root` |
//! | its network | netns-bridge | a named network namespace, `RTM_NEWLINK` veth into it (one per network), `RTM_NEWADDR`, `RTM_NEWROUTE`, nftables masquerade and DNAT of its published ports |
//! | its processes | ns-exec | `unshare(CLONE_NEWPID)`, `fork`, `setns`, `unshare(NEWNS\|NEWUTS\|NEWIPC\|NEWCGROUP)`, mounts, `pivot_root`, capabilities, `execve` |
//!
//! Everything else is bookkeeping: a directory per container with its record
//! ([`state`]), a small monitor process per running container that owns its terminal,
//! its log and its exit status ([`monitor`]), and docker's command line, flags,
//! formats and exit codes as the interface ([`cli`]).
//!
//! ## Daemonless
//!
//! docker is a client: `docker run` asks a daemon (dockerd, then containerd, then a
//! shim per container, then runc) to do the work, over a socket. mini, like podman, has
//! no daemon: each `mini` command does its work itself and exits, and what must outlive
//! it (a running container's terminal and exit status) lives in that container's
//! monitor. So any number of `mini` commands may run at once; they take turns through
//! file locks ([`state`]), and a container whose monitor was killed is noticed the
//! next time anyone looks ([`state::Containers::refresh`]).
//!
//! ## Reading order
//!
//! [`spec`] (docker's rules for the command, environment and user), [`resources`]
//! (what a run needs: overlay, cgroup, network, and how it is all removed), [`network`]
//! (user networks, published ports, overlay networks across hosts; their names answered by
//! the monitor's [`resolver`] in [`dns`]'s wire format),
//! [`volumes`] (volumes, bind mounts, tmpfs), [`devmapper`] (the other storage
//! driver: thin snapshots instead of an overlay), [`init`]
//! (the first process between fork and exec), [`monitor`], [`attach`] and [`proto`]
//! (the terminal and its relay), [`logs`], [`view`] (inspect and ps), [`images`] (the
//! image commands: what an image is in the store, SIZE, save and load), [`changes`]
//! and [`copy`] (what a container changed: diff, commit, export, import, cp), [`build`]
//! (a Dockerfile, instruction by instruction, each RUN a container and each step an
//! image; read by [`dockerfile`], its words by [`shell_words`], its context filtered by
//! [`dockerignore`]), [`cli`].

pub mod attach;
pub mod build;
pub mod build_cli;
pub mod changes;
pub mod cli;
pub mod copy;
pub mod devmapper;
pub mod dns;
pub mod dockerfile;
pub mod dockerignore;
pub mod hello;
pub mod images;
pub mod init;
pub mod lifecycle;
pub mod logs;
pub mod monitor;
pub mod names;
pub mod network;
pub mod network_cli;
pub mod proto;
pub mod resolver;
pub mod resources;
pub mod script;
pub mod shell_words;
pub mod spec;
pub mod state;
pub mod template;
pub mod userns;
pub mod view;
pub mod volume_cli;
pub mod volumes;

/// The tool's name, in traces and messages.
pub const TOOL: &str = "mini";
