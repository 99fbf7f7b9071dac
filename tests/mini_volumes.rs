//! mini: volumes, bind mounts and tmpfs: the course's volume exercises (VOL-*,
//! STORAGE-EX4) with docker's behaviour, messages and exit codes.

use crate::harness::{require, Tier};
use crate::mini::{sandbox, section};

#[test]
fn named_volume_is_filled_from_the_image_shared_and_refused_removal_while_used() {
    if !require(Tier::Root) {
        return;
    }
    // VOL-01..05: create, ls, a volume over nginx's html directory (filled from the
    // image: docker's copy-up), its host Mountpoint, changes both ways, a second
    // container at another path, rm refused while any container uses it.
    let r = sandbox(
        r#"
echo "== create"; m volume create mynginx
echo "== ls"; m volume ls
m run -d --name c1 --network none -v mynginx:/usr/share/nginx/html test/web sleep 600 >/dev/null
echo "== inside"; m exec c1 ls /usr/share/nginx/html
MP=$(m volume inspect --format '{{.Mountpoint}}' mynginx)
echo "== mountpoint"; echo "$MP" | sed "s|^$CONTLAB_ROOT|ROOT|"
echo "== host"; ls "$MP"
echo from-host > "$MP/host.txt"; m exec c1 sh -c 'echo from-c1 > /usr/share/nginx/html/c1.txt'
echo "== both"; m exec c1 cat /usr/share/nginx/html/host.txt; cat "$MP/c1.txt"
echo "== c2"; m run --rm --network none -v mynginx:/data test/alpine ls /data
echo "== once"; m exec c1 rm /usr/share/nginx/html/index.html
m run --rm --network none -v mynginx:/usr/share/nginx/html test/web ls /usr/share/nginx/html
echo "== emptied"; m exec c1 sh -c 'rm -f /usr/share/nginx/html/*'; m restart -t 0 c1 >/dev/null; m exec c1 ls /usr/share/nginx/html | wc -l
echo "== rm-used"; m volume rm mynginx; echo "code $?"
m stop -t 0 c1 >/dev/null
echo "== rm-stopped"; m volume rm mynginx 2>&1 | sed 's/\[[0-9a-f]*\]/[ID]/'; echo "code $?"
m rm c1 >/dev/null
echo "== rm"; m volume rm mynginx; echo "code $?"
echo "== gone"; m volume ls -q | wc -l; test -e "$MP"; echo "exists $?"
"#,
    );
    assert_eq!(r.code, 0, "{}\n{}", r.out, r.err);
    let out = &r.out;
    assert_eq!(section(out, "create"), "mynginx\n");
    assert_eq!(section(out, "ls"), "DRIVER    VOLUME NAME\nlocal     mynginx\n");
    assert_eq!(section(out, "inside"), "index.html\n");
    assert_eq!(section(out, "mountpoint"), "ROOT/volumes/mynginx/_data\n");
    assert_eq!(section(out, "host"), "index.html\n");
    assert_eq!(section(out, "both"), "from-host\nfrom-c1\n");
    assert_eq!(section(out, "c2"), "c1.txt\nhost.txt\nindex.html\n");
    // A volume that is not empty is never filled again.
    assert_eq!(section(out, "once"), "c1.txt\nhost.txt\n");
    // Copy-up is once per container: emptied, the volume stays empty at a restart.
    assert_eq!(section(out, "emptied"), "0\n");
    assert_eq!(section(out, "rm-used"), "code 1\n");
    assert!(r.err.contains("Error response from daemon: remove mynginx: volume is in use - ["), "{}", r.err);
    assert!(
        section(out, "rm-stopped").starts_with("Error response from daemon: remove mynginx: volume is in use - [ID]")
    );
    assert_eq!(section(out, "rm"), "mynginx\ncode 0\n");
    // The anonymous volume of the image's VOLUME stays: `rm` without -v, as docker.
    assert_eq!(section(out, "gone"), "1\nexists 1\n");
}

