//! mini's confinement against docker's: capabilities (`--cap-add`, `--cap-drop`,
//! `--privileged`), `--security-opt no-new-privileges`, and what a process sees of its
//! confinement from inside (CapEff, CapBnd, NoNewPrivs, /dev, /sys, masked paths),
//! compared with Debian's dockerd started in the same sandbox on the same image.
//!
//! Root tier, in the sandbox of `tests/mini.rs`. `/dev/core` is left out of the
//! comparison: runc makes it only where the host has /proc/kcore, mini always.

use crate::harness::{require, Tier};
use crate::mini::{ok, section, DOCKERD, PODMAN};

/// `script` in a sandbox of the root tier, after dockerd has started there with
/// test/alpine loaded, and dockerd stopped after it (`None`: the tier cannot run here,
/// and the test says so).
/// A copy of /etc bound over it in the sandbox, with the user dockremap and its
/// ranges in /etc/subuid and /etc/subgid: what userns-remap reads, without touching
/// the machine's own.
const SUBIDS: &str = r#"
cp -a /etc "$T/etc"
echo 'dockremap:x:64999:64999::/nonexistent:/usr/sbin/nologin' >> "$T/etc/passwd"
echo 'dockremap:x:64999:' >> "$T/etc/group"
echo 'dockremap:100000:65536' > "$T/etc/subuid"; echo 'dockremap:100000:65536' > "$T/etc/subgid"
mount --bind "$T/etc" /etc || exit 1
"#;

fn with_docker(script: &str) -> Option<String> {
    let load = "m save test/alpine | docker load -q >/dev/null || exit 1\n";
    let stop = "kill \"$(cat \"$T/docker.pid\")\"; wait\n";
    require(Tier::Root).then(|| ok(&format!("{DOCKERD}{load}{script}{stop}")))
}

/// The same image, the same flags, the same lines of /proc/self/status as docker's;
/// docker's message and exit code for an unknown capability; inspect's HostConfig.
#[test]
fn capabilities_privileged_and_no_new_privileges_as_docker() {
    let Some(out) = with_docker(
        r#"
probe='grep -E "^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):" /proc/self/status; echo "dev $(ls /dev | grep -vx core | wc -l)"; grep " /sys " /proc/mounts | cut -d" " -f4 | cut -d, -f1; cat /proc/kcore 2>/dev/null | head -c 1 | wc -c'
for flags in "" "--cap-add NET_ADMIN" "--cap-add sys_time --cap-drop CAP_CHOWN --cap-drop kill" "--cap-drop ALL --cap-add CHOWN" "--security-opt no-new-privileges" "--security-opt no-new-privileges:false" "-u nobody --cap-add NET_ADMIN"; do
  echo "== flags $flags"
  docker run --rm --network none $flags test/alpine sh -c "$probe" > d 2>&1
  m run --rm --network none $flags test/alpine sh -c "$probe" > mm 2>&1
  diff d mm && echo same
done
# --privileged: docker 20.10 asks runc for every capability the kernel knows, which
# fails where the machine itself lacks some (a CI host in a container); mini gives
# what it has itself, its bounding set.
echo "== privileged"; m run --rm --network none --privileged test/alpine sh -c "$probe" > mm
[ "$(grep ^CapEff mm | cut -f2)" = "$(grep ^CapBnd /proc/self/status | cut -f2)" ] && echo "all of mini's"
grep -e '^dev' -e '^r[ow]$' mm; m run --rm --network none --privileged test/alpine sh -c 'cat /proc/mounts' | grep -c -e ' /proc/kcore ' -e ' /proc/keys ' -e ' /proc/sys '
m run --rm --network none test/alpine sh -c 'cat /proc/mounts' | grep -c -e ' /proc/keys ' -e ' /proc/sys '
echo "== unknown"; docker run --rm --cap-add BOGUS test/alpine true 2>&1 | head -1 | sed 's/^docker: //; s/\.$//'
docker run --rm --cap-add BOGUS test/alpine true 2>/dev/null; echo "code $?"
m run --rm --cap-add BOGUS test/alpine true 2>&1 | sed 's/^mini: //'; m run --rm --cap-add BOGUS test/alpine true 2>/dev/null; echo "code $?"
echo "== inspect"; f='{{json .HostConfig.CapAdd}} {{json .HostConfig.CapDrop}} {{.HostConfig.Privileged}} {{json .HostConfig.SecurityOpt}}'
docker create --name insp --cap-add NET_ADMIN --cap-drop CHOWN --security-opt no-new-privileges test/alpine >/dev/null; docker inspect -f "$f" insp
m create --name insp --cap-add NET_ADMIN --cap-drop CHOWN --security-opt no-new-privileges test/alpine >/dev/null; m inspect -f "$f" insp
"#,
    ) else {
        return;
    };
    for flags in [
        "",
        "--cap-add NET_ADMIN",
        "--cap-add sys_time --cap-drop CAP_CHOWN --cap-drop kill",
        "--cap-drop ALL --cap-add CHOWN",
        "--security-opt no-new-privileges",
        "--security-opt no-new-privileges:false",
        "-u nobody --cap-add NET_ADMIN",
    ] {
        assert_eq!(section(&out, &format!("flags {flags}")), "same\n", "{flags}: as docker's, line for line");
    }
    let p = section(&out, "privileged");
    let lines: Vec<&str> = p.lines().collect();
    assert_eq!(lines[0], "all of mini's", "{p}");
    let devs: usize = lines[1].trim_start_matches("dev ").parse().unwrap();
    assert!(devs > 20, "--privileged: the host's devices: {p}");
    assert_eq!(&lines[2..], ["rw", "0", "2"], "/sys writable, nothing masked or read-only (by default: two): {p}");
    let u = section(&out, "unknown");
    let lines: Vec<&str> = u.lines().collect();
    assert_eq!(lines[0], "Error response from daemon: invalid CapAdd: unknown capability: \"CAP_BOGUS\"", "{u}");
    assert_eq!(lines[1], "code 125", "{u}");
    assert_eq!(&lines[2..], &lines[..2], "mini's message and exit code are docker's: {u}");
    let i: Vec<&str> = section(&out, "inspect").lines().collect();
    assert!(i.len() == 2 && i[0] == i[1], "HostConfig's CapAdd, CapDrop, Privileged, SecurityOpt as docker's: {i:?}");
}

