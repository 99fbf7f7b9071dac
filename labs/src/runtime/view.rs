//! How containers are shown: `mini inspect`'s JSON (the shape of docker's
//! `ContainerJSON`, so `--format '{{.State.Pid}}'` and the course's
//! `{{.GraphDriver.Data.MergedDir}}` work as they do with docker), and the fields of a
//! `mini ps` row (`ID Image Command CreatedAt RunningFor Status State Ports Names
//! Mounts Networks Labels`), with docker's strings: `Up 3 minutes`, `Exited (0) 2
//! seconds ago`, `Created`.

use serde_json::{json, Value};

use super::state::{Container, Paths, Status};
use crate::units::{ago, human_duration, parse_rfc3339, ZERO_TIME};

fn or_zero(s: &str) -> &str {
    if s.is_empty() {
        ZERO_TIME
    } else {
        s
    }
}

/// `docker inspect CONTAINER`'s object.
pub fn inspect(c: &Container, paths: &Paths) -> Value {
    let st = &c.state;
    let cfg = &c.config;
    let layer = paths.layer(&c.id);
    let init = paths.init_layer(&c.id);
    let lower: Vec<String> =
        std::iter::once(init.join("diff").display().to_string()).chain(c.layers.iter().cloned()).collect();
    let mut networks = serde_json::Map::new();
    let up = st.status.is_up();
    if cfg.network == "none" || cfg.network == "host" {
        networks.insert(cfg.network.clone(), endpoint_json(None, "", &[], super::network::stable_id(&cfg.network)));
    }
    for want in &cfg.endpoints {
        let e = c.net.endpoint(&want.network).filter(|_| up);
        let id = e.map(|e| e.network_id.clone()).unwrap_or_default();
        let mut v =
            endpoint_json(e, &e.map(|e| super::network::endpoint_id(c, e)).unwrap_or_default(), &want.aliases, id);
        v["IPAMConfig"] = match &want.ip {
            Some(ip) => json!({"IPv4Address": ip}),
            None => Value::Null,
        };
        if let Some(e) = e {
            if want.network != "bridge" {
                v["Aliases"] = json!(e.aliases);
            }
        }
        networks.insert(want.network.clone(), v);
    }
    // docker's top-level address fields are the default bridge's endpoint only.
    let on_bridge = c.net.endpoints.first().filter(|e| up && e.network == "bridge");
    let mut ports = serde_json::Map::new();
    for p in &cfg.exposed_ports {
        ports.insert(p.clone(), Value::Null);
    }
    for p in super::network::wanted_ports(c) {
        ports.entry(p.container_port.clone()).or_insert(Value::Null);
    }
    if up {
        for b in &c.net.ports {
            let slot = ports.entry(b.container_port.clone()).or_insert(Value::Null);
            if slot.is_null() {
                *slot = json!([]);
            }
            if let Some(a) = slot.as_array_mut() {
                a.push(json!({"HostIp": b.host_ip, "HostPort": b.host_port.to_string()}));
            }
        }
    }
    let bindings: serde_json::Map<String, Value> = cfg
        .publish
        .iter()
        .map(|p| (p.container_port.clone(), json!([{"HostIp": p.host_ip, "HostPort": if p.host_port == 0 { String::new() } else { p.host_port.to_string() }}])))
        .collect();
    let graph = match &c.device {
        Some(d) if c.driver == super::devmapper::NAME => json!({
            "Name": "devicemapper",
            "Data": {
                "DeviceId": d.id.to_string(),
                "DeviceName": c.device_name,
                "DeviceSize": (d.sectors * 512).to_string(),
            },
        }),
        _ => json!({
            "Name": "overlay2",
            "Data": {
                "LowerDir": lower.join(":"),
                "UpperDir": layer.join("diff"),
                "MergedDir": layer.join("merged"),
                "WorkDir": layer.join("work"),
            },
        }),
    };
    let anon: serde_json::Map<String, Value> =
        c.mounts.iter().filter(|m| m.anonymous).map(|m| (m.destination.clone(), json!({}))).collect();
    let exposed: serde_json::Map<String, Value> = cfg.exposed_ports.iter().map(|p| (p.clone(), json!({}))).collect();
    let mut v = json!({
        "Id": c.id,
        "Created": c.created,
        "Path": cfg.path,
        "Args": cfg.args,
        "State": {
            "Status": st.status.as_str(),
            "Running": st.status == Status::Running || st.status == Status::Paused,
            "Paused": st.status == Status::Paused,
            "Restarting": st.status == Status::Restarting,
            "OOMKilled": st.oom_killed,
            "Dead": st.status == Status::Dead,
            "Pid": st.pid,
            "ExitCode": st.exit_code,
            "Error": st.error,
            "StartedAt": or_zero(&st.started_at),
            "FinishedAt": or_zero(&st.finished_at),
        },
        "Image": cfg.image_id,
        "ResolvConfPath": paths.dir(&c.id).join("resolv.conf"),
        "HostnamePath": paths.dir(&c.id).join("hostname"),
        "HostsPath": paths.dir(&c.id).join("hosts"),
        "LogPath": paths.log(&c.id),
        "Name": format!("/{}", c.name),
        "RestartCount": c.restart_count,
        "Driver": if c.driver.is_empty() { "overlay2" } else { c.driver.as_str() },
        "Platform": "linux",
        "HostConfig": {
            "NetworkMode": if cfg.network.is_empty() { "bridge" } else { cfg.network.as_str() },

            "AutoRemove": cfg.auto_remove,
            "Init": cfg.init,
            "Memory": cfg.memory.unwrap_or(0),
            "MemorySwap": match super::resources::memory_swap(cfg.memory, cfg.memory_swap) {
                Some(crate::cgroup::Max::Max) => -1,
                Some(crate::cgroup::Max::Value(n)) => n as i64,
                None => 0,
            },
            "NanoCpus": cfg.nano_cpus.unwrap_or(0),
            "CpuShares": cfg.cpu_shares.unwrap_or(0),
            "CpusetCpus": cfg.cpuset_cpus.clone().unwrap_or_default(),
            "PidsLimit": cfg.pids_limit,
            "Dns": cfg.dns,
            "Ulimits": cfg.ulimits.iter().map(|(n, s, h)| json!({"Name": n, "Soft": s, "Hard": h})).collect::<Vec<_>>(),
            "Devices": cfg.devices.iter().map(|(h, c, p)| json!({"PathOnHost": h, "PathInContainer": c, "CgroupPermissions": p})).collect::<Vec<_>>(),
            "CapAdd": if cfg.cap_add.is_empty() { Value::Null } else { json!(cfg.cap_add) },
            "CapDrop": if cfg.cap_drop.is_empty() { Value::Null } else { json!(cfg.cap_drop) },
            "Privileged": cfg.privileged,
            "SecurityOpt": if cfg.security_opt.is_empty() { Value::Null } else { json!(cfg.security_opt) },
            "ReadonlyRootfs": cfg.readonly_rootfs,
            "UsernsMode": cfg.userns_mode,
            "Binds": if cfg.binds.is_empty() { Value::Null } else { json!(cfg.binds) },
            "VolumesFrom": if cfg.volumes_from.is_empty() { Value::Null } else { json!(cfg.volumes_from) },
            "MaskedPaths": if cfg.privileged { json!(null) } else { json!(super::init::MASKED) },
            "ReadonlyPaths": if cfg.privileged { json!(null) } else { json!(super::init::READONLY) },
        },
        "GraphDriver": graph,
        "Config": {
            "Hostname": cfg.hostname,
            "User": cfg.user,
            "Tty": cfg.tty,
            "OpenStdin": cfg.open_stdin,
            "Env": cfg.env,
            "Cmd": if cfg.cmd.is_empty() { Value::Null } else { json!(cfg.cmd) },
            "Entrypoint": if cfg.entrypoint.is_empty() { Value::Null } else { json!(cfg.entrypoint) },
            "Image": cfg.image,
            "WorkingDir": cfg.working_dir,
            "Labels": cfg.labels,
            "StopSignal": cfg.stop_signal,
            "StopTimeout": cfg.stop_timeout,
            "ExposedPorts": if exposed.is_empty() { Value::Null } else { Value::Object(exposed) },
            "Volumes": if anon.is_empty() { Value::Null } else { Value::Object(anon) },
        },
        "Mounts": super::volumes::inspect_mounts(c),
        "NetworkSettings": {
            "Bridge": "",
            "SandboxKey": if up { c.net.netns.clone() } else { String::new() },
            "Ports": ports,
            "IPAddress": on_bridge.map(|e| e.ip.clone()).unwrap_or_default(),
            "IPPrefixLen": on_bridge.map(|e| e.prefix).unwrap_or(0),
            "Gateway": on_bridge.map(|e| e.gateway.clone()).unwrap_or_default(),
            "MacAddress": on_bridge.map(|e| e.mac.clone()).unwrap_or_default(),
            "Networks": networks,
        },
    });
    let h = &mut v["HostConfig"];
    h["PortBindings"] = Value::Object(bindings);
    h["PublishAllPorts"] = json!(cfg.publish_all);
    h["DnsSearch"] = json!(cfg.dns_search);
    h["DnsOptions"] = json!(cfg.dns_options);
    h["ExtraHosts"] = if cfg.extra_hosts.is_empty() { Value::Null } else { json!(cfg.extra_hosts) };
    h["Links"] = if cfg.links.is_empty() { Value::Null } else { json!(cfg.links) };
    v
}