#[test]
fn bind_mounts_with_v_and_mount_show_the_host_directory_and_inspect_lists_them() {
    if !require(Tier::Root) {
        return;
    }
    // VOL-06..08, VOL-12: a bind hides the image's directory; --mount type=bind;
    // `inspect --format '{{json .Mounts}}'`; a read-only bind refuses writes.
    let r = sandbox(
        r#"
mkdir -p $T/data && echo '<h1>from the host</h1>' > $T/data/index.html
m run -d --name c1 --network none --mount type=bind,source=$T/data/,destination=/usr/share/nginx/html/ test/web sleep 600 >/dev/null
echo "== page"; m exec c1 cat /usr/share/nginx/html/index.html
echo "== mounts"; m inspect c1 --format '{{json .Mounts}}' | sed "s|$T|T|g"
echo "== binds"; m run --rm --network none -v $T/data:/srv:ro test/alpine sh -c 'cat /srv/index.html; touch /srv/x 2>&1; echo "code $?"'
echo "== host-untouched"; ls $T/data
echo "== made"; m run --rm --network none -v $T/new/dir:/x test/alpine true; test -d $T/new/dir; echo "dir $?"
echo "== file"; echo one > $T/one.conf; m run --rm --network none -v $T/one.conf:/etc/one.conf:ro test/alpine cat /etc/one.conf
echo "== missing"; m run --rm --network none --mount type=bind,src=$T/nope,dst=/x test/alpine true; echo "code $?"
m rm -f c1 >/dev/null
"#,
    );
    assert_eq!(r.code, 0, "{}\n{}", r.out, r.err);
    let out = &r.out;
    assert_eq!(section(out, "page"), "<h1>from the host</h1>\n");
    // The bind, and the anonymous volume of the image's VOLUME /var/cache/web.
    let mounts = section(out, "mounts");
    assert!(
        mounts.contains("{\"Destination\":\"/usr/share/nginx/html\",\"Mode\":\"\",\"Propagation\":\"rprivate\",\"RW\":true,\"Source\":\"T/data\",\"Type\":\"bind\"}"),
        "{mounts}"
    );
    assert!(mounts.contains("\"Destination\":\"/var/cache/web\",\"Driver\":\"local\",\"Mode\":\"\""), "{mounts}");
    assert_eq!(section(out, "binds"), "<h1>from the host</h1>\ntouch: /srv/x: Read-only file system\ncode 1\n");
    assert_eq!(section(out, "host-untouched"), "index.html\n");
    assert_eq!(section(out, "made"), "dir 0\n");
    assert_eq!(section(out, "file"), "one\n");
    assert_eq!(section(out, "missing"), "code 125\n");
    assert!(r.err.contains("invalid mount config for type \"bind\": bind source path does not exist:"), "{}", r.err);
}

