//! `mini network`: docker's network commands over [`super::network`] (the command line
//! only: flags in, the library's values out as docker prints them).

use std::path::Path;

use clap::Subcommand;

use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::kernel::Kernel;

use super::cli::{confirm, formatted, out, stderr_line};
use super::network::{self, CreateSpec, Networks, Record};
use super::state::Containers;

/// `mini network …`.
#[derive(Subcommand, Debug, Clone)]
pub enum NetworkCmd {
    /// Create a network; print its ID.
    Create {
        /// The driver (`bridge`).
        #[arg(short, long, default_value = "bridge")]
        driver: String,
        /// Its subnet (10.100.5.0/24); the first free one of the pools otherwise.
        #[arg(long, value_name = "CIDR")]
        subnet: Option<String>,
        /// The bridge's address (the subnet's first otherwise).
        #[arg(long, value_name = "IP")]
        gateway: Option<String>,
        /// Hand out addresses from this part of the subnet only.
        #[arg(long, value_name = "CIDR")]
        ip_range: Option<String>,
        /// No route in or out: the containers reach each other only.
        #[arg(long)]
        internal: bool,
        /// Driver options: com.docker.network.bridge.name=NAME.
        #[arg(short, long = "opt", value_name = "KEY=VALUE")]
        opt: Vec<String>,
        /// Labels.
        #[arg(long, value_name = "KEY=VALUE")]
        label: Vec<String>,
        /// Its name.
        name: String,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls {
        /// Only IDs.
        #[arg(short, long)]
        quiet: bool,
        /// Do not cut IDs.
        #[arg(long)]
        no_trunc: bool,
        /// name=, id=, driver=, label=KEY[=VALUE], type=builtin|custom.
        #[arg(short, long, value_name = "KEY=VALUE")]
        filter: Vec<String>,
        /// A Go template, or `table TEMPLATE`.
        #[arg(long, value_name = "TEMPLATE")]
        format: Option<String>,
    },
    /// Show networks as JSON.
    Inspect {
        /// A Go template (`{{json .IPAM.Config}}`).
        #[arg(short, long, value_name = "TEMPLATE")]
        format: Option<String>,
        /// Networks.
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks.
    #[command(alias = "remove")]
    Rm {
        /// Networks.
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove the networks no container uses.
    Prune {
        /// Do not ask.
        #[arg(short, long)]
        force: bool,
    },
    /// Connect a container to a network.
    Connect {
        /// Its address on the network.
        #[arg(long, value_name = "IP")]
        ip: Option<String>,
        /// More names for it on the network.
        #[arg(long, value_name = "NAME")]
        alias: Vec<String>,
        /// The network.
        network: String,
        /// The container.
        container: String,
    },
    /// Disconnect a container from a network.
    Disconnect {
        /// Accepted for docker's command line.
        #[arg(short, long)]
        force: bool,
        /// The network.
        network: String,
        /// The container.
        container: String,
    },
}

impl NetworkCmd {
    /// Whether it changes kernel objects (only root may).
    pub fn needs_root(&self) -> bool {
        !matches!(self, NetworkCmd::Ls { .. } | NetworkCmd::Inspect { .. })
    }
}

fn row(r: &Record, trunc: bool) -> serde_json::Value {
    serde_json::json!({
        "ID": if trunc { r.short_id() } else { r.id.clone() },
        "Name": r.name, "Driver": r.driver, "Scope": r.scope(), "IPv6": "false",
        "Internal": r.internal.to_string(), "CreatedAt": r.created,
        "Labels": super::view::labels_text(&r.labels),
    })
}

fn table(rows: &[serde_json::Value]) -> String {
    let mut t = vec![["NETWORK ID", "NAME", "DRIVER", "SCOPE"].map(String::from).to_vec()];
    t.extend(rows.iter().map(|r| {
        ["ID", "Name", "Driver", "Scope"].iter().map(|f| r[*f].as_str().unwrap_or_default().to_string()).collect()
    }));
    super::template::columns(&t)
}

/// Run one `mini network` command.
pub fn run(k: &Kernel, root: &Path, cmd: &NetworkCmd) -> Result<Exit> {
    let nets = Networks::open(k, root)?;
    match cmd {
        NetworkCmd::Create { driver, subnet, gateway, ip_range, internal, opt, label, name } => {
            let _l = nets.lock()?;
            let r = nets.create(&CreateSpec {
                name: name.clone(),
                driver: driver.clone(),
                subnet: subnet.clone(),
                gateway: gateway.clone(),
                ip_range: ip_range.clone(),
                internal: *internal,
                options: opt.clone(),
                labels: label.clone(),
            })?;
            out(&format!("{}\n", r.id))?;
            Ok(Exit::Ok)
        }
        NetworkCmd::Ls { quiet, no_trunc, filter, format } => {
            let mut list = nets.all()?;
            for f in filter {
                let (key, want) = f.split_once('=').unwrap_or((f.as_str(), ""));
                match key {
                    "name" => list.retain(|r| r.name.contains(want)),
                    "id" => list.retain(|r| r.id.starts_with(want)),
                    "driver" => list.retain(|r| r.driver == want),
                    "type" => list.retain(|r| r.is_builtin() == (want == "builtin")),
                    "label" => list.retain(|r| super::cli::labels_match(&r.labels, want)),
                    _ => {
                        return Err(Error::failed(
                            format!("Error response from daemon: invalid filter '{key}'"),
                            "filters: name=, id=, driver=, label=, type=",
                        ))
                    }
                }
            }
            if *quiet {
                out(&list
                    .iter()
                    .map(|r| format!("{}\n", if *no_trunc { r.id.clone() } else { r.short_id() }))
                    .collect::<String>())?;
            } else {
                let rows: Vec<_> = list.iter().map(|r| row(r, !no_trunc)).collect();
                out(&formatted(&rows, format.as_deref(), table)?)?;
            }
            Ok(Exit::Ok)
        }
        NetworkCmd::Inspect { format, networks } => {
            let containers = Containers::open(k, root)?.all()?;
            let mut objs = vec![];
            let mut failed = false;
            for n in networks {
                match nets.get(n) {
                    Ok(r) => objs.push(nets.inspect(&r, &containers)),
                    Err(_) => {
                        stderr_line(&format!("Error: No such network: {n}"));
                        failed = true;
                    }
                }
            }
            super::cli::print_inspected(&objs, format.as_deref())?;
            Ok(if failed { Exit::Failed } else { Exit::Ok })
        }
        NetworkCmd::Rm { networks } => {
            let _l = nets.lock()?;
            let mut failed = false;
            for n in networks {
                match nets
                    .get(n)
                    .map_err(|_| Error::failed(format!("Error: No such network: {n}"), "see `mini network ls`"))
                    .and_then(|r| nets.remove(&r))
                {
                    Ok(()) => out(&format!("{n}\n"))?,
                    Err(e) => {
                        stderr_line(&e.to_string());
                        failed = true;
                    }
                }
            }
            Ok(if failed { Exit::Failed } else { Exit::Ok })
        }
        NetworkCmd::Prune { force } => {
            if !force
                && !confirm(
                    "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue?",
                )
            {
                return Ok(Exit::Ok);
            }
            let _l = nets.lock()?;
            let containers = Containers::open(k, root)?.all()?;
            let mut deleted = vec![];
            for r in nets.all()?.iter().filter(|r| !r.is_builtin()) {
                let used = containers.iter().any(|c| c.state.status.is_up() && c.net.endpoint(&r.name).is_some());
                if !used && nets.remove(r).is_ok() {
                    deleted.push(r.name.clone());
                }
            }
            if !deleted.is_empty() {
                out(&format!("Deleted Networks:\n{}\n", deleted.join("\n")))?;
            }
            Ok(Exit::Ok)
        }
        NetworkCmd::Connect { ip, alias, network: n, container } => {
            let store = Containers::open(k, root)?;
            let c = super::lifecycle::find(&store, container)?;
            let r = nets.get(n)?;
            network::connect(k, &nets, &store, &c, &r, ip.clone(), alias.clone())?;
            Ok(Exit::Ok)
        }
        NetworkCmd::Disconnect { force: _, network: n, container } => {
            let store = Containers::open(k, root)?;
            let c = super::lifecycle::find(&store, container)?;
            let r = nets.get(n)?;
            network::disconnect(k, &nets, &store, &c, &r)?;
            Ok(Exit::Ok)
        }
    }
}