/// CVE-2024-21626: no descriptor of the runtime reaches the container's process (run,
/// exec, with and without a terminal, --init), as with docker; a working directory
/// through `/proc/self/fd/N` never leads outside the container's root.
#[test]
fn no_descriptor_leaks_into_a_container_and_no_working_directory_escapes() {
    let Some(out) = with_docker(
        r#"
echo "== fds"
for who in docker m; do
  $who run --rm --network none test/alpine ls /proc/self/fd | tr '\n' ' '; echo
  $who run -d --name fdc --network none test/alpine sleep 60 >/dev/null
  $who exec fdc ls /proc/self/fd | tr '\n' ' '; echo
  $who rm -f fdc >/dev/null
done
echo "== mini extra"; m run --rm -t --network none test/alpine ls /proc/self/fd < /dev/null; m run --rm --init --network none test/alpine ls /proc/self/fd | tr '\n' ' '; echo
echo "== workdirs"; m run -d --name wd --network none test/alpine sleep 60 >/dev/null
for n in $(seq 3 40); do m exec -w /proc/self/fd/$n wd sh -c 'pwd; ls /' 2>/dev/null; done | grep -c -e '^/proc' -e unreachable -e "$T" ; m rm -f wd >/dev/null
"#,
    ) else {
        return;
    };
    let fds: Vec<&str> = section(&out, "fds").lines().collect();
    assert_eq!(fds[0], "0 1 2 3 ", "docker's: stdin, stdout, stderr and ls's own: {fds:?}");
    assert_eq!(fds, [fds[0]; 4], "run and exec, as docker's: {fds:?}");
    assert_eq!(section(&out, "mini extra"), "0  1  2  3\r\n0 1 2 3 \n", "with a terminal, with --init");
    assert_eq!(section(&out, "workdirs"), "0\n", "no working directory outside the root");
}

