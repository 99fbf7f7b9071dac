//! mini: diff, commit, export/import and cp: the course's storage exercises 2 and 3
//! (STORAGE-EX2, STORAGE-EX3, IMG-09, IMG-10, IMG-12) and cp's path safety.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::harness::{busybox_rootfs, require, Tier};
use crate::layer_diff::RawTar;
use crate::mini::{ok, sandbox, section};

/// A Debian-like image for the course's exercise 3: busybox, then a layer with
/// /opt, /mnt, /usr/bin/uniq, /home and /etc/motd (test/debian in the script's store
/// once `import_debian` ran).
fn debian_layout() -> &'static Path {
    static L: OnceLock<PathBuf> = OnceLock::new();
    L.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("contlab-mini-changes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let base = dir.join("base");
        busybox_rootfs(&base);
        let top = dir.join("top");
        for d in ["opt/app", "mnt", "usr/bin", "home", "etc"] {
            std::fs::create_dir_all(top.join(d)).unwrap();
        }
        std::fs::write(top.join("opt/app/readme"), "opt\n").unwrap();
        std::fs::write(top.join("usr/bin/uniq"), "#!/bin/sh\nexec busybox uniq \"$@\"\n").unwrap();
        std::fs::write(top.join("etc/motd"), "Welcome\n").unwrap();
        let layout = dir.join("layout");
        let env = serde_json::json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]);
        crate::mini::image(&layout, "debian", &[&base, &top], serde_json::json!({"Cmd": ["/bin/sh"], "Env": env}));
        layout
    })
}

fn import_debian() -> String {
    format!("img-pull -q import {}:debian -t test/debian >/dev/null || exit 9\n", debian_layout().display())
}

#[test]
fn storage_ex3_diff_commit_history_and_the_new_image_sees_it_all() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(&format!(
        r#"{}
m run --name mydebian test/debian sh -c 'rm -rf /opt /mnt /usr/bin/uniq; dd if=/dev/urandom of=/home/random bs=1 count=8500 2>&1 | tail -1; echo "Tagada tsoin tsoin" >> /etc/motd'
echo "== diff"; m diff mydebian; echo "code $?"
m cp mydebian:/home/random $T/random
echo "== commit"; id=$(m commit mydebian test/debian:new); echo "$id" | grep -c '^sha256:[0-9a-f]\{{64\}}$'
echo "== images"; img-pull -q ls | grep -c 'test/debian'
m rm mydebian >/dev/null
echo "== history"; img-pull -q history test/debian:new
echo "== layers"; img-pull -q inspect --format '{{{{json .RootFS.Layers}}}}' test/debian:new | tr ',' '\n' | wc -l
m run --rm test/debian:new sh -c 'ls /opt /mnt /usr/bin/uniq 2>&1; tail -1 /etc/motd; wc -c < /home/random; md5sum /home/random' > $T/inside; md5sum < $T/random | cut -d' ' -f1 > $T/sum
echo "== run"; cat $T/inside; grep -q "$(cat $T/sum)" $T/inside && echo same
echo "== id"; m inspect --format '{{{{.Image}}}}' $(m create test/debian:new true) | grep -c "$id"
"#,
        import_debian()
    ));
    assert_eq!(
        section(&out, "diff"),
        "C /etc\nC /etc/motd\nC /home\nA /home/random\nC /usr\nC /usr/bin\nD /usr/bin/uniq\nD /mnt\nD /opt\ncode 0\n",
        "the course's listing, letter for letter"
    );
    assert_eq!(section(&out, "commit"), "1\n");
    let hist = section(&out, "history");
    let rows: Vec<&str> = hist.lines().collect();
    assert_eq!(rows.len(), 1 + 3, "a header, the 2 layers of the image and 1 new: {hist}");
    assert!(rows[1].contains("sh -c rm -rf /opt /mnt /usr/bin/uniq;"), "created by the container's command: {hist}");
    assert!(!rows[1].starts_with("<missing>"), "the new image's ID on its top row: {hist}");
    assert!(rows[1].contains("kB"), "the new layer has a size (8500 random bytes and more): {hist}");
    assert_eq!(section(&out, "layers"), "3\n");
    let run = section(&out, "run");
    assert!(run.contains("ls: /opt: No such file or directory"), "{run}");
    assert!(run.contains("ls: /mnt: No such file or directory"), "{run}");
    assert!(run.contains("ls: /usr/bin/uniq: No such file or directory"), "{run}");
    assert!(run.contains("Tagada tsoin tsoin\n8500\n"), "{run}");
    assert!(run.ends_with("same\n"), "the same random bytes: {run}");
    assert_eq!(section(&out, "id"), "1\n");
}