#[test]
fn tmpfs_mounts_and_a_tmpfs_volume_with_the_local_drivers_options() {
    if !require(Tier::Root) {
        return;
    }
    // VOL-10: a tmpfs mount loses its files with the container. VOL-11: a named volume
    // backed by tmpfs with size and uid, mounted on the host while a container uses it.
    let r = sandbox(
        r#"
m run -d --name c3 --network none --mount type=tmpfs,destination=/usr/share/nginx/html,tmpfs-size=1m,tmpfs-mode=1770 test/web sleep 600 >/dev/null
m exec c3 sh -c 'echo toto > /usr/share/nginx/html/index.html'
echo "== tmpfs"; m exec c3 sh -c 'cat /usr/share/nginx/html/index.html; grep " /usr/share/nginx/html " /proc/mounts | cut -d" " -f3,4; stat -c %a /usr/share/nginx/html'
m rm -f c3 >/dev/null
echo "== again"; m run --rm --network none --mount type=tmpfs,destination=/usr/share/nginx/html test/web ls /usr/share/nginx/html | wc -l
echo "== flag"; m run --rm --network none --tmpfs /run:rw,exec,size=64k test/alpine sh -c 'grep " /run " /proc/mounts | cut -d" " -f4'
echo "== create"; m volume create --driver local --opt type=tmpfs --opt device=tmpfs --opt o=size=100m,uid=1000 foo
m run -d -it --name devtest --network none --mount source=foo,target=/app test/alpine sh >/dev/null
echo "== inside"; m restart -t 0 devtest >/dev/null; m exec devtest sh -c 'grep " /app " /proc/mounts | cut -d" " -f3,4; stat -c %u /app'
echo "== options"; m volume inspect --format '{{json .Options}}' foo
MP=$(m volume inspect --format '{{.Mountpoint}}' foo)
echo "== host"; grep -c " $MP tmpfs " /proc/mounts
m rm -f devtest >/dev/null
echo "== after"; grep -c " $MP " /proc/mounts; true
"#,
    );
    assert_eq!(r.code, 0, "{}\n{}", r.out, r.err);
    let out = &r.out;
    assert_eq!(section(out, "tmpfs"), "toto\ntmpfs rw,nosuid,nodev,noexec,relatime,size=1024k,mode=1770\n1770\n");
    assert_eq!(section(out, "again"), "0\n");
    assert_eq!(section(out, "flag"), "rw,nosuid,nodev,relatime,size=64k\n");
    assert_eq!(section(out, "create"), "foo\n");
    assert_eq!(section(out, "inside"), "tmpfs rw,relatime,size=102400k,uid=1000\n1000\n");
    assert_eq!(section(out, "options"), "{\"device\":\"tmpfs\",\"o\":\"size=100m,uid=1000\",\"type\":\"tmpfs\"}\n");
    assert_eq!(section(out, "host"), "1\n");
    assert_eq!(section(out, "after"), "0\n");
}

#[test]
fn anonymous_volumes_volumes_from_and_read_only() {
    if !require(Tier::Root) {
        return;
    }
    // -v /path and the image's VOLUME make anonymous volumes, which rm -v and run --rm
    // remove; --volumes-from shares another container's; --read-only with a tmpfs.
    let r = sandbox(
        r#"
m run --name va --network none -v /scratch test/web sh -c 'echo kept > /scratch/f; echo cache > /var/cache/web/c'
echo "== anon"; m volume ls -q | wc -l
echo "== volumes"; m inspect va --format '{{json .Config.Volumes}}'
echo "== label"; m volume ls --filter label=com.docker.volume.anonymous -q | wc -l
echo "== from"; m run --rm --network none --volumes-from va:ro test/alpine sh -c 'cat /scratch/f /var/cache/web/c; touch /scratch/g 2>&1'
echo "== dangling"; m volume ls --filter dangling=true -q | wc -l
m rm -v va >/dev/null
echo "== rm-v"; m volume ls -q | wc -l
m run --rm --network none -v /tmpvol test/alpine true
echo "== run-rm"; m volume ls -q | wc -l
m volume create keep >/dev/null; m run --network none -v /x test/alpine true; m rm $(m ps -aq) >/dev/null
echo "== prune"; m volume prune -f | grep -c '^[0-9a-f]\{64\}$'; m volume ls -q
echo "== read-only"; m run --rm --network none --read-only --tmpfs /tmp test/alpine sh -c 'touch /x 2>&1; touch /tmp/y && echo tmp-ok'
echo "== ro-inspect"; m create --name ro --network none --read-only test/alpine true >/dev/null; m inspect -f '{{.HostConfig.ReadonlyRootfs}}' ro
"#,
    );
    assert_eq!(r.code, 0, "{}\n{}", r.out, r.err);
    let out = &r.out;
    assert_eq!(section(out, "anon"), "2\n");
    assert_eq!(section(out, "volumes"), "{\"/scratch\":{},\"/var/cache/web\":{}}\n");
    assert_eq!(section(out, "label"), "2\n");
    assert_eq!(section(out, "from"), "kept\ncache\ntouch: /scratch/g: Read-only file system\n");
    assert_eq!(section(out, "dangling"), "0\n");
    assert_eq!(section(out, "rm-v"), "0\n");
    assert_eq!(section(out, "run-rm"), "0\n");
    assert_eq!(section(out, "prune"), "1\nkeep\n");
    assert_eq!(section(out, "read-only"), "touch: /x: Read-only file system\ntmp-ok\n");
    assert_eq!(section(out, "ro-inspect"), "true\n");
}

