//! `mini run --script IMAGE CMD`: instead of running the container, print a shell
//! script that makes the same container out of the primitive binaries, one lab per
//! line — the capstone of the lab guide: a container is these five tools in a row.

use std::path::Path;

use super::lifecycle::CreateSpec;
use super::resources::Settings;

fn q(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-=:,@%+".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The script for `spec` (see the module documentation).
pub fn script(spec: &CreateSpec, root: &Path) -> String {
    let s = Settings::load().unwrap_or_default();
    let cmd: Vec<String> = spec.args.iter().map(|a| q(a)).collect();
    let cmd = if cmd.is_empty() {
        "# the image's command (img-pull inspect --format '{{json .Config.Cmd}}' IMAGE)".to_string()
    } else {
        cmd.join(" ")
    };
    let mut limits = String::new();
    if let Some(m) = spec.memory {
        limits.push_str(&format!(" --memory {m}"));
    }
    if let Some(n) = spec.nano_cpus {
        limits.push_str(&format!(" --cpus {}", n as f64 / 1e9));
    }
    if let Some(p) = spec.pids_limit.filter(|p| *p > 0) {
        limits.push_str(&format!(" --pids {p}"));
    }
    let net = spec.network.as_str();
    let (net_setup, net_run, net_clean) = match net {
        "none" => (String::new(), "--net ".to_string(), String::new()),
        "host" => (String::new(), String::new(), String::new()),
        _ => (
            format!(
                "\n# 4. netns-bridge: a network namespace, plugged into the default bridge (made once), NAT out\n\
                 netns-bridge bridge create {br} --subnet {bip} 2>/dev/null || true\n\
                 netns-bridge nat {br}\n\
                 netns-bridge netns add \"$id\" >/dev/null\n\
                 netns-bridge attach --netns \"$id\" --bridge {br} --no-hosts\n",
                br = s.bridge,
                bip = s.bip
            ),
            "--netns \"/run/netns/$id\" ".to_string(),
            "netns-bridge detach --netns \"$id\" --bridge ".to_string()
                + &s.bridge
                + " >/dev/null\nnetns-bridge netns rm \"$id\"\n",
        ),
    };
    let tty = if spec.tty { "  # (no terminal of its own: -t is mini's job, the monitor's)" } else { "" };
    format!(
        "#!/bin/sh\n\
         # A container by hand, from contlab's primitives: what `mini run{flags} {image}{args}` does,\n\
         # one lab per step. Run it as root; every tool prints the requests it makes.\n\
         set -e\n\
         export CONTLAB_ROOT={root}\n\
         id=script-$$\n\
         dir=$(mktemp -d /tmp/contlab-script.XXXXXX)\n\
         \n\
         # 1. img-pull: the image in the store, each layer extracted once (top first)\n\
         img-pull pull {image} >/dev/null\n\
         lowers=$(img-pull unpack --layers {image} \"$dir/layers\")\n\
         \n\
         # 2. ovl-mount: the container's root, an overlay of the layers and a writable one\n\
         mkdir \"$dir/diff\" \"$dir/work\" \"$dir/merged\"\n\
         ovl-mount mount --lower \"$lowers\" --upper \"$dir/diff\" --work \"$dir/work\" \"$dir/merged\"\n\
         \n\
         # 3. cg-limit: its limits (the group is made by `cg-limit run` below, and joined before exec)\n\
         {net_setup}\n\
         # 5. ns-exec: its own PID, mount, UTS, IPC, cgroup namespaces, docker's /dev and /sys,\n\
         #    pivot_root onto the overlay, docker's 14 capabilities; then the command.{tty}\n\
         status=0\n\
         cg-limit run --name \"$id\"{limits} -- \\\n\
           ns-exec {net_run}--pid --mount-proc --uts --ipc --cgroup --hostname \"$id\" \\\n\
             --rootfs \"$dir/merged\" --dev --sys --docker-caps -- {cmd} || status=$?\n\
         \n\
         # 6. clean up, in reverse\n\
         {net_clean}\
         ovl-mount umount \"$dir/merged\"\n\
         rm -rf \"$dir\"\n\
         exit $status\n",
        flags = if spec.network.is_empty() || spec.network == "bridge" {
            String::new()
        } else {
            format!(" --network {net}")
        },
        image = q(&spec.image),
        args = if spec.args.is_empty() { String::new() } else { format!(" {}", spec.args.join(" ")) },
        root = q(&root.display().to_string()),
    )
}