#[test]
fn img_09_10_a_change_is_one_containers_and_commit_makes_it_an_image() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(r#"
m run --name first test/alpine touch /tmp/mon-fichier.txt
echo "== second"; m run --rm test/alpine ls /tmp; echo "code $?"
echo "== diff"; m diff first
echo "== running"; m run -d --name live test/alpine sh -c 'echo x > /root/new; sleep 60' >/dev/null; sleep 0.5; m diff live
echo "== commit-paused"; m commit -m "two files" -a "Ann <ann@example.org>" -c 'CMD ["cat", "/root/new"]' -c 'ENV GREETING=hi' -c 'EXPOSE 8080' live test/live >/dev/null; m inspect --format '{{.State.Status}}' live
echo "== committed"; m run --rm test/live; m run --rm test/live sh -c 'echo $GREETING'
echo "== config"; img-pull -q inspect --format '{{json .Config.ExposedPorts}} {{.Author}}' test/live
echo "== history-comment"; img-pull -q history test/live | sed -n 2p | grep -c 'two files'
echo "== untagged"; m commit first | cut -c1-7; img-pull -q ls | grep -c '<none>'
echo "== empty"; m run --name quiet test/alpine true; m commit quiet test/quiet >/dev/null; img-pull -q history test/quiet | sed -n 2p | awk '{print $NF}'
echo "== bad"; m commit -c 'RUN rm -rf /' first x 2>&1; echo "code $?"; m commit nosuch x 2>&1; echo "code $?"
m rm -f live >/dev/null
"#);
    assert_eq!(section(&out, "second"), "code 0\n");
    assert_eq!(section(&out, "diff"), "C /tmp\nA /tmp/mon-fichier.txt\n");
    assert_eq!(section(&out, "running"), "C /root\nA /root/new\n");
    assert_eq!(section(&out, "commit-paused"), "running\n", "paused for the commit, thawed after");
    assert_eq!(section(&out, "committed"), "x\nhi\n");
    let cfg = section(&out, "config");
    assert!(cfg.contains("\"8080/tcp\"") && cfg.contains("Ann <ann@example.org>"), "{cfg}");
    assert_eq!(section(&out, "history-comment"), "1\n");
    assert_eq!(section(&out, "untagged"), "sha256:\n1\n");
    assert_eq!(section(&out, "empty"), "0B\n", "nothing changed: no layer, a history entry of 0B");
    let bad = section(&out, "bad");
    assert!(bad.contains("RUN is not a valid change command"), "{bad}");
    assert!(bad.contains("No such container: nosuch"), "{bad}");
    assert_eq!(bad.matches("code 1").count(), 2, "{bad}");
}

#[test]
fn storage_ex2_graph_driver_dirs_and_a_file_made_from_the_outside() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(r#"
id=$(m run -d test/alpine sh -c 'touch /patate.txt; rm /etc/hostname 2>/dev/null; rm /bin/ls; echo pouf >> /etc/passwd; sleep 60')
sleep 0.5
upper=$(m inspect --format '{{.GraphDriver.Data.UpperDir}}' $id)
merged=$(m inspect --format '{{.GraphDriver.Data.MergedDir}}' $id)
lower=$(m inspect --format '{{.GraphDriver.Data.LowerDir}}' $id)
echo "== lowers"; echo "$lower" | tr ':' '\n' | wc -l; echo "$lower" | cut -d: -f1 | grep -c -- "-init/diff$"
echo "== upper"; (cd $upper && find . | sort)
echo "== whiteout"; stat -c '%F %t:%T' $upper/bin/ls
echo "== mount"; grep " $merged " /proc/mounts | grep -c "upperdir=$upper"
touch $merged/hello_from_the_outside
echo "== inside"; m exec $id sh -c 'echo /*' | tr ' ' '\n' | grep hello
echo "== tail"; m exec $id tail -1 /etc/passwd
echo "== diff"; m diff $id
m rm -f $id >/dev/null
"#);
    assert_eq!(section(&out, "lowers"), "2\n1\n", "the init layer, then the image's one layer");
    assert_eq!(section(&out, "upper"), ".\n./bin\n./bin/ls\n./etc\n./etc/passwd\n./patate.txt\n");
    assert_eq!(section(&out, "whiteout"), "character special file 0:0\n");
    assert_eq!(section(&out, "mount"), "1\n");
    assert_eq!(section(&out, "inside"), "/hello_from_the_outside\n");
    assert_eq!(section(&out, "tail"), "pouf\n");
    assert_eq!(
        section(&out, "diff"),
        "C /bin\nD /bin/ls\nC /etc\nC /etc/passwd\nA /hello_from_the_outside\nA /patate.txt\n",
        "/etc/hostname is a bind mount over the init layer: its failed rm changes nothing"
    );
}