#[test]
fn files_made_in_a_bind_belong_to_the_containers_uid_on_the_host() {
    if !require(Tier::Root) {
        return;
    }
    // VOL-15, VOL-16: the default user (root) makes root's files on the host; -u user1
    // (uid 1111) cannot write a root-owned directory, can once the host chowns it.
    let r = sandbox(
        r#"
mkdir -p $T/myvolume && chmod 755 $T/myvolume
m run --rm --network none -v $T/myvolume/:/data/ test/alpine touch /data/titi
echo "== root"; stat -c '%u:%g %n' $T/myvolume/titi | sed "s|$T|T|"
echo "== denied"; m run --rm --network none -v $T/myvolume/:/data/ -u user1 test/alpine touch /data/user1 2>&1; echo "code $?"
chown 1111 $T/myvolume
m run --rm --network none -v $T/myvolume/:/data/ -u user1 test/alpine touch /data/user1
chmod 777 $T/myvolume
m run --rm --network none -v $T/myvolume/:/data/ -u 1113 test/alpine touch /data/user3
echo "== owners"; stat -c '%u %n' $T/myvolume/user1 $T/myvolume/user3 | sed "s|$T|T|"
"#,
    );
    assert_eq!(r.code, 0, "{}\n{}", r.out, r.err);
    let out = &r.out;
    assert_eq!(section(out, "root"), "0:0 T/myvolume/titi\n");
    assert_eq!(section(out, "denied"), "touch: /data/user1: Permission denied\ncode 1\n");
    assert_eq!(section(out, "owners"), "1111 T/myvolume/user1\n1113 T/myvolume/user3\n");
}

#[test]
fn a_setuid_program_written_through_a_shared_volume_is_root_on_the_host_until_nosuid() {
    if !require(Tier::Root) {
        return;
    }
    // VOL-13 and the course's overview: container root writes a setuid-root program
    // into a directory shared with the host; an unprivileged host user runs it and is
    // root (euid 0). The local driver's o=bind,nosuid makes the kernel ignore the bit.
    let r = sandbox(
        r#"
mkdir -p $T/shared $T/safe && chmod 755 $T/shared $T/safe
m run --rm --network none -v /usr/bin/id:/host-id:ro -v $T/shared:/youpi test/alpine sh -c 'cp /host-id /youpi/id && chown 0:0 /youpi/id && chmod 4755 /youpi/id'
echo "== escalated"; setpriv --reuid=65534 --regid=65534 --clear-groups $T/shared/id | grep -o 'euid=0(root)'
m volume create --opt type=none --opt o=bind,nosuid --opt device=$T/safe safe >/dev/null
m run -d --name holder --network none -v safe:/youpi test/alpine sleep 600 >/dev/null
m run --rm --network none -v /usr/bin/id:/host-id:ro -v safe:/youpi test/alpine sh -c 'cp /host-id /youpi/id && chown 0:0 /youpi/id && chmod 4755 /youpi/id'
MP=$(m volume inspect --format '{{.Mountpoint}}' safe)
echo "== bit"; stat -c %a $T/safe/id
echo "== defeated"; setpriv --reuid=65534 --regid=65534 --clear-groups $MP/id | grep -c 'euid='
echo "== mount"; grep " $MP " /proc/mounts | grep -o nosuid
m rm -f holder >/dev/null
"#,
    );
    assert_eq!(r.code, 0, "{}\n{}", r.out, r.err);
    let out = &r.out;
    assert_eq!(section(out, "escalated"), "euid=0(root)\n");
    assert_eq!(section(out, "bit"), "4755\n");
    assert_eq!(section(out, "defeated"), "0\n");
    assert_eq!(section(out, "mount"), "nosuid\n");
}

