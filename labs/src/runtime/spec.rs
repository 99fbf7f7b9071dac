//! From an image's config and `docker run`'s flags to what the container runs: docker's
//! rules, which the course's exercises lean on, written down once.
//!
//! * **The command.** An image has an `Entrypoint` (maybe none) and a `Cmd`. Arguments
//!   after the image replace `Cmd`; `--entrypoint X` replaces the entrypoint *and*
//!   drops the image's `Cmd` (only the arguments given follow it); `--entrypoint ""`
//!   removes the entrypoint. The process is `Entrypoint + Cmd`. Nothing at all is
//!   docker's "No command specified". A Dockerfile's shell form (`CMD echo hi`) is
//!   already stored as `["/bin/sh", "-c", "echo hi"]`.
//! * **The environment.** `PATH` (a default when the image has none), `HOSTNAME`, the
//!   image's `Env`, then `--env-file` and `-e` (a later value of a key replaces an
//!   earlier one in place; `-e KEY` alone takes KEY from mini's own environment, or
//!   drops it), `TERM=xterm` with `-t`, and `HOME` from the user's passwd entry.
//! * **The user.** `-u` (or the image's `User`) is `uid`, `uid:gid`, `name` or
//!   `name:group`; names are looked up in the container's own `/etc/passwd` and
//!   `/etc/group`, never the host's, and the user's supplementary groups come along.
//! * **Sizes**: `--memory 64m` is binary (64 MiB), suffixes b, k, m, g, t, p, either case.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// The default `PATH`, when the image sets none (docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// docker's default stop signal.
pub const DEFAULT_STOP_SIGNAL: &str = "SIGTERM";

/// What the image's config says (the parts that decide the process).
#[derive(Debug, Clone, Default)]
pub struct ImageConfig {
    /// `Entrypoint` (None: not set).
    pub entrypoint: Option<Vec<String>>,
    /// `Cmd`.
    pub cmd: Option<Vec<String>>,
    /// `Env`.
    pub env: Vec<String>,
    /// `User`.
    pub user: String,
    /// `WorkingDir`.
    pub working_dir: String,
    /// `StopSignal`.
    pub stop_signal: String,
    /// `Labels`.
    pub labels: BTreeMap<String, String>,
    /// `ExposedPorts`.
    pub exposed_ports: Vec<String>,
    /// VOLUMEs: directories that get an anonymous volume.
    pub volumes: Vec<String>,
}

/// The entrypoint and cmd a container gets, and the process they make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The entrypoint in effect.
    pub entrypoint: Vec<String>,
    /// The cmd in effect.
    pub cmd: Vec<String>,
}

impl Command {
    /// `Entrypoint + Cmd`.
    pub fn argv(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }
}

/// docker's rules: `entrypoint` is the `--entrypoint` flag (`Some("")` removes it),
/// `args` what follows the image on the command line.
pub fn command(image: &ImageConfig, entrypoint: Option<&str>, args: &[String]) -> Result<Command> {
    let c = match entrypoint {
        Some("") => Command {
            entrypoint: vec![],
            cmd: if args.is_empty() { image.cmd.clone().unwrap_or_default() } else { args.to_vec() },
        },
        Some(e) => Command { entrypoint: vec![e.to_string()], cmd: args.to_vec() },
        None => Command {
            entrypoint: image.entrypoint.clone().unwrap_or_default(),
            cmd: if args.is_empty() { image.cmd.clone().unwrap_or_default() } else { args.to_vec() },
        },
    };
    if c.argv().is_empty() || c.argv()[0].is_empty() {
        return Err(Error::failed(
            "Error response from daemon: No command specified",
            "the image has no Cmd or Entrypoint: give the command after the image (`mini run IMAGE sh`)",
        ));
    }
    Ok(c)
}

fn key_of(kv: &str) -> &str {
    kv.split_once('=').map(|(k, _)| k).unwrap_or(kv)
}

/// Set `KEY=VALUE` in `env`, replacing an earlier value of KEY in place.
pub fn set_env(env: &mut Vec<String>, kv: String) {
    let key = key_of(&kv).to_string();
    match env.iter_mut().find(|e| key_of(e) == key) {
        Some(e) => *e = kv,
        None => env.push(kv),
    }
}

