//! `mini volume`: docker's volume commands over [`super::volumes`] (the command line
//! only: flags in, the library's values out as docker prints them).

use std::path::Path;

use clap::Subcommand;

use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::kernel::Kernel;

use super::cli::{confirm, formatted, out, stderr_line};
use super::state::Containers;
use super::volumes::{self, VolumeSpec, Volumes};

/// `mini volume …`.
#[derive(Subcommand, Debug, Clone)]
pub enum VolumeCmd {
    /// Create a volume; print its name.
    Create {
        /// The driver (`local`).
        #[arg(short, long, default_value = "local")]
        driver: String,
        /// The local driver's options: type=tmpfs, device=tmpfs, o=size=100m,uid=1000.
        #[arg(short, long = "opt", value_name = "KEY=VALUE")]
        opt: Vec<String>,
        /// Labels.
        #[arg(long, value_name = "KEY=VALUE")]
        label: Vec<String>,
        /// Its name (random otherwise).
        name: Option<String>,
    },
    /// List volumes.
    #[command(alias = "list")]
    Ls {
        /// Only names.
        #[arg(short, long)]
        quiet: bool,
        /// dangling=true|false, name=, label=KEY[=VALUE], driver=.
        #[arg(short, long, value_name = "KEY=VALUE")]
        filter: Vec<String>,
        /// A Go template, or `table TEMPLATE`.
        #[arg(long, value_name = "TEMPLATE")]
        format: Option<String>,
    },
    /// Show volumes as JSON.
    Inspect {
        /// A Go template (`{{.Mountpoint}}`).
        #[arg(short, long, value_name = "TEMPLATE")]
        format: Option<String>,
        /// Volumes.
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove volumes no container uses.
    #[command(alias = "remove")]
    Rm {
        /// Do not fail on a missing volume.
        #[arg(short, long)]
        force: bool,
        /// Volumes.
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove the anonymous volumes no container uses (-a: every unused volume).
    Prune {
        /// Named volumes too.
        #[arg(short, long)]
        all: bool,
        /// Do not ask.
        #[arg(short, long)]
        force: bool,
    },
}

fn row(vols: &Volumes, v: &volumes::Volume) -> serde_json::Value {
    serde_json::json!({
        "Driver": v.driver, "Name": v.name, "Mountpoint": vols.mountpoint(&v.name),
        "Scope": "local", "Labels": super::view::labels_text(&v.labels),
    })
}

fn table(rows: &[serde_json::Value]) -> String {
    let mut t = vec![vec!["DRIVER".to_string(), "VOLUME NAME".to_string()]];
    t.extend(rows.iter().map(|r| {
        vec![r["Driver"].as_str().unwrap_or_default().to_string(), r["Name"].as_str().unwrap_or_default().to_string()]
    }));
    super::template::columns(&t)
}

/// Run one `mini volume` command.
pub fn run(k: &Kernel, root: &Path, cmd: &VolumeCmd) -> Result<Exit> {
    let vols = Volumes::open(k, root);
    let containers = || -> Result<Vec<super::state::Container>> { Containers::open(k, root)?.all() };
    match cmd {
        VolumeCmd::Create { driver, opt, label, name } => {
            let _l = vols.lock()?;
            let v = vols.create(&VolumeSpec {
                name: name.clone(),
                driver: driver.clone(),
                options: opt.clone(),
                labels: label.clone(),
            })?;
            out(&format!("{}\n", v.name))?;
            Ok(Exit::Ok)
        }
        VolumeCmd::Ls { quiet, filter, format } => {
            let all = containers()?;
            let mut list = vols.all()?;
            for f in filter {
                let (key, want) = f.split_once('=').unwrap_or((f.as_str(), ""));
                match key {
                    "dangling" => {
                        let d = matches!(want, "true" | "1");
                        list.retain(|v| volumes::users(&all, &v.name).is_empty() == d);
                    }
                    "name" => list.retain(|v| v.name.contains(want)),
                    "driver" => list.retain(|v| v.driver == want),
                    "label" => list.retain(|v| super::cli::labels_match(&v.labels, want)),
                    _ => {
                        return Err(Error::failed(
                            format!("Error response from daemon: invalid filter '{key}'"),
                            "filters: dangling=, name=, label=, driver=",
                        ))
                    }
                }
            }
            if *quiet {
                out(&list.iter().map(|v| format!("{}\n", v.name)).collect::<String>())?;
            } else {
                let rows: Vec<_> = list.iter().map(|v| row(&vols, v)).collect();
                out(&formatted(&rows, format.as_deref(), table)?)?;
            }
            Ok(Exit::Ok)
        }
        VolumeCmd::Inspect { format, volumes: names } => {
            let mut objs = vec![];
            let mut failed = false;
            for n in names {
                match vols.get(n) {
                    Ok(v) => objs.push(vols.inspect(&v)),
                    Err(e) => {
                        stderr_line(&e.to_string());
                        failed = true;
                    }
                }
            }
            super::cli::print_inspected(&objs, format.as_deref())?;
            Ok(if failed { Exit::Failed } else { Exit::Ok })
        }
        VolumeCmd::Rm { force, volumes: names } => {
            let _l = vols.lock()?;
            let all = containers()?;
            let mut failed = false;
            for n in names {
                let r = vols.get(n).and_then(|v| {
                    let users = volumes::users(&all, &v.name);
                    if !users.is_empty() {
                        return Err(volumes::in_use(&v.name, &users));
                    }
                    vols.remove(&v.name)
                });
                match r {
                    Ok(()) => out(&format!("{n}\n"))?,
                    Err(_) if *force && vols.get(n).is_err() => {}
                    Err(e) => {
                        stderr_line(&e.to_string());
                        failed = true;
                    }
                }
            }
            Ok(if failed { Exit::Failed } else { Exit::Ok })
        }
        VolumeCmd::Prune { all: every, force } => {
            let what = if *every { "all local volumes" } else { "anonymous local volumes" };
            if !force
                && !confirm(&format!(
                    "WARNING! This will remove {what} not used by at least one container.\nAre you sure you want to continue?"
                ))
            {
                return Ok(Exit::Ok);
            }
            let _l = vols.lock()?;
            let all = containers()?;
            let mut deleted = String::new();
            let mut reclaimed = 0;
            for v in vols.all()? {
                if (*every || v.anonymous()) && volumes::users(&all, &v.name).is_empty() {
                    let size = vols.size(&v.name);
                    vols.remove(&v.name)?;
                    reclaimed += size;
                    deleted.push_str(&format!("{}\n", v.name));
                }
            }
            if !deleted.is_empty() {
                out(&format!("Deleted Volumes:\n{deleted}\n"))?;
            }
            out(&format!("Total reclaimed space: {}\n", crate::units::human_size(reclaimed)))?;
            Ok(Exit::Ok)
        }
    }
}