#[test]
fn bad_volume_input_gets_dockers_messages_and_nothing_is_made() {
    if !require(Tier::Root) {
        return;
    }
    let r = sandbox(
        r#"
echo "== slash"; m volume create a/b; echo "code $?"
echo "== dots"; m volume create ..; echo "code $?"
echo "== opt"; m volume create --opt foo=bar v1; echo "code $?"
echo "== spec"; m run --rm -v a:b:c:d test/alpine true; echo "code $?"
echo "== relative"; m run --rm -v vol:relative test/alpine true; echo "code $?"
echo "== name"; m run --rm -v ../x:/x test/alpine true; echo "code $?"
echo "== target"; m run --rm --mount type=bind,src=/tmp test/alpine true; echo "code $?"
echo "== key"; m run --rm --mount type=volume,foo=bar,dst=/x test/alpine true; echo "code $?"
echo "== dup"; m run --rm -v /a -v v2:/a test/alpine true; echo "code $?"
echo "== none-made"; m volume ls -q | wc -l; m ps -aq | wc -l; ls $CONTLAB_ROOT/volumes 2>/dev/null | wc -l
echo "== missing"; m volume rm nosuch; echo "code $?"; m volume inspect nosuch; echo "code $?"
"#,
    );
    let out = &r.out;
    assert_eq!(section(out, "slash"), "code 1\n", "{}", r.err);
    assert!(r.err.contains("Error response from daemon: create a/b: \"a/b\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"), "{}", r.err);
    assert_eq!(section(out, "dots"), "code 1\n");
    assert_eq!(section(out, "opt"), "code 1\n");
    assert!(r.err.contains("create v1: invalid option key: \"foo\""), "{}", r.err);
    assert_eq!(section(out, "spec"), "code 125\n");
    assert!(r.err.contains("invalid volume specification: 'a:b:c:d'"), "{}", r.err);
    assert_eq!(section(out, "relative"), "code 125\n");
    assert!(r.err.contains("invalid mount path: 'relative' mount path must be absolute"), "{}", r.err);
    assert_eq!(section(out, "name"), "code 125\n");
    assert_eq!(section(out, "target"), "code 125\n");
    assert!(r.err.contains("field Target must not be empty"), "{}", r.err);
    assert_eq!(section(out, "key"), "code 125\n");
    assert!(r.err.contains("unexpected key 'foo' in 'foo=bar'"), "{}", r.err);
    assert_eq!(section(out, "dup"), "code 125\n");
    assert!(r.err.contains("Duplicate mount point: /a"), "{}", r.err);
    // The duplicate was found before any volume was made.
    assert_eq!(section(out, "none-made"), "0\n0\n0\n");
    assert_eq!(section(out, "missing"), "code 1\n[]\ncode 1\n");
    assert!(r.err.contains("Error response from daemon: get nosuch: no such volume"), "{}", r.err);
}

#[test]
fn a_symlink_in_the_container_cannot_move_a_mount_point_onto_the_host() {
    if !require(Tier::Root) {
        return;
    }
    // The mount point is made with every component resolved beneath the container's
    // root (openat2 RESOLVE_BENEATH): a symlink planted on the path that points out of
    // it (here at a host directory) makes the start fail, and nothing is made there.
    let r = sandbox(
        r#"
mkdir -p $T/outside $T/src
m create --name evil --network none -v $T/src:/evil/sub test/alpine true >/dev/null
UP=$(m inspect -f '{{.GraphDriver.Data.UpperDir}}' evil)
ln -s $T/outside $UP/evil
echo "== start"; m start -a evil; echo "code $?"
echo "== outside"; ls $T/outside | wc -l
echo "== state"; m inspect -f '{{.State.Status}}' evil; grep -c "$UP" /proc/mounts
ln -sfn ../../../../../../../../.. $UP/evil
echo "== climb"; m start -a evil; echo "code $?"
"#,
    );
    let out = &r.out;
    assert_eq!(section(out, "start"), "code 125\n", "{}", r.err);
    assert!(r.err.contains("cannot make the mount point /evil/sub inside the container"), "{}", r.err);
    assert_eq!(section(out, "outside"), "0\n");
    assert_eq!(section(out, "state"), "created\n0\n");
    assert_eq!(section(out, "climb"), "code 125\n");
}

