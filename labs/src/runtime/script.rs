//! `mini run --script IMAGE CMD`: instead of running the container, print a shell
//! script that makes the same container out of the primitive binaries, one lab per
//! line — the capstone of the lab guide: a container is these five tools in a row.

use std::path::Path;

use super::lifecycle::CreateSpec;
use super::resources::Settings;
use super::spec::{self, ImageConfig};

fn q(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-=:,@%+".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The script for `spec` (see the module documentation). With the image's
/// configuration (`image`, when the store has it), the command, environment and
/// working directory are the ones `mini run` would give the process.
pub fn script(
    k: &crate::kernel::Kernel,
    spec: &CreateSpec,
    image: Option<&ImageConfig>,
    root: &Path,
    typed: &[String],
) -> String {
    let s = Settings::load(k).unwrap_or_default();
    let hostname = spec.hostname.as_deref().map(q).unwrap_or_else(|| "\"$id\"".into());
    let mut process = String::new();
    let argv = match image {
        Some(ic) => {
            let env = spec::environment(&ic.env, &spec.env, &hostname, spec.tty, |key| std::env::var(key).ok());
            for e in &env {
                process.push_str(&format!(
                    " \\\n    --env {}",
                    if e.starts_with("HOSTNAME=\"") { e.clone() } else { q(e) }
                ));
            }
            if !env.iter().any(|e| e.starts_with("HOME="))
                && matches!(spec.user.as_deref().unwrap_or(&ic.user), "" | "root" | "0")
            {
                // (mini takes HOME from the image's /etc/passwd; root's is /root.)
                process.push_str(" \\\n    --env HOME=/root");
            }
            let wd = spec.workdir.clone().unwrap_or_else(|| ic.working_dir.clone());
            if !wd.is_empty() {
                process.push_str(&format!(" --cwd {}", q(&wd)));
            }
            spec::command(ic, spec.entrypoint.as_deref(), &spec.args).map(|c| c.argv()).unwrap_or_default()
        }
        None => spec.args.clone(),
    };
    let cmd = if argv.is_empty() {
        "# the image's command (img-pull inspect --format '{{json .Config.Cmd}}' IMAGE)".to_string()
    } else {
        argv.iter().map(|a| q(a)).collect::<Vec<_>>().join(" ")
    };
    let mut limits = String::new();
    if let Some(m) = spec.memory {
        limits.push_str(&format!(" --memory {m}"));
    }
    match super::resources::memory_swap(spec.memory, spec.memory_swap) {
        Some(crate::cgroup::Max::Max) => limits.push_str(" --memory-swap max"),
        Some(crate::cgroup::Max::Value(t)) => limits.push_str(&format!(" --memory-swap {t}")),
        None => {}
    }
    if let Some(n) = spec.nano_cpus {
        limits.push_str(&format!(" --cpus {}", n as f64 / 1e9));
    }
    if let Some(w) = spec.cpu_shares {
        limits.push_str(&format!(" --cpu-shares {w}"));
    }
    if let Some(p) = spec.pids_limit.filter(|p| *p > 0) {
        limits.push_str(&format!(" --pids {p}"));
    }
    if let Some(c) = &spec.cpuset_cpus {
        limits.push_str(&format!(" --cpuset {}", q(c)));
    }
    if !spec.privileged {
        // docker's device allow-list, four rules a line.
        for rules in super::resources::DOCKER_DEVICE_RULES.chunks(4) {
            limits.push_str(" \\\n   ");
            for r in rules {
                limits.push_str(&format!(" --allow-device '{r}'"));
            }
        }
    }
    let net = spec.network.as_str();
    // A user network: its bridge exists already (network create made it).
    let user = super::network::Networks::open(k, root)
        .and_then(|n| n.get(net))
        .ok()
        .filter(|r| !r.is_builtin() && r.driver == "bridge");
    let (net_setup, net_run, net_clean) = match net {
        "none" => (String::new(), "--net ".to_string(), String::new()),
        "host" => (String::new(), String::new(), String::new()),
        _ if user.is_some() => {
            let br = user.map(|r| r.bridge).unwrap_or_default();
            (
                format!(
                    "\n# 4. netns-bridge: a network namespace, plugged into the network's bridge {br}\n\
                     netns-bridge netns add \"$id\" >/dev/null\n\
                     netns-bridge attach --netns \"$id\" --bridge {br} >/dev/null\n"
                ),
                "--netns \"/run/netns/$id\" ".to_string(),
                format!(
                    "netns-bridge detach --netns \"$id\" --bridge {br} >/dev/null\nnetns-bridge netns rm \"$id\"\n"
                ),
            )
        }
        _ => (
            format!(
                "\n# 4. netns-bridge: a network namespace, plugged into the default bridge (made once), NAT out\n\
                 netns-bridge bridge create {br} --subnet {bip} >/dev/null 2>&1 || true\n\
                 netns-bridge nat {br}\n\
                 netns-bridge netns add \"$id\" >/dev/null\n\
                 netns-bridge attach --netns \"$id\" --bridge {br} --no-hosts >/dev/null\n",
                br = s.bridge,
                bip = s.bip
            ),
            "--netns \"/run/netns/$id\" ".to_string(),
            "netns-bridge detach --netns \"$id\" --bridge ".to_string()
                + &s.bridge
                + " >/dev/null\nnetns-bridge netns rm \"$id\"\n",
        ),
    };
    // docker's default filter unless --privileged or seccomp=unconfined; a profile
    // file is named as given.
    let seccomp = match spec::security_opts(&spec.security_opt).map(|o| o.seccomp) {
        _ if spec.privileged => String::new(),
        Ok(spec::SeccompOpt::Default) => " --seccomp docker".to_string(),
        Ok(spec::SeccompOpt::Profile(path)) => format!(" --seccomp {}", q(&path)),
        _ => String::new(),
    };
    // The user: `-u`, else the image's USER ([`user_lookup`]).
    let user =
        spec.user.clone().filter(|u| !u.is_empty()).or_else(|| image.map(|ic| ic.user.clone())).unwrap_or_default();
    let lookup = user_lookup(&user).unwrap_or_default();
    if !lookup.is_empty() {
        // Its group is also its one supplementary group, as mini (and runc) set them.
        process.push_str(" \\\n    --setuid \"$user\" --groups \"${user#*:}\"");
    }
    // What needs the monitor, or mini's records, is left to mini: said, not skipped.
    let mut left = Vec::new();
    if !spec.mounts.is_empty() || !spec.volumes_from.is_empty() {
        left.push("volumes and bind mounts (-v, --mount, --tmpfs, --volumes-from)");
    }
    if !spec.net.publish.is_empty() || spec.net.publish_all {
        left.push("published ports (-p, -P: netns-bridge publish after the attach)");
    }
    let left = if left.is_empty() {
        String::new()
    } else {
        format!("# Not made by this script, mini's own work: {}.\n", left.join("; "))
    };
    let tty = if spec.tty { "  # (no terminal of its own: -t is mini's job, the monitor's)" } else { "" };
    format!(
        "#!/bin/sh\n\
         # A container by hand, from contlab's primitives: what `{typed}` does,\n\
         # one lab per step. Run it as root; every tool prints the requests it makes.\n\
         {left}set -e\n\
         export CONTLAB_ROOT={root}\n\
         id=script-$$\n\
         dir=$(mktemp -d /tmp/contlab-script.XXXXXX)\n\
         \n\
         # 1. img-pull: the image in the store (pulled if missing), each layer extracted once (top first)\n\
         img-pull -q inspect {image} >/dev/null 2>&1 || img-pull pull {image} >/dev/null\n\
         lowers=$(img-pull unpack --layers {image} \"$dir/layers\")\n\
         \n\
         # 2. ovl-mount: the container's root, an overlay of the layers and a writable one, with\n\
         #    an -init layer over the image's: the mount points of /proc, /sys and /dev, which an image may lack\n\
         mkdir -p \"$dir/init/proc\" \"$dir/init/sys\" \"$dir/init/dev\"\n\
         mkdir \"$dir/diff\" \"$dir/work\" \"$dir/merged\"\n\
         ovl-mount mount --lower \"$dir/init:$lowers\" --upper \"$dir/diff\" --work \"$dir/work\" \"$dir/merged\" >/dev/null\n\
         \n\
         # 3. cg-limit: its limits and docker's device list (the group is made by `cg-limit run` below,\n\
         #    and joined before exec)\n\
         {net_setup}{lookup}\n\
         # 5. ns-exec: its own PID, mount, UTS, IPC, cgroup (and, without a network, network)\n\
         #    namespaces, docker's /dev and /sys,\n\
         #    pivot_root onto the overlay, docker's 14 capabilities and seccomp filter; then the command.{tty}\n\
         status=0\n\
         cg-limit run --name \"$id\"{limits} -- \\\n\
         \x20 ns-exec {net_run}--pid --mount-proc --uts --ipc --cgroup --hostname {hostname} \\\n\
         \x20   --rootfs \"$dir/merged\" --docker{seccomp}{process} -- {cmd} || status=$?\n\
         \n\
         # 6. clean up, in reverse\n\
         {net_clean}\
         ovl-mount umount \"$dir/merged\"\n\
         rm -rf \"$dir\"\n\
         exit $status\n",
        // A comment ends at a newline: the words, quoted, with their newlines escaped.
        typed = std::iter::once("mini".to_string())
            .chain(typed.iter().map(|a| q(a).replace('\n', "\\n")))
            .collect::<Vec<_>>()
            .join(" "),
        image = q(&spec.image),
        root = q(&root.display().to_string()),
    )
}

/// The script's lines that set `$user` to `UID:GID` for `-u USER` (or the image's
/// USER): numbers as given, a name looked up in the image's own /etc/passwd and
/// /etc/group once the root is mounted, a missing group the user's own (else 0), as
/// mini does; `None` for root.
fn user_lookup(user: &str) -> Option<String> {
    if matches!(user, "" | "root" | "0" | "0:0" | "root:root") {
        return None;
    }
    let (name, group) = user.split_once(':').map_or((user, None), |(u, g)| (u, Some(g)));
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let uid = if numeric(name) {
        name.to_string()
    } else {
        format!("$(awk -F: -v u={} '$1 == u || $3 == u {{print $3; exit}}' \"$dir/merged/etc/passwd\")", q(name))
    };
    let gid = match group {
        Some(g) if numeric(g) => g.to_string(),
        Some(g) => format!("$(awk -F: -v g={} '$1 == g || $3 == g {{print $3; exit}}' \"$dir/merged/etc/group\")", q(g)),
        None => format!(
            "$(awk -F: -v u={} '$1 == u || $3 == u {{g = $4; exit}} END {{print (g == \"\" ? 0 : g)}}' \"$dir/merged/etc/passwd\" 2>/dev/null || echo 0)",
            q(name)
        ),
    };
    Some(format!(
        "\n# the user {}: its numbers from the image's /etc/passwd and /etc/group\nuser=\"{uid}:{gid}\"\n[ \"${{user#:}}\" != \"$user\" ] || [ \"${{user%:}}\" != \"$user\" ] && {{ echo \"unable to find user {}\" >&2; exit 125; }}\n",
        q(user),
        user.replace('"', "")
    ))
}