/// seccomp: docker's default profile (Seccomp: 2, `unshare(CLONE_NEWUSER)` refused
/// with EPERM unless CAP_SYS_ADMIN), none with `seccomp=unconfined` or `--privileged`,
/// a profile of docker's JSON format, the filter of `exec`'d processes too: what
/// docker's give, call for call.
#[test]
fn seccomp_profiles_as_docker() {
    let Some(out) = with_docker(
        r#"
printf '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"},{"names":["chmod","fchmodat"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}' > "$T/p.json"
probe='grep ^Seccomp: /proc/self/status; unshare -U true 2>&1; echo "unshare $?"; mkdir /x 2>&1; echo "mkdir $?"; chmod 600 /etc/hostname 2>&1; echo "chmod $?"; ls / >/dev/null && echo ls'
for flags in "" "--security-opt seccomp=unconfined" "--cap-add SYS_ADMIN" "--security-opt seccomp=$T/p.json" "--security-opt no-new-privileges --security-opt seccomp=$T/p.json"; do
  echo "== flags $flags"
  docker run --rm --network none $flags test/alpine sh -c "$probe" > d 2>&1
  m run --rm --network none $flags test/alpine sh -c "$probe" > mm 2>&1
  diff d mm && echo same; cat mm | head -3
done
echo "== exec"; for who in docker m; do $who run -d --name ex --network none test/alpine sleep 60 >/dev/null; $who exec ex grep ^Seccomp: /proc/self/status; $who rm -f ex >/dev/null; done
echo "== bad profile"; echo '{"defaultAction":' > "$T/bad.json"; m run --rm --security-opt "seccomp=$T/bad.json" test/alpine true 2>&1 | cut -c1-60; m run --rm --security-opt seccomp=/nonexistent test/alpine true 2>&1; m run --rm --security-opt seccomp=/nonexistent test/alpine true 2>/dev/null; echo "code $?"
"#,
    ) else {
        return;
    };
    for flags in ["", "--security-opt seccomp=unconfined", "--cap-add SYS_ADMIN"] {
        let s = section(&out, &format!("flags {flags}"));
        assert!(s.starts_with("same\n"), "{flags}: as docker's: {s}");
    }
    assert!(section(&out, "flags ")
        .starts_with("same\nSeccomp:\t2\nunshare: unshare(0x10000000): Operation not permitted\n"));
    for n in ["--security-opt seccomp=", "--security-opt no-new-privileges --security-opt seccomp="] {
        let s = out.split(&format!("== flags {n}")).nth(1).unwrap_or_default();
        assert!(s.lines().nth(1) == Some("same"), "{n}PROFILE: as docker's: {s}");
    }
    assert_eq!(section(&out, "exec"), "Seccomp:\t2\nSeccomp:\t2\n", "exec'd processes get the filter, as docker's");
    let b = section(&out, "bad profile");
    assert!(b.starts_with("mini: Error response from daemon: Decoding seccomp profile"), "{b}");
    assert!(b.contains("opening seccomp profile (/nonexistent) failed") && b.ends_with("code 125\n"), "{b}");
}