#[test]
fn kill_9_while_a_volume_is_mounted_leaves_nothing_rm_f_cannot_remove() {
    if !require(Tier::Root) {
        return;
    }
    // The record marks the volume's filesystem before it is mounted: a mini killed
    // just before the mount (the first `mount`), or just after it (the mount point's
    // `mkdirat`, with the volume mounted), leaves a record `rm -f` unmounts from.
    for (call, mounted) in [("mount", 0), ("mkdirat", 1)] {
        let out = crate::mini::ok(&format!(
            r#"
m volume create --opt type=tmpfs --opt device=tmpfs --opt o=size=1m tv >/dev/null
# The image's layers extracted first (that is mkdirat too).
m run --rm --network none test/alpine true
CONTLAB_FAULT={call}:1:stop mini -q run -d --name f1 --network none -v tv:/data test/alpine sleep 300 >/dev/null 2>&1 &
cli=$!
for i in $(seq 1 300); do
  s=$(for p in $(pgrep -f 'mini -q'); do awk '{{print $3}}' /proc/$p/stat 2>/dev/null; done | grep -c T)
  [ "$s" -gt 0 ] && break; sleep 0.05
done
echo "== stopped"; echo $s; grep -c "$T/store/volumes/tv/_data" /proc/self/mountinfo
for p in $(pgrep -f 'mini -q'); do kill -9 $p 2>/dev/null; done
kill -9 $(pgrep -f 'sleep 300') 2>/dev/null
wait $cli 2>/dev/null
m rm -f f1 >/dev/null 2>&1
echo "== left"
grep -c "$T/store/volumes/tv/_data" /proc/self/mountinfo
grep -c "$T/store/overlay" /proc/self/mountinfo
m volume rm tv
"#
        ));
        assert_eq!(section(&out, "stopped"), format!("1\n{mounted}\n"), "mini did not stop at {call}");
        assert_eq!(section(&out, "left"), "0\n0\ntv\n", "after kill -9 at {call}: something was left");
    }
}

#[test]
fn system_df_counts_volumes_and_system_prune_volumes_removes_the_unused_anonymous_ones() {
    if !require(Tier::Root) {
        return;
    }
    let r = sandbox(
        r#"
m volume create named >/dev/null
m run --name keeper --network none -v /anon -v named:/named test/alpine sh -c 'echo hello > /anon/f; echo x > /named/g'
echo "== df"; m system df | grep '^Local Volumes' | awk '{print $3, $4, $5}'
echo "== df-v"; m system df -v | grep -c '^named '
m rm keeper >/dev/null
echo "== reclaimable"; m system df | grep '^Local Volumes' | awk '{print $3, $4, $6}'
echo "== prune"; m system prune -f --volumes | sed -n '/^Deleted Volumes:/,/^$/p' | grep -c '^[0-9a-f]\{64\}$'
echo "== left"; m volume ls -q
"#,
    );
    assert_eq!(r.code, 0, "{}\n{}", r.out, r.err);
    let out = &r.out;
    // Two volumes, both used by the (stopped) container; 6 + 2 bytes.
    assert_eq!(section(out, "df"), "2 2 8B\n");
    assert_eq!(section(out, "df-v"), "1\n");
    assert_eq!(section(out, "reclaimable"), "2 0 8B\n");
    // docker 23's rule: only anonymous volumes go; the named one stays.
    assert_eq!(section(out, "prune"), "1\n");
    assert_eq!(section(out, "left"), "named\n");
}