/// The lines of an `--env-file`: `KEY=VALUE`, or `KEY` alone; `#` comments and blank
/// lines skipped. Returns the entries as `-e` would take them.
pub fn parse_env_file(text: &str, path: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim_start();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let key = key_of(l);
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(Error::Usage(format!(
                "invalid env file {path}, line {}: variable '{key}' contains whitespaces",
                i + 1
            )));
        }
        out.push(l.to_string());
    }
    Ok(out)
}

/// The container's environment (see the module documentation). `lookup` reads mini's
/// own environment, for `-e KEY` without a value.
pub fn environment(
    image_env: &[String],
    flags: &[String],
    hostname: &str,
    tty: bool,
    lookup: impl Fn(&str) -> Option<String>,
) -> Vec<String> {
    let mut env = Vec::new();
    if !image_env.iter().any(|e| key_of(e) == "PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    env.push(format!("HOSTNAME={hostname}"));
    for e in image_env {
        set_env(&mut env, e.clone());
    }
    for f in flags {
        if f.contains('=') {
            set_env(&mut env, f.clone());
        } else if let Some(v) = lookup(f) {
            set_env(&mut env, format!("{f}={v}"));
        }
    }
    if tty && !env.iter().any(|e| key_of(e) == "TERM") {
        env.push("TERM=xterm".into());
    }
    env
}

/// A user as the container's process runs: ids, supplementary groups, home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Home directory (for `HOME`).
    pub home: String,
}

/// Resolve `-u` against the container's `/etc/passwd` and `/etc/group` texts (empty
/// when the image has none).
pub fn resolve_user(spec: &str, passwd: &str, group: &str) -> Result<User> {
    let spec = if spec.is_empty() { "0" } else { spec };
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let entries: Vec<Vec<&str>> =
        passwd.lines().map(|l| l.split(':').collect::<Vec<_>>()).filter(|f| f.len() >= 7).collect();
    let groups: Vec<Vec<&str>> =
        group.lines().map(|l| l.split(':').collect::<Vec<_>>()).filter(|f| f.len() >= 3).collect();
    let by_uid = |uid: u32| entries.iter().find(|f| f[2].parse::<u32>().ok() == Some(uid));
    let (uid, mut gid, name, home) = match u.parse::<u32>() {
        Ok(uid) => match by_uid(uid) {
            Some(f) => (uid, f[3].parse().unwrap_or(0), f[0].to_string(), f[5].to_string()),
            None => (uid, 0, String::new(), "/".to_string()),
        },
        Err(_) => {
            let f = entries.iter().find(|f| f[0] == u).ok_or_else(|| {
                Error::failed(
                    format!("unable to find user {u}: no matching entries in passwd file"),
                    "give a user the image's /etc/passwd knows, or a numeric uid[:gid]",
                )
            })?;
            (f[2].parse().unwrap_or(0), f[3].parse().unwrap_or(0), u.to_string(), f[5].to_string())
        }
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups.iter().find(|f| f[0] == g).and_then(|f| f[2].parse().ok()).ok_or_else(|| {
                Error::failed(
                    format!("unable to find group {g}: no matching entries in group file"),
                    "give a group the image's /etc/group knows, or a numeric gid",
                )
            })?,
        };
    }
    let mut supp: Vec<u32> = if name.is_empty() {
        vec![]
    } else {
        groups
            .iter()
            .filter(|f| f.get(3).is_some_and(|m| m.split(',').any(|x| x == name)))
            .filter_map(|f| f[2].parse().ok())
            .collect()
    };
    // runc's rule (docker's): the supplementary groups start with the primary group.
    supp.retain(|x| *x != gid);
    supp.insert(0, gid);
    let home = if home.is_empty() { "/".into() } else { home };
    Ok(User { uid, gid, groups: supp, home })
}