#[test]
fn export_import_round_trip_and_a_stopped_container_is_unmounted_after() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(r#"
m run --name src test/alpine sh -c 'mkdir -p /data && echo hello > /data/f && ln -s /data/f /data/link && rm /etc/os-release'
merged=$(m inspect --format '{{.GraphDriver.Data.MergedDir}}' src)
echo "== export"; m export src > $T/fs.tar; echo "code $?"; tar tf $T/fs.tar | grep -c '^data/f$'; tar tf $T/fs.tar | grep -c 'os-release\|\.wh\.'
echo "== unmounted"; grep -c " $merged " /proc/mounts
echo "== file"; m export -o $T/fs2.tar src; cmp $T/fs.tar $T/fs2.tar && echo same
echo "== running"; m run -d --name live test/alpine sleep 60 >/dev/null; m export live | tar tf - | grep -c '^bin/busybox$'
echo "== import"; m import -c 'CMD ["cat", "/data/f"]' -c 'ENV X=1' $T/fs.tar test/imported | grep -c '^sha256:'
echo "== run"; m run --rm test/imported; m run --rm test/imported sh -c 'readlink /data/link; echo $X; ls /etc/os-release 2>&1'
echo "== history"; img-pull -q history test/imported | sed -n 2p | grep -c 'Imported from'
echo "== stdin"; cat $T/fs.tar | gzip | m import -m 'from a pipe' - test/piped | grep -c '^sha256:'; m run --rm test/piped cat /data/f
echo "== tty"; script -qc "mini -q export src" /dev/null | tail -c 300 | grep -c 'cowardly refusing'
m rm -f live >/dev/null
"#);
    assert_eq!(section(&out, "export"), "code 0\n1\n0\n", "a flat tree: no deleted file, no whiteout");
    assert_eq!(section(&out, "unmounted"), "0\n");
    assert_eq!(section(&out, "file"), "same\n");
    assert_eq!(section(&out, "running"), "1\n");
    assert_eq!(section(&out, "import"), "1\n");
    let run = section(&out, "run");
    assert!(run.starts_with("hello\n/data/f\n1\nls: /etc/os-release: No such file or directory\n"), "{run}");
    assert_eq!(section(&out, "history"), "1\n");
    assert_eq!(section(&out, "stdin"), "1\nhello\n");
    assert_eq!(section(&out, "tty"), "1\n");
}