#[test]
fn nested_mounts_and_the_etc_files_under_a_volume() {
    if !require(Tier::Root) {
        return;
    }
    // Parents first: a volume inside a volume gets its mount point in the outer one;
    // the /etc files docker binds come after a volume over /etc, not under it.
    let r = sandbox(
        r#"
echo "== nested"; m run --rm --network none -v outer:/data -v inner:/data/sub test/alpine sh -c 'echo in > /data/sub/f; echo out > /data/g; ls /data'
MP=$(m volume inspect --format '{{.Mountpoint}}' inner); cat "$MP/f"
echo "== etc"; m run --rm --network none -h myhost -v etcv:/etc test/alpine sh -c 'cat /etc/hostname; grep -c ip6-allnodes /etc/hosts'
echo "== tmpfs-parent"; m run --rm --network none --tmpfs /t -v inner:/t/v test/alpine true; echo "code $?"
"#,
    );
    assert_eq!(r.code, 0, "{}\n{}", r.out, r.err);
    assert_eq!(section(&r.out, "nested"), "g\nsub\nin\n");
    assert_eq!(section(&r.out, "etc"), "myhost\n1\n");
    assert_eq!(section(&r.out, "tmpfs-parent"), "code 125\n");
    assert!(r.err.contains("cannot mount on /t/v: it is inside the tmpfs mounted on /t"), "{}", r.err);
}

#[test]
fn a_symlink_cannot_make_copy_up_read_the_host_nor_a_mount_follow_it() {
    if !require(Tier::Root) {
        return;
    }
    // The mount point is checked before anything is copied into a new volume: a
    // planted /data -> / cannot make copy-up pack the host's /etc into the volume.
    // A symlink as the mount point itself is refused (mount(2) would follow it from
    // the host's side).
    let r = sandbox(
        r#"
m create --name e2 --network none -v vol:/data/etc test/alpine true >/dev/null
UP=$(m inspect -f '{{.GraphDriver.Data.UpperDir}}' e2)
ln -s / $UP/data
echo "== copy"; m start -a e2; echo "code $?"
MP=$(m volume inspect --format '{{.Mountpoint}}' vol); ls "$MP" | wc -l
mkdir -p $T/src
m create --name e3 --network none -v $T/src:/last test/alpine true >/dev/null
UP=$(m inspect -f '{{.GraphDriver.Data.UpperDir}}' e3)
ln -s /etc $UP/last
echo "== last"; m start -a e3; echo "code $?"
"#,
    );
    let out = &r.out;
    assert_eq!(section(out, "copy"), "code 125\n0\n", "{}", r.err);
    assert_eq!(section(out, "last"), "code 125\n");
    assert!(r.err.contains("cannot mount on /last inside the container: /last is a symlink"), "{}", r.err);
}

#[test]
fn a_new_volume_takes_the_owner_and_mode_of_the_directory_it_covers() {
    if !require(Tier::Root) {
        return;
    }
    // docker's copyOwnership: a volume over a service user's directory stays that
    // user's, even when the directory is empty.
    let r = sandbox(
        r#"
m run --name own --network none test/alpine sh -c 'mkdir -p /srv/data; chown 1111:1111 /srv/data; chmod 700 /srv/data'
m commit own test/own >/dev/null
echo "== owner"; m run --rm --network none -v ownvol:/srv/data test/own stat -c '%u:%g %a' /srv/data
MP=$(m volume inspect --format '{{.Mountpoint}}' ownvol); stat -c '%u:%g %a' "$MP"
"#,
    );
    assert_eq!(r.code, 0, "{}\n{}", r.out, r.err);
    assert_eq!(section(&r.out, "owner"), "1111:1111 700\n1111:1111 700\n");
}