/// docker's `RAMInBytes`: `64m`, `1g`, `512k`, `100b`, `1024` (bytes), binary units.
pub fn ram_in_bytes(s: &str) -> Result<u64> {
    let bad = || Error::Usage(format!("invalid size: '{s}'"));
    let t = s.trim();
    let digits: String = t.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let unit = t[digits.len()..].to_ascii_lowercase();
    let n: f64 = digits.parse().map_err(|_| bad())?;
    let mul: u64 = match unit.trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return Err(bad()),
    };
    if unit.len() > 2 || (unit.len() == 2 && !unit.ends_with('b')) {
        return Err(bad());
    }
    Ok((n * mul as f64) as u64)
}

/// `--cpus 1.5` → docker's NanoCpus (1500000000).
pub fn nano_cpus(s: &str) -> Result<u64> {
    let v: f64 = s.trim().parse().map_err(|_| {
        Error::Usage(format!("invalid argument \"{s}\" for \"--cpus\" flag: failed to parse {s} as a rational number"))
    })?;
    if v < 0.0 {
        return Err(Error::Usage(format!("invalid argument \"{s}\" for \"--cpus\" flag: value must be positive")));
    }
    Ok((v * 1e9).round() as u64)
}

/// `--ulimit nofile=1024:2048` → (name, soft, hard); `nofile=1024` sets both.
pub fn parse_ulimit(s: &str) -> Result<(String, u64, u64)> {
    let bad = || Error::Usage(format!("invalid argument \"{s}\" for \"--ulimit\" flag: expected NAME=SOFT[:HARD]"));
    let (name, v) = s.split_once('=').ok_or_else(bad)?;
    if crate::kernel::rlimit_named(name).is_none() {
        return Err(Error::Usage(format!(
            "invalid argument \"{s}\" for \"--ulimit\" flag: invalid ulimit type: {name}"
        )));
    }
    let num = |x: &str| -> Result<u64> {
        if x == "-1" || x == "unlimited" {
            Ok(u64::MAX)
        } else {
            x.parse().map_err(|_| bad())
        }
    };
    let (soft, hard) = match v.split_once(':') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(v)?, num(v)?),
    };
    if soft > hard {
        return Err(Error::Usage(format!("invalid argument \"{s}\" for \"--ulimit\" flag: ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")));
    }
    Ok((name.to_string(), soft, hard))
}

/// docker's name of a capability: `CAP_` and upper case (`net_admin`, `NET_ADMIN` and
/// `CAP_NET_ADMIN` are one), or `ALL`.
fn cap_name(n: &str) -> String {
    let up = n.to_uppercase();
    if up == "ALL" || up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// The capabilities a container runs with, by docker's rules: docker's default set
/// (`DEFAULT_CAPS`), or with `privileged` or `--cap-add ALL` every capability mini
/// itself has (its bounding set: on a host that runs mini in a container, fewer than
/// the kernel knows); `--cap-drop` takes away (`ALL`: everything), then `--cap-add` puts
/// back. An unknown name is refused with docker's message.
pub fn capabilities(add: &[String], drop: &[String], privileged: bool) -> Result<Vec<String>> {
    let all: Vec<String> = crate::kernel::all_caps().iter().map(|c| c.to_string()).collect();
    let check = |list: &[String], flag: &str| -> Result<Vec<String>> {
        list.iter()
            .map(|n| {
                let c = cap_name(n);
                if c != "ALL" && !all.contains(&c) {
                    return Err(Error::Container {
                        code: 125,
                        message: format!("Error response from daemon: invalid {flag}: unknown capability: {c:?}"),
                    });
                }
                Ok(c)
            })
            .collect()
    };
    let (add, drop) = (check(add, "CapAdd")?, check(drop, "CapDrop")?);
    if privileged || add.iter().any(|c| c == "ALL") {
        return Ok(crate::kernel::bounding_caps().iter().map(|c| c.to_string()).collect());
    }
    let mut caps: Vec<String> = match drop.iter().any(|c| c == "ALL") {
        true => vec![],
        false => super::init::DEFAULT_CAPS.iter().map(|c| c.to_string()).filter(|c| !drop.contains(c)).collect(),
    };
    for c in add {
        if !caps.contains(&c) {
            caps.push(c);
        }
    }
    Ok(caps)
}

/// What `--security-opt` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityOpts {
    /// `no-new-privileges`.
    pub no_new_privileges: bool,
    /// `seccomp=`.
    pub seccomp: SeccompOpt,
}