/// userns-remap: docker's daemon setting and mini's, side by side, from the same
/// /etc/subuid and /etc/subgid (a copy of /etc bound over it in the sandbox, with the
/// user dockremap): root inside is 100000 outside, a volume's files belong to it (a
/// setuid binary left there is setuid-100000: the shared-volume escalation fails), a
/// root-owned bind is not writable; `cp` into it keeps the file's numeric owner as the
/// container sees it; `--userns=host` opts out. mini's upper layer keeps
/// the container's own ids (its overlay is made of idmapped layers), so `diff` and
/// a restart see what the container wrote.
#[test]
fn userns_remap_as_docker() {
    let remap = DOCKERD.replace("--bridge=none", "--userns-remap=default --bridge=none");
    let setup = r#"
echo '{"userns-remap": "default"}' > "$T/mini.json"; export CONTLAB_MINI_CONFIG="$T/mini.json"
mkdir "$T/shared"; echo copied > "$T/cpfile"; chown 1000:1000 "$T/cpfile"
"#;
    let load = "m save test/alpine | docker load -q >/dev/null || exit 1\n";
    let script = r#"
probe='id; cat /proc/self/uid_map /proc/self/gid_map; cp /bin/busybox /data/sh && chmod 4755 /data/sh; touch /shared/f 2>&1 | sed "s/^touch: //"; touch /etc/new && echo root fs writable'
for who in docker m; do
  echo "== $who"
  $who run --rm --network none -v vol:/data -v "$T/shared:/shared" test/alpine sh -c "$probe"
  stat -c '%u %g %a' "$($who volume inspect -f '{{.Mountpoint}}' vol)/sh"
  $who run -d --name sl --network none test/alpine sleep 60 >/dev/null
  ps -o uid= -p "$($who inspect -f '{{.State.Pid}}' sl)" | tr -d ' '
  $who exec sl sh -c 'id -u; cat /proc/self/uid_map'
  $who cp "$T/cpfile" sl:/root/ && $who exec sl stat -c '%u %g' /root/cpfile
  $who rm -f sl >/dev/null; $who volume rm vol >/dev/null
  $who run --rm --network none --userns=host test/alpine cat /proc/self/uid_map
  $who inspect -f '{{.HostConfig.UsernsMode}}' "$($who create --userns=host test/alpine)"
  $who run --rm --network none --privileged test/alpine true > o 2>&1; echo "rc=$?"; sed 's/^[a-z]*: //' o | grep -v "^See '"
done
echo "== mini's layers"
m run -d --name held --network none test/alpine sleep 60 >/dev/null
# The idmapped layers are owned by 100000 through their mounts: no host process of
# that uid may reach them.
setpriv --reuid 100000 --regid 100000 --clear-groups ls "$CONTLAB_ROOT/idmapped" 2>&1 | sed 's/.*: //'
m rm -f held >/dev/null
m run --name keep --network none test/alpine sh -c 'mkdir /y && chown 1000:2 /y && echo x > /root/f'
id=$(m inspect -f '{{.Id}}' keep)
stat -c '%n %u %g' "$T/store/overlay/$id/diff/y" "$T/store/overlay/$id/diff/root/f" | sed "s|$T/store/overlay/$id/diff/||"
m diff keep; m start -a keep 2>&1; m rm keep >/dev/null
grep -c idmapped /proc/self/mountinfo
echo "== bad"
m run --rm --userns=private test/alpine true 2>&1; echo "rc=$?"
echo > /etc/subuid; m run --rm test/alpine true 2>&1; echo "rc=$?"
"#;
    let Some(out) = require(Tier::Root)
        .then(|| ok(&format!("{SUBIDS}{setup}{remap}{load}{script}kill \"$(cat \"$T/docker.pid\")\"; wait\n")))
    else {
        return;
    };
    let docker = section(&out, "docker");
    assert_eq!(section(&out, "m"), docker, "mini as docker with userns-remap");
    assert_eq!(
        docker,
        "uid=0(root) gid=0(root) groups=0(root)\n         0     100000      65536\n         0     100000      65536\n\
         /shared/f: Permission denied\nroot fs writable\n100000 100000 4755\n100000\n0\n         0     100000      65536\n\
         1000 1000\n\x20        0          0 4294967295\nhost\n\
         rc=125\nError response from daemon: privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode.\n",
        "root inside, 100000 outside, in run and exec; the volume's setuid file is 100000's; --userns=host: {out}"
    );
    assert_eq!(
        section(&out, "mini's layers"),
        "Permission denied\ny 1000 2\nroot/f 0 0\nC /root\nA /root/f\nA /y\nmkdir: can't create directory '/y': File exists\n0\n",
        "the container's own ids on disk, nothing left mounted"
    );
    assert_eq!(
        section(&out, "bad"),
        "mini: Error response from daemon: invalid USER mode: private: only host is supported\nrc=125\n\
         mini: userns-remap: no subordinate ids for \"dockremap\" in /etc/subuid\n  \
         hint: add a range, e.g. `echo dockremap:100000:65536 >> /etc/subuid` (and the same in the other of /etc/subuid, /etc/subgid)\nrc=125\n",
        "{out}"
    );
}