/// One entry of `NetworkSettings.Networks`: docker's fields.
fn endpoint_json(
    e: Option<&super::state::Endpoint>,
    endpoint_id: &str,
    aliases: &[String],
    network_id: String,
) -> Value {
    json!({
        "IPAMConfig": null,
        "Links": null,
        "Aliases": if aliases.is_empty() { Value::Null } else { json!(aliases) },
        "NetworkID": network_id,
        "EndpointID": endpoint_id,
        "Gateway": e.map(|e| e.gateway.as_str()).unwrap_or(""),
        "IPAddress": e.map(|e| e.ip.as_str()).unwrap_or(""),
        "IPPrefixLen": e.map(|e| e.prefix).unwrap_or(0),
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "MacAddress": e.map(|e| e.mac.as_str()).unwrap_or(""),
        "DriverOpts": null,
    })
}

/// `Up 3 minutes`, `Up 3 minutes (Paused)`, `Exited (0) 2 seconds ago`, `Created`,
/// `Dead`, as `docker ps` prints STATUS.
pub fn status_text(c: &Container, now: i128) -> String {
    let st = &c.state;
    match st.status {
        Status::Created => "Created".into(),
        Status::Running | Status::Paused | Status::Restarting => {
            let since = parse_rfc3339(&st.started_at).unwrap_or(now);
            let up = format!("Up {}", human_duration(std::time::Duration::from_nanos((now - since).max(0) as u64)));
            if st.status == Status::Paused {
                format!("{up} (Paused)")
            } else {
                up
            }
        }
        Status::Exited => {
            let when = parse_rfc3339(&st.finished_at).map(|t| ago(t, now)).unwrap_or_default();
            format!("Exited ({}) {when}", st.exit_code).trim_end().to_string()
        }
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
    }
}