/// The seccomp profile a container gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeccompOpt {
    /// docker's default profile.
    Default,
    /// `seccomp=unconfined`: no filter.
    Unconfined,
    /// `seccomp=PATH`: a profile in docker's JSON format.
    Profile(String),
}

/// `--security-opt`, docker's forms: `no-new-privileges[:true|false]` (or `=`),
/// `seccomp=unconfined|PATH`; anything else is refused with docker's message.
pub fn security_opts(opts: &[String]) -> Result<SecurityOpts> {
    let mut s = SecurityOpts { no_new_privileges: false, seccomp: SeccompOpt::Default };
    for o in opts {
        let (key, value) = o.split_once([':', '=']).unwrap_or((o.as_str(), ""));
        match (key, value) {
            ("no-new-privileges", "" | "true") => s.no_new_privileges = true,
            ("no-new-privileges", "false") => s.no_new_privileges = false,
            ("seccomp", "unconfined") => s.seccomp = SeccompOpt::Unconfined,
            ("seccomp", path) if !path.is_empty() => s.seccomp = SeccompOpt::Profile(path.to_string()),
            _ => {
                return Err(Error::Container {
                    code: 125,
                    message: format!("Error response from daemon: invalid --security-opt 2: {o:?}"),
                })
            }
        }
    }
    Ok(s)
}

/// `--device /dev/fuse[:/dev/fuse[:rwm]]` → (host path, container path, permissions).
pub fn parse_device(s: &str) -> Result<(String, String, String)> {
    let parts: Vec<&str> = s.split(':').collect();
    let perms_ok = |p: &str| !p.is_empty() && p.chars().all(|c| "rwm".contains(c));
    let (host, ctr, perms) = match parts[..] {
        [h] => (h, h, "rwm"),
        [h, x] if perms_ok(x) => (h, h, x),
        [h, c] => (h, c, "rwm"),
        [h, c, p] if perms_ok(p) => (h, c, p),
        _ => return Err(Error::Usage(format!("invalid argument \"{s}\" for \"--device\" flag: bad format"))),
    };
    if !host.starts_with('/') || !ctr.starts_with('/') {
        return Err(Error::Usage(format!(
            "invalid argument \"{s}\" for \"--device\" flag: the paths must be absolute"
        )));
    }
    Ok((host.into(), ctr.into(), perms.into()))
}