/// Hostile tars for `import`: a clear error, exit 1, nothing outside written, no
/// image, no blob, no directory left in the store.
#[test]
fn import_refuses_hostile_tars_and_leaves_nothing() {
    if !require(Tier::Root) {
        return;
    }
    let t = crate::harness::tmp();
    let at = |n: &str| t.path().join(n);
    let mut b = RawTar::default();
    b.file("ok", b"fine");
    b.file("../../../../tmp/contlab-escaped-by-import", b"pwned");
    b.write(&at("traversal.tar"));
    let mut b = RawTar::default();
    b.file("first", b"fine");
    b.symlink("etc", "/tmp");
    b.file("etc/contlab-escaped-through-link", b"pwned");
    b.write(&at("symlink.tar"));
    let mut b = RawTar::default();
    b.device("mem", b'3');
    b.write(&at("device.tar"));
    // A gzip bomb: a header claiming 2 TiB (GNU base-256 size), then zeros, gzipped
    // by the script: a few KiB on disk.
    let mut size = [0u8; 12];
    size[0] = 0x80;
    size[6] = 0x02;
    let mut b = RawTar::default();
    b.header_sized("zeros", b'0', &size, "", 0o644, (0, 0));
    b.write(&at("bomb.head"));
    let (traversal, symlink, device) = (at("traversal.tar"), at("symlink.tar"), at("device.tar"));
    let bomb = at("bomb.tar.gz");
    let r = sandbox(&format!(
        r#"
rm -f /tmp/contlab-escaped-by-import /tmp/contlab-escaped-through-link
m ps -a >/dev/null
(cat {head}; head -c 67108864 /dev/zero) | gzip -1 > {bomb}
before=$(find $CONTLAB_ROOT | sort | md5sum)
for f in {} {} {} {}; do echo "== $(basename $f)"; m import $f test/evil 2>&1; echo "code $?"; done
echo "== outside"; ls /tmp/contlab-escaped-by-import /tmp/contlab-escaped-through-link 2>&1 | grep -c 'No such file'
echo "== store"; after=$(find $CONTLAB_ROOT | sort | md5sum); [ "$before" = "$after" ] && echo unchanged || find $CONTLAB_ROOT -newer {} | head
echo "== images"; img-pull -q ls | grep -c evil; true
"#,
        traversal.display(),
        symlink.display(),
        device.display(),
        bomb.display(),
        traversal.display(),
        head = at("bomb.head").display(),
        bomb = bomb.display(),
    ));
    assert_eq!(r.code, 0, "{}\n{}", r.out, r.err);
    let out = &r.out;
    for (name, why) in
        [("traversal.tar", "`..`"), ("symlink.tar", "symlink"), ("device.tar", "device"), ("bomb.tar.gz", "zeros")]
    {
        let s = section(out, name);
        assert!(s.ends_with("code 1\n"), "{name}: {s}");
        assert!(s.contains(why), "{name} refused with a reason naming {why}: {s}");
    }
    assert_eq!(section(out, "outside"), "2\n");
    assert_eq!(section(out, "store"), "unchanged\n", "no image, blob, layer or tmp file left");
    assert_eq!(section(out, "images"), "0\n");
}