/// The COMMAND column: the command, quoted, cut to 20 characters with `…` unless
/// `--no-trunc`.
pub fn command_text(c: &Container, trunc: bool) -> String {
    let full = std::iter::once(c.config.path.as_str())
        .chain(c.config.args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let shown = if trunc && full.chars().count() > 20 {
        format!("{}…", full.chars().take(19).collect::<String>())
    } else {
        full
    };
    format!("\"{shown}\"")
}

/// Labels as docker's tables show them: `KEY=VALUE,KEY=VALUE`.
pub fn labels_text(labels: &std::collections::BTreeMap<String, String>) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// A `docker ps` row's fields, for the table and for `--format`.
pub fn ps_fields(c: &Container, now: i128, trunc: bool) -> Value {
    let created = parse_rfc3339(&c.created).unwrap_or(now);
    json!({
        "ID": if trunc { c.short_id().to_string() } else { c.id.clone() },
        "Image": c.config.image,
        "Command": command_text(c, trunc),
        "CreatedAt": created_at(created),
        "RunningFor": ago(created, now),
        "Status": status_text(c, now),
        "State": c.state.status.as_str(),
        "Ports": if c.state.status.is_up() { super::network::ports_column(c) } else { String::new() },
        "Names": c.name,
        "Mounts": "",
        "Networks": if c.config.network.is_empty() { "bridge" } else { c.config.network.as_str() },
        "Labels": labels_text(&c.config.labels),
        "Size": "",
    })
}

/// `2026-12-01 09:12:03 +0000 UTC`, as docker's CreatedAt.
fn created_at(nanos: i128) -> String {
    let s = crate::units::rfc3339(nanos);
    // 2026-12-01T09:12:03.123Z → 2026-12-01 09:12:03 +0000 UTC
    let date = &s[..10.min(s.len())];
    let time = s.get(11..19).unwrap_or("00:00:00");
    format!("{date} {time} +0000 UTC")
}

/// `docker ps`'s default table.
pub fn ps_table(rows: &[Value]) -> String {
    table(rows, &["ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names"])
}

/// `mini stats`'s default table.
pub fn stats_table(rows: &[Value]) -> String {
    table(rows, &["ID", "Name", "CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs"])
}

/// Rows of fields laid out as docker's default tables: `cols`, headed.
fn table(rows: &[Value], cols: &[&str]) -> String {
    let mut t = vec![cols.iter().map(|c| super::template::header_of(c)).collect::<Vec<_>>()];
    for r in rows {
        t.push(cols.iter().map(|c| r[*c].as_str().unwrap_or_default().to_string()).collect());
    }
    super::template::columns(&t)
}

/// Prints docker's pull lines as the image lab reports its progress.
pub struct PullPrinter<'a> {
    report: &'a mut dyn FnMut(&str),
    layers: Vec<String>,
}