/// A signal given by name (`SIGTERM`, `TERM`, `term`) or number (`15`).
pub fn parse_signal(s: &str) -> Result<crate::kernel::Signal> {
    use std::str::FromStr;
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        return crate::kernel::Signal::try_from(n).map_err(|_| Error::Usage(format!("invalid signal: {s}")));
    }
    let up = t.to_uppercase();
    let name = if up.starts_with("SIG") { up } else { format!("SIG{up}") };
    crate::kernel::Signal::from_str(&name).map_err(|_| Error::Usage(format!("invalid signal: {s}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_follow_dockers_rules() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let default = capabilities(&[], &[], false).unwrap();
        assert_eq!(default.len(), 14);
        let c = capabilities(&s(&["net_admin"]), &s(&["CAP_CHOWN", "KILL"]), false).unwrap();
        assert!(c.contains(&"CAP_NET_ADMIN".to_string()) && !c.contains(&"CAP_CHOWN".to_string()));
        assert!(!c.contains(&"CAP_KILL".to_string()) && c.len() == 13);
        assert_eq!(capabilities(&s(&["CHOWN"]), &s(&["all"]), false).unwrap(), ["CAP_CHOWN"]);
        assert_eq!(capabilities(&[], &[], true).unwrap().len(), crate::kernel::bounding_caps().len());
        assert_eq!(capabilities(&s(&["ALL"]), &[], false).unwrap().len(), crate::kernel::bounding_caps().len());
        let e = capabilities(&s(&["BOGUS"]), &[], false).unwrap_err().to_string();
        assert_eq!(e, "Error response from daemon: invalid CapAdd: unknown capability: \"CAP_BOGUS\"");
    }

    fn img(ep: Option<&[&str]>, cmd: Option<&[&str]>) -> ImageConfig {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        ImageConfig { entrypoint: ep.map(v), cmd: cmd.map(v), ..Default::default() }
    }
    fn s(x: &[&str]) -> Vec<String> {
        x.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn entrypoint_and_cmd_combine_as_docker_does() {
        let nginx = img(Some(&["/docker-entrypoint.sh"]), Some(&["nginx", "-g", "daemon off;"]));
        assert_eq!(
            command(&nginx, None, &[]).unwrap().argv(),
            s(&["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"])
        );
        assert_eq!(command(&nginx, None, &s(&["sh"])).unwrap().argv(), s(&["/docker-entrypoint.sh", "sh"]));
        // --entrypoint drops the image's Cmd.
        assert_eq!(command(&nginx, Some("sh"), &[]).unwrap().argv(), s(&["sh"]));
        assert_eq!(command(&nginx, Some("sh"), &s(&["-c", "id"])).unwrap().argv(), s(&["sh", "-c", "id"]));
        // --entrypoint "" removes it; the image's Cmd runs alone.
        assert_eq!(command(&nginx, Some(""), &[]).unwrap().argv(), s(&["nginx", "-g", "daemon off;"]));
        let alpine = img(None, Some(&["/bin/sh"]));
        assert_eq!(command(&alpine, None, &s(&["ls", "/"])).unwrap().argv(), s(&["ls", "/"]));
        let bare = img(None, None);
        assert!(command(&bare, None, &[]).unwrap_err().to_string().contains("No command specified"));
    }

    #[test]
    fn environment_order_and_overrides() {
        let env = environment(&s(&["PATH=/x", "A=1"]), &s(&["A=2", "B=3", "FROM_HOST", "ABSENT"]), "abc", true, |k| {
            (k == "FROM_HOST").then(|| "yes".into())
        });
        assert_eq!(env, s(&["HOSTNAME=abc", "PATH=/x", "A=2", "B=3", "FROM_HOST=yes", "TERM=xterm"]));
        let env = environment(&[], &[], "h", false, |_| None);
        assert_eq!(env[0], format!("PATH={DEFAULT_PATH}"));
    }

    #[test]
    fn users_come_from_the_containers_files() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nuser1:x:1111:1111::/home/user1:/bin/bash\n";
        let group = "root:x:0:\nuser1:x:1111:\nwheel:x:10:user1,other\nnogroup:x:65534:\n";
        assert_eq!(
            resolve_user("", passwd, group).unwrap(),
            User { uid: 0, gid: 0, groups: vec![0], home: "/root".into() }
        );
        assert_eq!(
            resolve_user("user1", passwd, group).unwrap(),
            User { uid: 1111, gid: 1111, groups: vec![1111, 10], home: "/home/user1".into() }
        );
        assert_eq!(
            resolve_user("1113", passwd, group).unwrap(),
            User { uid: 1113, gid: 0, groups: vec![0], home: "/".into() }
        );
        assert_eq!(resolve_user("1000:nogroup", passwd, group).unwrap().gid, 65534);
        assert!(resolve_user("ghost", passwd, group)
            .unwrap_err()
            .to_string()
            .contains("no matching entries in passwd file"));
    }

    #[test]
    fn sizes_limits_devices_signals() {
        assert_eq!(ram_in_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(ram_in_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(ram_in_bytes("512kb").unwrap(), 512 << 10);
        assert_eq!(ram_in_bytes("100").unwrap(), 100);
        assert!(ram_in_bytes("64x").is_err() && ram_in_bytes("").is_err());
        assert_eq!(nano_cpus("0.5").unwrap(), 500_000_000);
        assert_eq!(parse_ulimit("nofile=1024:2048").unwrap(), ("nofile".into(), 1024, 2048));
        assert!(parse_ulimit("nofile=9:1").is_err() && parse_ulimit("bogus=1").is_err());
        assert_eq!(parse_device("/dev/fuse").unwrap(), ("/dev/fuse".into(), "/dev/fuse".into(), "rwm".into()));
        assert_eq!(parse_device("/dev/sda:/dev/xvda:r").unwrap().2, "r");
        assert_eq!(parse_signal("term").unwrap(), crate::kernel::Signal::SIGTERM);
        assert_eq!(parse_signal("9").unwrap(), crate::kernel::Signal::SIGKILL);
    }
}