#[test]
fn cp_both_ways_on_running_and_stopped_containers_with_dockers_rules() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(r#"
mkdir -p $T/h/images && echo jpg > $T/h/images/c.jpg && echo one > $T/h/file && chown 1234:1234 $T/h/file
m run -d --name live test/alpine sh -c 'mkdir -p /vol/pics && echo inside > /vol/pics/x; sleep 60' >/dev/null
m run --name stopped test/alpine sh -c 'mkdir -p /vol/pics && echo inside > /vol/pics/x'
for c in live stopped; do
  echo "== into-$c"; m cp $T/h/images $c:/vol/ 2>&1; echo "code $?"; m cp $T/h/file $c:/tmp/renamed; m cp -a $T/h/file $c:/tmp/kept; m cp $T/h/file $c:/tmp; chown 0:0 $T/h/file; m cp $T/h/file $c:/tmp/root; chown 1234:1234 $T/h/file
  echo "== out-$c"; rm -rf $T/o; mkdir $T/o; m cp $c:/vol/pics $T/o/otherimages 2>&1; echo "code $?"; m cp $c:/tmp/. $T/o/tmpcontent; m cp $c:/etc/os-release $T/o/
  (cd $T/o && find . | sort); stat -c '%u' $T/o/tmpcontent/kept
done
echo "== seen"; m exec live sh -c 'ls /vol/images; stat -c "%u %g" /tmp/renamed /tmp/kept /tmp/file /tmp/root'; m export stopped | tar tvf - --numeric-owner vol/images/c.jpg tmp/kept | awk '{print $2, $NF}'
echo "== user"; m run -d --user 1111 --name userc test/alpine sleep 60 >/dev/null; m cp -a $T/h/file userc:/tmp/a; m cp $T/h/file userc:/tmp/b; m exec userc stat -c '%u %g' /tmp/a /tmp/b; m rm -f userc >/dev/null
echo "== errors"; m cp live:/nope $T/o 2>&1; echo "code $?"; m cp $T/h/file live:/nope/x 2>&1; echo "code $?"; m cp $T/h/images live:/etc/os-release 2>&1; echo "code $?"; m cp $T/nothere live:/tmp 2>&1; echo "code $?"; m cp $T/h/file live:/tmp/newdir/ 2>&1; echo "code $?"; m cp nosuch:/x $T 2>&1; echo "code $?"; m cp live:/etc/os-release $T/nodir/x 2>&1; echo "code $?"; m cp live:/etc/os-release/ $T/y 2>&1; echo "code $?"; m cp $T/h/file/ live:/tmp 2>&1; echo "code $?"
echo "== stream"; m cp live:/vol - | tar tf - | sort; tar cf - -C $T/h file | m cp - live:/srv 2>&1; echo "code $?"; tar cf - -C $T/h file | m cp - live:/ && m exec live cat /file
echo "== follow"; m exec live ln -s /etc/os-release /tmp/osr; m cp live:/tmp/osr $T/o/l1; m cp -L live:/tmp/osr $T/o/l2; stat -c %F $T/o/l1 $T/o/l2
m rm -f live stopped >/dev/null
"#);
    for c in ["live", "stopped"] {
        assert_eq!(section(&out, &format!("into-{c}")), "code 0\n");
        let o = section(&out, &format!("out-{c}"));
        assert_eq!(
            o,
            "code 0\n.\n./os-release\n./otherimages\n./otherimages/x\n./tmpcontent\n./tmpcontent/file\n./tmpcontent/kept\n./tmpcontent/renamed\n./tmpcontent/root\n0\n",
            "{c}: a directory onto a missing name is copied as that name; /. copies the content; files onto a directory go into it"
        );
    }
    assert_eq!(
        section(&out, "seen"),
        "c.jpg\n1234 1234\n1234 1234\n1234 1234\n0 0\n1234/1234 tmp/kept\n0/0 vol/images/c.jpg\n",
        "docker's rule: the source's numeric owners are kept"
    );
    assert_eq!(section(&out, "user"), "1111 1111\n1234 1234\n", "-a: the container's user owns what is copied in");
    let e = section(&out, "errors");
    let want = [
        "Error response from daemon: Could not find the file /nope in container live\ncode 1\n",
        "Error response from daemon: Could not find the file /nope in container live\ncode 1\n",
        "cannot copy directory\ncode 1\n",
        "no such file or directory\ncode 1\n",
        "no such directory\ncode 1\n",
        "No such container: nosuch\ncode 1\n",
        "/nodir\" does not exist\ncode 1\n",
        "/etc/os-release/: not a directory\ncode 1\n",
        "not a directory\ncode 1\n",
    ];
    let mut rest = e;
    for w in want {
        let i = rest.find(w).unwrap_or_else(|| panic!("{w:?} in {e}"));
        rest = &rest[i + w.len()..];
    }
    let s = section(&out, "stream");
    assert!(s.starts_with("vol/\nvol/images/\nvol/images/c.jpg\nvol/pics/\nvol/pics/x\n"), "{s}");
    assert!(s.contains("destination \"live:/srv\" must be a directory\ncode 1\n"), "{s}");
    assert!(s.ends_with("one\n"), "{s}");
    assert_eq!(section(&out, "follow"), "symbolic link\nregular file\n");
}

/// CVE-2018-15664's shapes: symlinks a container plants to reach the host. cp follows
/// them inside the container's root, as docker does; the host is never read or
/// written.
#[test]
fn cp_through_planted_symlinks_stays_inside_the_container() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(r#"
echo host-secret > /tmp/contlab-host-secret; rm -f /tmp/contlab-host-written
m run -d --name evil test/alpine sh -c 'ln -s / /escape; ln -s ../../../../tmp /x; echo container-file > /tmp/contlab-host-secret; sleep 60' >/dev/null
sleep 0.5
echo "== read"; m cp evil:/escape/tmp/contlab-host-secret $T/r1; cat $T/r1; m cp evil:/x/contlab-host-secret $T/r2; cat $T/r2
echo "== write"; echo pwned > $T/contlab-host-written; m cp $T/contlab-host-written evil:/x/; m cp $T/contlab-host-written evil:/escape/tmp/; ls /tmp/contlab-host-written 2>&1 | grep -c 'No such file'; m exec evil ls /tmp/contlab-host-written
echo "== dir"; m cp evil:/escape/ $T/whole 2>&1 >/dev/null; ls $T/whole | grep -c '^bin$'; test -e $T/whole/escape && stat -c %F $T/whole/escape; find $T/whole/proc $T/whole/sys | wc -l
echo "== stopped"; m stop -t 0 evil >/dev/null; m cp evil:/x/contlab-host-secret $T/r3; cat $T/r3; m cp $T/contlab-host-written evil:/escape/tmp/again; ls /tmp/again 2>&1 | grep -c 'No such file'
echo "== host"; cat /tmp/contlab-host-secret
m rm -f evil >/dev/null; rm -f /tmp/contlab-host-secret
"#);
    assert_eq!(section(&out, "read"), "container-file\ncontainer-file\n");
    assert_eq!(section(&out, "write"), "1\n/tmp/contlab-host-written\n");
    assert_eq!(
        section(&out, "dir"),
        "1\nsymbolic link\n2\n",
        "the whole root, its symlinks as symlinks; /proc and /sys are the runtime's mounts, not copied (two empty directories)"
    );
    assert_eq!(section(&out, "stopped"), "container-file\n1\n");
    assert_eq!(section(&out, "host"), "host-secret\n");
}