/// CVE-2019-5736: a container replaces a program with `#!/proc/self/exe`, so that
/// `mini exec` of it runs the runtime's own binary inside the container; a process of
/// the container grabs that binary through /proc/PID/exe and tries to overwrite it.
/// The write is refused (the container's monitor runs from that very file, and the
/// kernel refuses writes to a running program: ETXTBSY) and the binary is unchanged.
/// (Before its exec, mini's child is not dumpable: the container cannot open its
/// /proc files or ptrace it while it holds the host's descriptors.)
#[test]
fn cve_2019_5736_the_runtime_binary_cannot_be_overwritten_from_inside() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(r##"
before=$(sha256sum < "$(command -v mini)")
m run -d --name victim --network none test/alpine sleep 600 >/dev/null
m exec victim sh -c 'printf "#!/proc/self/exe\n" > /evil && chmod +x /evil'
# The attacker's image ships what the runtime's binary needs to start (alpine has no
# glibc: without its loader the exec fails with ENOENT, and there is no attack).
for lib in $(ldd "$(command -v mini)" | grep -o '/[^ ]*'); do
  m exec victim mkdir -p "$(dirname "$lib")"; m cp -L "$lib" "victim:$lib"
done
m exec -d victim sh -c '
  while :; do
    for p in /proc/[0-9]*; do
      case "$(readlink $p/exe 2>/dev/null)" in
        */mini*)
          exec 3< $p/exe || continue
          (echo pwned > /proc/self/fd/3) 2> /tmp/why && echo WROTE > /tmp/result
          sed "s/.*: //" /tmp/why > /tmp/result; exit;;
      esac
    done
  done'
i=0; until m exec victim test -e /tmp/result; do
  i=$((i+1)); [ $i -gt 300 ] && { echo "the attack never saw the runtime binary run inside"; break; }
  m exec victim /evil >/dev/null 2>&1
done
echo "== attack"; m exec victim cat /tmp/result
[ "$(sha256sum < "$(command -v mini)")" = "$before" ] && echo "binary unchanged"
m rm -f victim >/dev/null
"##);
    assert_eq!(section(&out, "attack"), "Text file busy\nbinary unchanged\n", "{out}");
}

/// In the VM: pure cgroup v2, where the device list is an eBPF program attached to the
/// container's group; and userns-remap on Debian's kernel.
mod guest {
    use crate::harness::{require, Tier};
    use crate::mini::{ok, section};