impl<'a> PullPrinter<'a> {
    /// Print through `report`.
    pub fn new(report: &'a mut dyn FnMut(&str)) -> PullPrinter<'a> {
        PullPrinter { report, layers: Vec::new() }
    }

    /// One progress event.
    pub fn event(&mut self, p: crate::image::Progress) {
        use crate::image::Progress::*;
        let short = |d: &str| d.trim_start_matches("sha256:").chars().take(12).collect::<String>();
        match p {
            Resolving { tag, path } => (self.report)(&format!("{tag}: Pulling from {path}")),
            Layers(l) => self.layers = l.into_iter().map(|(d, _)| short(&d)).collect(),
            Exists { index } => {
                (self.report)(&format!("{}: Already exists", self.layers.get(index).cloned().unwrap_or_default()))
            }
            PullComplete { index } => {
                (self.report)(&format!("{}: Pull complete", self.layers.get(index).cloned().unwrap_or_default()))
            }
            Digest(d) => (self.report)(&format!("Digest: {d}")),
            Status { up_to_date, name } => (self.report)(&if up_to_date {
                format!("Status: Image is up to date for {name}")
            } else {
                format!("Status: Downloaded newer image for {name}")
            }),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::parse_rfc3339;

    fn ctr(status: Status, started: &str, finished: &str, code: i32) -> Container {
        let mut c = Container {
            id: "a".repeat(64),
            name: "c1".into(),
            created: "2026-12-01T09:00:00Z".into(),
            ..Default::default()
        };
        c.config.path = "sh".into();
        c.config.args = vec!["-c".into(), "echo hello world, from a long command".into()];
        c.state.status = status;
        c.state.started_at = started.into();
        c.state.finished_at = finished.into();
        c.state.exit_code = code;
        c
    }

    #[test]
    fn status_strings_are_dockers() {
        let now = parse_rfc3339("2026-12-01T09:05:00Z").unwrap();
        assert_eq!(status_text(&ctr(Status::Created, "", "", 0), now), "Created");
        assert_eq!(status_text(&ctr(Status::Running, "2026-12-01T09:02:00Z", "", 0), now), "Up 3 minutes");
        assert_eq!(status_text(&ctr(Status::Paused, "2026-12-01T09:04:00Z", "", 0), now), "Up About a minute (Paused)");
        assert_eq!(status_text(&ctr(Status::Exited, "", "2026-12-01T09:04:58Z", 0), now), "Exited (0) 2 seconds ago");
        assert_eq!(
            status_text(&ctr(Status::Exited, "", "2026-12-01T08:05:00Z", 137), now),
            "Exited (137) About an hour ago"
        );
    }

    #[test]
    fn commands_are_quoted_and_cut_at_20() {
        let c = ctr(Status::Created, "", "", 0);
        assert_eq!(command_text(&c, true), "\"sh -c echo hello wo…\"");
        assert!(command_text(&c, false).ends_with("long command\""));
    }

    #[test]
    fn inspect_has_dockers_shape() {
        let c = ctr(Status::Exited, "2026-12-01T09:01:00Z", "2026-12-01T09:02:00Z", 3);
        let v = inspect(&c, &Paths::new(std::path::Path::new("/var/lib/contlab")));
        assert_eq!(v["State"]["ExitCode"], 3);
        assert_eq!(v["State"]["Running"], false);
        assert_eq!(v["Name"], "/c1");
        assert!(v["GraphDriver"]["Data"]["MergedDir"].as_str().unwrap().ends_with("/merged"));
        assert_eq!(v["HostConfig"]["NetworkMode"], "bridge");
    }
}