/// A stopped container's volumes and binds are not mounted: a path under a recorded
/// mount's destination is read from (and written to) its source; `diff` never shows
/// a mount point.
#[test]
fn a_stopped_containers_recorded_mounts_are_used_by_cp_and_hidden_from_diff() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(r#"
mkdir -p $T/vol/sub && echo from-the-volume > $T/vol/sub/f
m run --name cc test/alpine sh -c 'mkdir -p /data /etc/conf && echo in-the-layer > /etc/conf/x'
rec=$CONTLAB_ROOT/containers/$(m inspect --format '{{.Id}}' cc)/config.json
python3 - "$rec" "$T/vol" <<'EOF'
import json, sys
p, src = sys.argv[1], sys.argv[2]
c = json.load(open(p))
c["mounts"] = [{"kind": "bind", "name": "", "source": src, "destination": "/data", "driver": "", "mode": "",
    "rw": True, "propagation": "rprivate", "options": "", "anonymous": False}]
json.dump(c, open(p, "w"))
EOF
echo "== read"; m cp cc:/data/sub/f $T/got; cat $T/got; m cp cc:/data $T/whole; ls $T/whole/sub
echo "== write"; echo new > $T/new; m cp $T/new cc:/data/sub/; cat $T/vol/sub/new
echo "== layer"; m cp cc:/etc/conf/x - | tar xOf -
echo "== diff"; m diff cc
"#);
    assert_eq!(section(&out, "read"), "from-the-volume\nf\n");
    assert_eq!(section(&out, "write"), "new\n");
    assert_eq!(section(&out, "layer"), "in-the-layer\n");
    assert_eq!(section(&out, "diff"), "C /etc\nA /etc/conf\nA /etc/conf/x\n", "/data is a mount point: not shown");
}

/// With real volumes (`-v NAME:/path`, `-v /host:/path`, `--tmpfs`): cp sees them
/// where the container does, running (through its root) and stopped (through the
/// sources); diff never lists their mount points.
#[test]
fn cp_and_diff_with_volumes_binds_and_tmpfs() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(r#"
mkdir -p $T/host && echo on-the-host > $T/host/h
m run -d --name vols -v pics:/vol/pics -v $T/host:/bind --tmpfs /scratch test/alpine sh -c 'echo in-volume > /vol/pics/v; echo in-tmpfs > /scratch/t; sleep 60' >/dev/null
sleep 0.5
echo "== running"; for p in /vol/pics/v /bind/h /scratch/t; do m cp vols:$p - | tar xOf -; done
echo "== into"; echo new > $T/new; m cp $T/new vols:/vol/pics/; m cp $T/new vols:/bind/; m exec vols cat /vol/pics/new; cat $T/host/new
echo "== diff"; m diff vols
m stop -t 0 vols >/dev/null
echo "== stopped"; m cp vols:/vol/pics/new - | tar xOf -; m cp vols:/bind/h - | tar xOf -
m rm -f vols >/dev/null
"#);
    assert_eq!(section(&out, "running"), "in-volume\non-the-host\nin-tmpfs\n");
    assert_eq!(section(&out, "into"), "new\nnew\n");
    let d = section(&out, "diff");
    assert!(!d.contains("/vol/pics") && !d.contains("/bind") && !d.contains("/scratch"), "{d}");
    assert_eq!(section(&out, "stopped"), "new\non-the-host\n");
}