    /// docker's default list (`c *:* m`, null, zero, full, random, urandom, tty,
    /// console, ptmx, pts, tun): a node the container makes of another device opens
    /// with EPERM; `--device` adds its node with the access asked (here `r`);
    /// `--privileged` allows every device.
    #[test]
    #[ignore = "vm tier: runs inside the VM (vm::guest_suite)"]
    fn guest_device_rules_hold_on_pure_cgroup_v2() {
        if !require(Tier::Guest) {
            return;
        }
        let out = ok(r#"
[ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ] || { echo "not a pure cgroup v2 guest"; exit 1; }
# c 1:12 (/dev/oldmem, gone from the kernel): allowed, an open reaches the driver,
# which says ENXIO; denied, the device program answers EPERM first.
mknod "$T/gone" c 1 12
probe='head -c1 /dev/zero | wc -c; mknod /tmp/kmsg c 1 11 && echo made; (echo x > /tmp/kmsg) 2>&1 | sed "s/.*: //"'
echo "== default"; m run --rm --network none test/alpine sh -c "$probe; mknod /tmp/gone c 1 12; (head -c1 /tmp/gone) 2>&1 | sed 's/.*: //'"
echo "== device"; m run --rm --network none --device "$T/gone:/dev/gone:r" test/alpine sh -c "(head -c1 /dev/gone) 2>&1 | sed 's/.*: //'; (echo x > /dev/gone) 2>&1 | sed 's/.*: //'"
echo "== privileged"; m run --rm --network none --privileged test/alpine sh -c 'mknod /tmp/kmsg c 1 11 && echo x > /tmp/kmsg && echo written'
"#);
        assert_eq!(section(&out, "default"), "1\nmade\nOperation not permitted\nOperation not permitted\n", "{out}");
        assert_eq!(
            section(&out, "device"),
            "No such device or address\nOperation not permitted\n",
            "read allowed, write not: {out}"
        );
        assert_eq!(section(&out, "privileged"), "written\n", "{out}");
    }

    /// userns-remap in the VM: root inside is 100000 outside, in run and exec.
    #[test]
    #[ignore = "vm tier: runs inside the VM (vm::guest_suite)"]
    fn guest_userns_remap() {
        if !require(Tier::Guest) {
            return;
        }
        let out = ok(&(super::SUBIDS.to_string()
            + r#"
echo '{"userns-remap": "default"}' > "$T/mini.json"; export CONTLAB_MINI_CONFIG="$T/mini.json"
# The guest's /tmp is a tmpfs, which this kernel cannot idmap (tmpfs can since 6.3):
# mini says so; a store on ext4, as /var/lib is on a real machine, works.
m run --rm --network none test/alpine true 2>&1 | grep -c 'cannot idmap mounts'
truncate -s 256M "$T/disk"; mkfs.ext4 -q "$T/disk"; mkdir "$T/ext4"; mount -o loop "$T/disk" "$T/ext4"
cp -a "$CONTLAB_ROOT" "$T/ext4/store"; export CONTLAB_ROOT="$T/ext4/store"
m run -d --name sl --network none test/alpine sh -c 'touch /made; sleep 60' >/dev/null
echo "== remap"; ps -o uid= -p "$(m inspect -f '{{.State.Pid}}' sl)" | tr -d ' '
m exec sl sh -c 'id -u; cat /proc/self/uid_map; stat -c "%u %g" /made'
m rm -f sl >/dev/null; grep -c idmapped /proc/self/mountinfo
umount "$T/ext4"
"#));
        assert!(out.starts_with("1\n"), "on the tmpfs: mini says why, once: {out}");
        assert_eq!(section(&out, "remap"), "100000\n0\n         0     100000      65536\n0 0\n0\n", "{out}");
    }
}

/// "The docker group is root": whoever may talk to dockerd's socket may run a
/// container with the host's / bound in and chroot into it — a root shell on the host,
/// no password asked. Shown with docker as a user of the docker group, and with mini as
/// root. mini has no daemon and so no group to hand out: as anyone but root it refuses
/// (docker's exit code 125, the reason and what to do), and the monitor's socket is in
/// a directory only root enters.
#[test]
fn the_docker_group_is_root_and_mini_has_no_group() {
    let Some(out) = with_docker(
        r#"
getent group docker >/dev/null || { echo "no docker group (the docker.io package makes it)"; exit 1; }
chmod 711 "$T"; chgrp docker "$T/docker.sock"; chmod 660 "$T/docker.sock"
as_user() { setpriv --reuid 65534 --regid 65534 "$@"; }
echo "== docker group"
as_user --groups "$(getent group docker | cut -d: -f3)" /usr/bin/docker run --rm --network none -v /:/host test/alpine \
  chroot /host sh -c 'id -u; touch '"$T"'/by-docker-group'
stat -c '%U' "$T/by-docker-group"
echo "== mini as root"
m run --rm --network none -v /:/host test/alpine chroot /host sh -c 'id -u; touch '"$T"'/by-mini'
stat -c '%U' "$T/by-mini"
echo "== mini as a user"
m run -d --name own --network none test/alpine sleep 60 >/dev/null
as_user --clear-groups mini -q run --rm test/alpine true 2>&1; echo "rc=$?"
as_user --clear-groups mini -q exec own id 2>&1; echo "rc=$?"
stat -c '%a %U' "$(dirname "$(m inspect -f '{{.Id}}' own | sed "s|^|$CONTLAB_ROOT/containers/|")/x")"
m rm -f own >/dev/null
"#,
    ) else {
        return;
    };
    assert_eq!(section(&out, "docker group"), "0\nroot\n", "a member of the docker group is root on the host");
    assert_eq!(section(&out, "mini as root"), "0\nroot\n", "{out}");
    assert_eq!(
        section(&out, "mini as a user"),
        "mini: mini run needs root: a container is mounts, cgroups and namespaces, which only root may make\n  \
         hint: run it as root (sudo mini ...)\nrc=125\n\
         mini: mini exec needs root: a container is mounts, cgroups and namespaces, which only root may make\n  \
         hint: run it as root (sudo mini ...)\nrc=125\n710 root\n",
        "{out}"
    );
}

/// The same checks against podman (Debian's 4.3, runc): the Seccomp mode, NoNewPrivs,
/// the masked and read-only paths and the device nodes are podman's too, and so are
/// the capability sets once podman is given the three of docker's defaults it leaves
/// out (NET_RAW, MKNOD, AUDIT_WRITE: podman's own default set is smaller). runc makes
/// /dev/core only where the host has /proc/kcore (this one does not): left out.
#[test]
fn confinement_as_podman_with_dockers_capabilities() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(&(PODMAN.to_string()
        + r#"
m save test/alpine | p load -q >/dev/null || exit 1
probe='grep -E "^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):" /proc/self/status; ls /dev | grep -vx core | tr "\n" " "; echo
for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug /proc/latency_stats /sys/firmware /proc/acpi /proc/scsi; do [ -e $f ] && echo "$f $(cat $f 2>/dev/null | wc -c)"; done
grep -E " /proc/(sys|bus|fs|irq|sysrq-trigger) " /proc/mounts | cut -d" " -f2,4 | cut -d, -f1
mount -t tmpfs x /tmp 2>&1 | sed "s/.*: //"'
for flags in "" "--security-opt no-new-privileges" "--cap-drop ALL --cap-add CHOWN"; do
  echo "== flags $flags"
  pflags="$flags"; [ -z "$flags" ] || [ "${flags#--security}" != "$flags" ] && pflags="$flags --cap-add NET_RAW,MKNOD,AUDIT_WRITE"
  p run --rm --runtime runc --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 $pflags localhost/test/alpine sh -c "$probe" > pp 2>&1
  m run --rm --network none $flags test/alpine sh -c "$probe" > mm 2>&1
  diff pp mm && echo same
done
"#));
    for flags in ["", "--security-opt no-new-privileges", "--cap-drop ALL --cap-add CHOWN"] {
        assert!(section(&out, &format!("flags {flags}")).ends_with("same\n"), "{flags}: {out}");
    }
}

/// The course's shared-volume escalation (VOL-13): a container's root copies a shell
/// into a directory the host shares with it and makes it setuid. Without a user
/// namespace the file is root's on the host, and any host user who runs it is root
/// (dash, with -p, keeps the effective uid it was started with). With userns-remap the file
/// is uid 100000's: the same steps give a shell of uid 100000.
#[test]
fn the_shared_volume_setuid_escalation_and_what_remap_changes() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(&(SUBIDS.to_string()
        + r#"
mkdir -m 777 "$T/shared"; chmod 711 "$T"
attack() { # the image ships a shell; its root plants it, setuid, in the shared directory
  m run -d --name evil --network none -v "$T/shared:/shared" test/alpine sleep 60 >/dev/null
  m cp /bin/dash evil:/dash
  m exec evil sh -c 'cp /dash /shared/sh-$1 && chmod 4755 /shared/sh-$1' x "$1" 2>&1
  m rm -f evil >/dev/null
  stat -c '%u %a' "$T/shared/sh-$1"
  setpriv --reuid 65534 --regid 65534 --clear-groups "$T/shared/sh-$1" -p -c 'id -u; id -un 2>/dev/null || true' < /dev/null
}
echo "== no user namespace"; attack plain
echo "== userns-remap"; echo '{"userns-remap": "default"}' > "$T/mini.json"; CONTLAB_MINI_CONFIG="$T/mini.json"; export CONTLAB_MINI_CONFIG
chown 100000:100000 "$T/shared"; attack remapped
"#));
    assert_eq!(section(&out, "no user namespace"), "0 4755\n0\nroot\n", "the host user became root: {out}");
    assert!(section(&out, "userns-remap").starts_with("100000 4755\n100000\n"), "uid 100000, not root: {out}");
}
