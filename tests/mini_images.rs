//! mini: mini's image commands against docker's: images, rmi, tag, inspect, history, save/load with docker and podman, prune, system df (IMG-*, BASICS-EX1).
//!
//! Root tier, in the sandbox of `tests/mini.rs` (fresh net, mount and PID namespaces,
//! a store of its own with test/alpine, test/ex01, test/ex03, test/entry). The peers
//! (podman, dockerd from Debian's docker.io) run inside the same sandbox, with stores
//! of their own under the test's directory, so nothing of theirs outlives the test; a
//! missing peer fails the test with the package to install.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::harness::{require, Tier};
#[allow(unused_imports)]
use crate::mini::{ok, sandbox, section, PODMAN};

/// A layout with `hist`: test/ex01's two layers and a history of three steps (the
/// middle one `empty_layer`), as docker builds write them.
fn hist_layout() -> &'static Path {
    static L: OnceLock<PathBuf> = OnceLock::new();
    L.get_or_init(|| {
        let dirs = crate::mini::layout().parent().unwrap().to_path_buf();
        let layout = dirs.join("hist-layout");
        let _ = std::fs::remove_dir_all(&layout);
        let mut descs = vec![];
        let mut diffs = vec![];
        for d in [dirs.join("base"), dirs.join("ex01")] {
            let (gz, diff) = crate::img_pull::gz_layer(&d);
            let digest = crate::img_pull::put_blob(&layout, &gz);
            descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": gz.len()}));
            diffs.push(diff);
        }
        let history = serde_json::json!([
            {"created": "2023-11-14T22:13:20Z", "created_by": "/bin/sh -c #(nop) ADD file:6d1cd0d8a1d3a3f8b0c0e4d1c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00 in / "},
            {"created": "2023-11-14T22:13:20Z", "created_by": "/bin/sh -c #(nop)  CMD [\"/bin/sh\"]", "empty_layer": true},
            {"created": "2023-11-14T22:13:21Z", "created_by": "COPY flag .dockerenv / # buildkit", "comment": "buildkit.dockerfile.v0"},
        ]);
        let cfg = serde_json::json!({"created": "2023-11-14T22:13:21Z", "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diffs}, "history": history});
        let cb = serde_json::to_vec(&cfg).unwrap();
        let cd = crate::img_pull::put_blob(&layout, &cb);
        let m = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cb.len()}, "layers": descs});
        let mb = serde_json::to_vec(&m).unwrap();
        let md = crate::img_pull::put_blob(&layout, &mb);
        crate::img_pull::name_in_layout(&layout, "hist", "application/vnd.oci.image.manifest.v1+json", &md, mb.len());
        layout
    })
}

/// The script line that imports test/hist into the sandbox's store.
fn import_hist() -> String {
    format!("img-pull -q import {}:hist -t test/hist >/dev/null || exit 1\n", hist_layout().display())
}

/// docker's size of an extracted directory: regular files (a hard link once) and
/// symlinks, as `du --apparent-size` counts them without directories.
const R: &str = r#"r() { o=$("$@" 2>&1); c=$?; printf '%s\ncode %s\n' "$o" "$c"; }
# These tests count the sandbox's images: the volume tests' test/web is not one of them.
m rmi test/web >/dev/null
"#;

const DU: &str = r#"du_files() { find "$1" \( -type f -o -type l \) -printf '%i %s\n' | sort -u | awk '{s+=$2} END {print s+0}'; }
m rmi test/web >/dev/null
"#;

#[test]
fn images_lists_as_docker_with_dockers_size() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(&format!(
        "{DU}{}{}",
        import_hist(),
        r#"
echo "== table"; m images
echo "== repo"; m image ls test/ex01
echo "== pattern"; m images 'test/e*' --format '{{.Repository}}:{{.Tag}}'
echo "== tag-pattern"; m images 'test/ex01:lat*' --format '{{.Repository}}'
echo "== q"; m images -q | wc -l; m images -q | head -1 | grep -c '^[0-9a-f]\{12\}$'
echo "== no-trunc"; m images --no-trunc --format '{{.ID}}' test/alpine | grep -c '^sha256:[0-9a-f]\{64\}$'
echo "== digests"; m images --digests test/alpine
echo "== a"; [ "$(m images -a)" = "$(m images)" ] && echo same
echo "== format"; m images --format 'table {{.Repository}}\t{{.Tag}}\t{{.Size}}' test/alpine
echo "== dangling"; m images --filter dangling=true -q | wc -l
echo "== size-before"; m images --format '{{.Size}}' test/alpine; m images --format '{{.Size}}' test/ex01
echo "== size"; m run --rm test/alpine true; m run --rm test/ex01 true
for img in test/alpine test/ex01; do
  total=0; for d in $(m image inspect -f '{{range .RootFS.Layers}}{{.}} {{end}}' $img); do total=$((total + $(du_files "$T/store/layers/${d#sha256:}"))); done
  echo "$img $total $(m image inspect -f '{{.Size}}' $img) $(m images --format '{{.Size}}' $img)"
done
"#
    ));
    let table = section(&out, "table");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "REPOSITORY    TAG       IMAGE ID       CREATED       SIZE", "{table}");
    assert_eq!(lines.len(), 6, "five images and the header: {table}");
    // Newest first: test/hist was made a second later than the others.
    assert!(lines[1].starts_with("test/hist     latest    "), "{table}");
    for l in &lines[1..] {
        assert!(l.contains(" 3 years ago ") || l.contains(" 2 years ago "), "{l}");
        assert!(!l.ends_with(" 0B"), "SIZE is the layers' size, not 0B: {l}");
    }
    let repo = section(&out, "repo");
    assert_eq!(repo.lines().count(), 2, "{repo}");
    assert!(repo.lines().nth(1).unwrap().starts_with("test/ex01    latest    "), "{repo}");
    assert_eq!(section(&out, "pattern"), "test/entry:latest\ntest/ex01:latest\ntest/ex03:latest\n");
    assert_eq!(section(&out, "tag-pattern"), "test/ex01\n");
    assert_eq!(section(&out, "q"), "5\n1\n");
    assert_eq!(section(&out, "no-trunc"), "1\n");
    let d = section(&out, "digests");
    assert!(d.starts_with("REPOSITORY    TAG       DIGEST    IMAGE ID       CREATED       SIZE\n"), "{d}");
    assert!(
        d.lines().nth(1).unwrap().starts_with("test/alpine   latest    <none>    "),
        "an imported image has no registry digest: {d}"
    );
    assert_eq!(section(&out, "a"), "same\n");
    let f = section(&out, "format");
    assert!(f.starts_with("REPOSITORY    TAG       SIZE\ntest/alpine   latest    "), "{f}");
    assert_eq!(section(&out, "dangling"), "0\n");
    // SIZE is docker's: the bytes of the layers' files once extracted (inspect's Size
    // in bytes, the column with three digits).
    let before: Vec<&str> = section(&out, "size-before").lines().collect();
    for (i, l) in section(&out, "size").lines().enumerate() {
        let v: Vec<&str> = l.split(' ').collect();
        assert_eq!(v[1], v[2], "inspect's Size is the layers' files: {l}");
        assert_eq!(v[3], contlab::runtime::images::size3(v[1].parse().unwrap()), "{l}");
        assert_eq!(before[i], v[3], "counted in the layer's tar before it is extracted, the same");
    }
}

/// BASICS-EX1-Q3 and IMG-13: the image ID a container was made from, three ways, and
/// the layer list; the fields of docker's image inspect.
#[test]
fn basics_ex1_q3_image_id_and_img13_layers() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(r#"
m run --name q3 test/ex01 true
echo "== ctr"; m inspect --format '{{.Image}}' q3
echo "== img"; m inspect --format '{{.Id}}' test/ex01
echo "== ls"; m image ls test/ex01 --format '{{.ID}}'
echo "== layers"; m inspect --format '{{json .RootFS.Layers}}' test/ex01
echo "== layers2"; m image inspect --format '{{json .RootFS.Layers}}' test/ex01
echo "== json"; m image inspect test/ex01
echo "== graph"; m image inspect -f '{{.GraphDriver.Name}} {{.GraphDriver.Data.UpperDir}} {{.GraphDriver.Data.LowerDir}}' test/ex01
echo "== nosuch"; m image inspect nosuch 2>&1; echo "code $?"
"#);
    let ctr = section(&out, "ctr").trim().to_string();
    assert!(ctr.starts_with("sha256:") && ctr.len() == 71, "{ctr}");
    assert_eq!(section(&out, "img").trim(), ctr);
    assert_eq!(section(&out, "ls").trim(), &ctr[7..19]);
    let layers: Vec<String> = serde_json::from_str(section(&out, "layers")).unwrap();
    assert_eq!(layers.len(), 2, "test/ex01 is alpine's layer and its own");
    assert!(layers.iter().all(|l| l.starts_with("sha256:") && l.len() == 71));
    assert_eq!(section(&out, "layers2"), section(&out, "layers"));
    let js: serde_json::Value = serde_json::from_str(section(&out, "json")).unwrap();
    let o = &js.as_array().expect("an array, as docker's")[0];
    for f in ["Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "Config", "Architecture", "Os", "Size"] {
        assert!(o.get(f).is_some(), "{f} missing: {o}");
    }
    assert_eq!(o["Id"], ctr.as_str());
    assert_eq!(o["RepoTags"], serde_json::json!(["test/ex01:latest"]));
    assert_eq!(o["RepoDigests"], serde_json::json!([]), "imported, not pulled: no registry digest");
    assert_eq!(o["Config"]["Cmd"], serde_json::json!(["/bin/sh"]));
    assert_eq!(o["RootFS"]["Layers"], serde_json::json!(layers));
    assert!(o["Size"].as_u64().unwrap() > 100_000);
    let g = section(&out, "graph");
    let v: Vec<&str> = g.split_whitespace().collect();
    assert_eq!(v[0], "overlay2");
    assert!(v[1].ends_with(&format!("/store/layers/{}", &layers[1][7..])), "top layer: {g}");
    assert!(v[2].ends_with(&format!("/store/layers/{}", &layers[0][7..])), "lower: {g}");
    assert_eq!(
        section(&out, "nosuch"),
        "[]\nError: No such image: nosuch\ncode 1\n",
        "docker prints the empty list too"
    );
}

#[test]
fn history_as_docker_with_sizes_and_h_false() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(&format!(
        "{DU}{}{}",
        import_hist(),
        r#"
echo "== h"; m history test/hist
echo "== raw"; m history -H=false test/hist
echo "== human-false"; m history --human=false test/hist | sed 1d | awk '{print $2}'
echo "== no-trunc"; m history --no-trunc test/hist | sed -n 2p | cut -c1-71
echo "== q"; m history -q test/hist
echo "== format"; m history --format '{{.Size}}|{{.CreatedBy}}' test/hist
echo "== table"; m history --format 'table {{.ID}}\t{{.Size}}' test/hist
m run --rm test/hist true
echo "== du"; for d in $(m image inspect -f '{{range .RootFS.Layers}}{{.}} {{end}}' test/hist); do du_files "$T/store/layers/${d#sha256:}"; done
"#
    ));
    let id = &section(&out, "q").lines().next().unwrap().to_string();
    assert_eq!(id.len(), 12);
    let du: Vec<u64> = section(&out, "du").lines().map(|l| l.parse().unwrap()).collect();
    let size3 = |n: u64| contlab::runtime::images::size3(n);
    let tab = |rows: Vec<Vec<String>>| contlab::runtime::template::columns(&rows);
    let row = |v: [&str; 5]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    let (s1, s0) = (size3(du[1]), size3(du[0]));
    let by = [
        "COPY flag .dockerenv / # buildkit",
        "/bin/sh -c #(nop)  CMD [\"/bin/sh\"]",
        "/bin/sh -c #(nop) ADD file:6d1cd0d8a1d3a3f8b…",
    ];
    assert_eq!(du[1], 39, "ex01's layer: the flag's 39 bytes and an empty .dockerenv");
    let want = tab(vec![
        row(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]),
        row([id, "3 years ago", by[0], &s1, "buildkit.dockerfile.v0"]),
        row(["<missing>", "3 years ago", by[1], "0B", ""]),
        row(["<missing>", "3 years ago", by[2], &s0, ""]),
    ]);
    assert_eq!(section(&out, "h"), want);
    let (r1, r0) = (du[1].to_string(), du[0].to_string());
    let want = tab(vec![
        row(["IMAGE", "CREATED AT", "CREATED BY", "SIZE", "COMMENT"]),
        row([id, "2023-11-14T22:13:21Z", by[0], &r1, "buildkit.dockerfile.v0"]),
        row(["<missing>", "2023-11-14T22:13:20Z", by[1], "0", ""]),
        row(["<missing>", "2023-11-14T22:13:20Z", by[2], &r0, ""]),
    ]);
    assert_eq!(section(&out, "raw"), want);
    assert!(section(&out, "h").starts_with("IMAGE          CREATED       CREATED BY   "), "{out}");
    assert_eq!(section(&out, "human-false"), "2023-11-14T22:13:21Z\n2023-11-14T22:13:20Z\n2023-11-14T22:13:20Z\n");
    assert!(section(&out, "no-trunc").starts_with("sha256:"), "{out}");
    assert_eq!(section(&out, "q"), format!("{id}\n<missing>\n<missing>\n"));
    assert_eq!(
        section(&out, "format"),
        format!(
            "{}|COPY flag .dockerenv / # buildkit\n0B|/bin/sh -c #(nop)  CMD [\"/bin/sh\"]\n{}|/bin/sh -c #(nop) ADD file:6d1cd0d8a1d3a3f8b…\n",
            size3(du[1]),
            size3(du[0])
        )
    );
    assert!(section(&out, "table").starts_with(&format!("IMAGE          SIZE\n{id}   ")), "{out}");
}

#[test]
fn tag_and_rmi_refuse_what_containers_use_as_docker() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(&format!(
        "{R}{}",
        r#"
ex03=$(m inspect -f '{{.Id}}' test/ex03 | cut -c8-19)
ex03full=$(m inspect -f '{{.Id}}' test/ex03 | cut -c8-)
ex01=$(m inspect -f '{{.Id}}' test/ex01 | cut -c8-)
echo "== tag"; m tag test/alpine mine/alpine:1; echo "code $?"; m images --format '{{.Repository}}:{{.Tag}} {{.ID}}' | grep alpine
echo "== untag-one"; r m rmi mine/alpine:1
echo "== nosuch"; r m rmi nosuch
echo "== tag-bad"; r m tag test/alpine UPPER
echo "== tag-nosuch"; r m tag nosuch x
c=$(m create --name stopped test/ex03 true | cut -c1-12)
echo "== by-name"; r m rmi test/ex03 | sed "s/$c/CTR/; s/$ex03/IMG/"
echo "== by-id"; r m rmi $ex03 | sed "s/$c/CTR/; s/$ex03/IMG/"
rn=$(m run -d --name running test/ex03 sleep 300 | cut -c1-12)
m rm stopped >/dev/null
echo "== running-id-f"; r m rmi -f $ex03 | sed "s/$rn/CTR/; s/$ex03/IMG/"
echo "== running-name-f"; r m rmi -f test/ex03
echo "== dangling"; m images --filter dangling=true --format '{{.Repository}} {{.Tag}} {{.ID}}' | sed "s/$ex03/IMG/"
echo "== still-runs"; m exec running ls -d /ex03
m rm -f running >/dev/null
echo "== delete"; m rmi $ex03 | sed "s/$ex03full/IMG/; s/sha256:[0-9a-f]\{64\}/sha256:CHAIN/"
echo "== layers-left"; ls "$T/store/layers" | wc -l
m create --name s1 test/ex01 cat /flag >/dev/null
echo "== stopped-f"; m rmi -f test/ex01 | sed "s/$ex01/IMG/"
echo "== start-after"; m start -a s1
echo "== gone"; m images --format '{{.Repository}}' | grep -c ex01
echo "== multi"; m rmi nosuch test/entry 2>&1 | grep -c 'No such image: nosuch:latest'; m images -q | wc -l
"#
    ));
    let tag = section(&out, "tag");
    assert!(tag.starts_with("code 0\n"), "{tag}");
    let ids: Vec<&str> = tag.lines().skip(1).map(|l| l.split(' ').nth(1).unwrap()).collect();
    assert_eq!(ids.len(), 2, "{tag}");
    assert_eq!(ids[0], ids[1], "a tag is another name of the same image");
    assert_eq!(section(&out, "untag-one"), "Untagged: mine/alpine:1\ncode 0\n");
    assert_eq!(section(&out, "nosuch"), "mini: Error response from daemon: No such image: nosuch:latest\ncode 1\n");
    assert!(section(&out, "tag-bad").contains("must be lowercase"), "{out}");
    assert!(section(&out, "tag-bad").ends_with("code 1\n"), "{out}");
    assert_eq!(section(&out, "tag-nosuch"), "mini: Error response from daemon: No such image: nosuch:latest\ncode 1\n");
    assert_eq!(
        section(&out, "by-name"),
        "mini: Error response from daemon: conflict: unable to remove repository reference \"test/ex03\" (must force) - container CTR is using its referenced image IMG\ncode 1\n"
    );
    assert_eq!(
        section(&out, "by-id"),
        "mini: Error response from daemon: conflict: unable to delete IMG (must be forced) - image is being used by stopped container CTR\ncode 1\n"
    );
    assert_eq!(
        section(&out, "running-id-f"),
        "mini: Error response from daemon: conflict: unable to delete IMG (cannot be forced) - image is being used by running container CTR\ncode 1\n"
    );
    assert_eq!(section(&out, "running-name-f"), "Untagged: test/ex03:latest\ncode 0\n");
    assert_eq!(section(&out, "dangling"), "<none> <none> IMG\n", "untagged, kept for the running container");
    assert_eq!(section(&out, "still-runs"), "/ex03\n");
    assert_eq!(
        section(&out, "delete"),
        "Deleted: sha256:IMG\nDeleted: sha256:CHAIN\n",
        "the image, then its own layer"
    );
    let left: usize = section(&out, "layers-left").trim().parse().unwrap();
    assert_eq!(left, 1, "alpine's layer stays (other images use it), ex03's went");
    assert_eq!(
        section(&out, "stopped-f"),
        "Untagged: test/ex01:latest\nDeleted: sha256:IMG\n",
        "no layer goes: the container keeps them"
    );
    assert_eq!(section(&out, "start-after"), "Well done !!! you've finished exercice\n");
    assert_eq!(section(&out, "gone"), "0\n");
    assert_eq!(section(&out, "multi"), "1\n1\n", "the known one is removed, the unknown one reported");
}

#[test]
fn prune_and_system_df_as_docker() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(r#"
m rmi test/web >/dev/null
echo "== nothing"; m image prune -f
echo "== declined"; echo n | m image prune; echo; m images -q | wc -l
ex03=$(m inspect -f '{{.Id}}' test/ex03 | cut -c8-71)
m run -d --name r1 test/ex03 sleep 300 >/dev/null || exit 1; m rmi -f test/ex03 >/dev/null; m rm -f r1 >/dev/null
echo "== dangling"; m image prune -f | sed "s/$ex03/IMG/" | sed 's/sha256:[0-9a-f]\{64\}$/sha256:CHAIN/'
m run --name w1 test/alpine sh -c 'head -c 1000 /dev/zero > /f'
m create --name c2 test/entry >/dev/null
echo "== df"; m system df
echo "== df-v"; m system df -v | grep -c 'space usage:'
echo "== all"; m image prune -a -f
echo "== left"; m images --format '{{.Repository}}'
echo "== sysprune"; m system prune -f --volumes | sed 's/^[0-9a-f]\{64\}$/ID/'
echo "== sysprune-a"; m system prune -a -f | grep -c '^untagged: test/'
echo "== empty"; m images -q | wc -l; m ps -aq | wc -l; ls "$T/store/layers" | wc -l; ls "$T/store/oci/blobs/sha256" | wc -l
"#);
    assert_eq!(section(&out, "nothing"), "Total reclaimed space: 0B\n");
    assert_eq!(
        section(&out, "declined"),
        "WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N] \n4\n"
    );
    let d = section(&out, "dangling");
    assert!(
        d.starts_with("Deleted Images:\ndeleted: sha256:IMG\ndeleted: sha256:CHAIN\n\nTotal reclaimed space: "),
        "{d}"
    );
    let df = section(&out, "df");
    let lines: Vec<&str> = df.lines().collect();
    assert_eq!(lines[0], "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE");
    assert!(lines[1].starts_with("Images          3         2         "), "alpine (w) and entry (c2) are used: {df}");
    assert_eq!(lines[2], "Containers      2         0         1kB       1kB (100%)");
    assert_eq!(lines[3], "Local Volumes   0         0         0B        0B");
    assert_eq!(lines[4], "Build Cache     0         0         0B        0B");
    assert_eq!(section(&out, "df-v"), "3\n");
    let all = section(&out, "all");
    assert!(all.starts_with("Deleted Images:\nuntagged: test/ex01:latest\ndeleted: sha256:"), "{all}");
    assert!(all.ends_with("\n\nTotal reclaimed space: 39B\n"), "ex01's own layer, the flag's 39 bytes: {all}");
    assert_eq!(all.lines().filter(|l| l.starts_with("deleted: ")).count(), 2, "the image and its layer: {all}");
    assert_eq!(section(&out, "left"), "test/alpine\ntest/entry\n");
    assert_eq!(section(&out, "sysprune"), "Deleted Containers:\nID\nID\n\nTotal reclaimed space: 1kB\n");
    assert_eq!(section(&out, "sysprune-a"), "2\n");
    assert_eq!(section(&out, "empty"), "0\n0\n0\n0\n", "nothing left behind");
}

#[test]
fn save_load_round_trip_and_refusals() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(&format!(
        "{R}{}",
        r#"
id=$(m inspect -f '{{.Id}}' test/ex01)
m tag test/ex01 test/ex01:v2
echo "== save"; m save -o ex01.tar test/ex01; echo "code $?"; tar -tf ex01.tar | sed 's/[0-9a-f]\{64\}/HEX/' | sort
echo "== manifest"; tar -xOf ex01.tar manifest.json | jq -c '.[] | [.RepoTags, (.Layers | length)]'
echo "== load"; m --root "$T/other" load -i ex01.tar; echo "code $?"
echo "== same-id"; [ "$(m --root "$T/other" inspect -f '{{.Id}}' test/ex01:v2)" = "$id" ] && echo same
echo "== run"; m --root "$T/other" run --rm test/ex01 cat /flag
echo "== stdout"; m save test/ex01:latest > one.tar; tar -xOf one.tar manifest.json | jq -c '.[].RepoTags'
echo "== stdin"; m --root "$T/third" load < one.tar
echo "== by-id"; m save "$id" | m --root "$T/fourth" load
echo "== two"; m save test/alpine test/entry | m --root "$T/fifth" load | sort
echo "== tty"; script -qec 'mini -q save test/alpine' /dev/null | tr -d '\r'; echo
echo "== tty-load"; script -qec 'mini -q load' /dev/null | tr -d '\r'; echo
echo "== nosuch"; r m save -o x.tar nosuch; ls x.tar* 2>/dev/null | wc -l
m save test/alpine | m --root "$T/other" load >/dev/null; m --root "$T/other" tag test/alpine test/ex01:latest; m --root "$T/other" rmi test/alpine >/dev/null
echo "== renamed"; m --root "$T/other" load -i ex01.tar | sed "s/sha256:[0-9a-f]*/ID/"; m --root "$T/other" images --filter dangling=true -q | wc -l
"#
    ));
    assert_eq!(
        section(&out, "save"),
        "code 0\nHEX.json\nHEX/VERSION\nHEX/VERSION\nHEX/layer.tar\nHEX/layer.tar\nmanifest.json\nrepositories\n"
    );
    assert_eq!(
        section(&out, "manifest"),
        "[[\"test/ex01:latest\",\"test/ex01:v2\"],2]\n",
        "a name without a tag saves every tag of it"
    );
    assert_eq!(section(&out, "load"), "Loaded image: test/ex01:latest\nLoaded image: test/ex01:v2\ncode 0\n");
    assert_eq!(section(&out, "same-id"), "same\n");
    assert_eq!(section(&out, "run"), "Well done !!! you've finished exercice\n");
    assert_eq!(section(&out, "stdout"), "[\"test/ex01:latest\"]\n");
    assert_eq!(section(&out, "stdin"), "Loaded image: test/ex01:latest\n");
    let by_id = section(&out, "by-id");
    assert!(
        by_id.starts_with("Loaded image ID: sha256:") && by_id.len() == "Loaded image ID: ".len() + 71 + 1,
        "{by_id}"
    );
    assert_eq!(section(&out, "two"), "Loaded image: test/alpine:latest\nLoaded image: test/entry:latest\n");
    assert_eq!(section(&out, "tty"), "mini: cowardly refusing to save to a terminal. Use the -o flag or redirect\n\n");
    assert_eq!(section(&out, "tty-load"), "mini: requested load from stdin, but stdin is empty\n\n");
    assert_eq!(section(&out, "nosuch"), "mini: Error response from daemon: No such image: nosuch\ncode 1\n0\n");
    assert_eq!(
        section(&out, "renamed"),
        "The image test/ex01:latest already exists, renaming the old one with ID ID to empty string\nLoaded image: test/ex01:latest\nLoaded image: test/ex01:v2\n1\n"
    );
}

/// Hostile archives: each is refused with a message that names what, the store is
/// as it was (nothing half-made), and nothing is written outside it.
#[test]
fn hostile_loads_are_refused_whole() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(&format!(
        "{R}{}",
        r#"
# mkarchive OUT LAYER: a docker-save archive of one image whose one layer is LAYER.
mkarchive() {
  d=$(mktemp -d); cp "$2" "$d/layer.tar"
  diff=$(gzip -dc -f < "$2" | sha256sum | cut -d' ' -f1)
  printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$diff" > "$d/cfg.json"
  printf '[{"Config":"cfg.json","RepoTags":["evil:1"],"Layers":["layer.tar"]}]' > "$d/manifest.json"
  tar -C "$d" -cf "$1" cfg.json layer.tar manifest.json
}
state() { find "$T/store" -path "$T/store/lock" -prune -o -print | sort | md5sum; }
before=$(state)
try() { echo "== $1"; r m load -i "$1.tar" | sed "s|$T|T|g"; [ "$(state)" = "$before" ] && echo "store unchanged"; }
mkdir -p src/a && echo pwned > src/escape
tar -C src/a -cf dotdot.layer -P ../escape; mkarchive dotdot.tar dotdot.layer; try dotdot
mkdir -p s x/evil && ln -s / s/evil && echo pwned > x/evil/pwned
tar -C s -cf through.layer evil && tar -C x -rf through.layer evil/pwned; mkarchive through.tar through.layer; try through
mkdir -p u && ln -s ../../../../etc u/up && tar -C u -cf climb.layer up; mkarchive climb.tar climb.layer; try climb
mkdir -p dv && mknod dv/sda b 8 0 && tar -C dv -cf dev.layer sda; mkarchive dev.tar dev.layer; try dev
mkdir -p b && truncate -s 300M b/zeros && tar -C b -cf - zeros | gzip -1 > bomb.layer && rm b/zeros
mkdir -p small && mount -t tmpfs -o size=64m tmpfs small && m --root "$T/small/store" images >/dev/null
mkarchive bomb.tar bomb.layer; echo "== bomb"; r m --root "$T/small/store" load -i bomb.tar | sed "s|$T|T|g; s/[0-9.]*MB free/N free/"; find "$T/small/store/tmp" "$T/small/store/oci/blobs/sha256" -type f | wc -l
d=$(mktemp -d); ln -s /etc/passwd "$d/layer.tar"; printf '{"rootfs":{"type":"layers","diff_ids":["sha256:00"]}}' > "$d/cfg.json"
printf '[{"Config":"cfg.json","RepoTags":["evil:1"],"Layers":["layer.tar"]}]' > "$d/manifest.json"; tar -C "$d" -cf outside.tar cfg.json layer.tar manifest.json; try outside
printf '[{"Config":"cfg.json","RepoTags":["evil:1"],"Layers":["../x/layer.tar"]}]' > "$d/manifest.json"; tar -C "$d" -cf updir.tar cfg.json manifest.json; try updir
echo "== outside-untouched"; ls / | grep -c '^pwned$'; ls src
"#
    ));
    for (name, want) in [
        ("dotdot", "entry \"../escape\" has a `..` component that would climb out of the root"),
        ("through", "entry \"evil/pwned\" would be written through the symlink \"evil\" the layer made"),
        ("climb", "entry \"up\" is a symlink to \"../../../../etc\", which climbs above the root"),
        ("dev", "entry \"sda\" is a block device (8:0): device nodes are refused in a loaded image"),
        ("outside", "layer.tar in outside.tar is a link pointing outside the archive, not a file"),
        ("updir", "manifest.json names a path with .."),
    ] {
        let s = section(&out, name);
        assert!(s.contains(want), "{name}: {s}");
        assert!(s.ends_with("code 1\nstore unchanged\n"), "{name}: {s}");
    }
    let bomb = section(&out, "bomb");
    assert!(bomb.contains("refusing layer layer.tar: it inflates beyond the N free in the store"), "{bomb}");
    assert!(bomb.ends_with("code 1\n0\n"), "no temp file, no blob left: {bomb}");
    assert_eq!(section(&out, "outside-untouched"), "0\na\nescape\n");
}

/// Our save → podman load → podman run; podman's save (docker-archive, with its layer
/// symlinks) → our load → mini run.
#[test]
fn podman_runs_our_save_and_we_run_theirs() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(&(PODMAN.to_string()
        + r#"
m save -o ex01.tar test/ex01
echo "== podman-load"; p load -q -i ex01.tar
echo "== podman-run"; p run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 test/ex01 cat /flag
echo "== podman-id"; [ "$(p image inspect -f '{{.Id}}' test/ex01)" = "$(m inspect -f '{{.Id}}' test/ex01 | cut -c8-)" ] && echo same
p tag test/ex01 localhost/theirs:1
p save --format docker-archive -o theirs.tar localhost/theirs:1 >/dev/null 2>&1
echo "== links"; tar -tvf theirs.tar | grep -c '^l'
echo "== our-load"; m --root "$T/other" load -i theirs.tar
echo "== our-run"; m --root "$T/other" run --rm localhost/theirs:1 cat /flag
"#));
    // podman names a docker archive's short names under localhost/.
    assert_eq!(section(&out, "podman-load"), "Loaded image: localhost/test/ex01:latest\n");
    assert_eq!(section(&out, "podman-run"), "Well done !!! you've finished exercice\n");
    assert_eq!(section(&out, "podman-id"), "same\n");
    let links: usize = section(&out, "links").trim().parse().unwrap();
    assert!(links > 0, "podman's archive links its layer files: {out}");
    assert_eq!(section(&out, "our-load"), "Loaded image: localhost/theirs:1\n");
    assert_eq!(section(&out, "our-run"), "Well done !!! you've finished exercice\n");
}

/// Our save → `docker load` (Debian's dockerd, started here in the sandbox with a
/// store of its own) → `docker run`; docker shows the same IMAGE ID, SIZE and history
/// as mini; docker's save → our load → mini run.
#[test]
fn docker_runs_our_save_and_we_run_theirs() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(&format!(
        "{}{}{}",
        import_hist(),
        crate::mini::DOCKERD,
        r#"
m save -o ours.tar test/hist test/ex01
m save -o ex01only.tar test/ex01
echo "== docker-load"; docker load -q -i ours.tar
echo "== docker-run"; docker run --rm --network none test/ex01 cat /flag
echo "== images"; docker images --format '{{.ID}} {{.Size}}' test/hist; m images --format '{{.ID}} {{.Size}}' test/hist
echo "== history"; docker history test/hist > dh; m history test/hist > mh; diff dh mh && echo same
echo "== history-raw"; docker history -H=false --no-trunc test/hist > dh; m history -H=false --no-trunc test/hist > mh; diff dh mh && echo same
echo "== rootfs"; [ "$(docker inspect -f '{{json .RootFS.Layers}}' test/hist)" = "$(m inspect -f '{{json .RootFS.Layers}}' test/hist)" ] && echo same
echo "== history-none"; docker history test/ex01 > dh; m history test/ex01 > mh; diff dh mh && echo same
echo "== images-table"; docker images test/hist > di; m images test/hist > mi; diff di mi && echo same
echo "== inspect"; f='{{.Id}} {{.Size}} {{.VirtualSize}} {{json .RepoTags}} {{json .RepoDigests}} {{.Created}} {{.Os}} {{.Architecture}} {{.Parent}} {{json .RootFS}} {{json .Config.Cmd}}'
docker image inspect -f "$f" test/hist > di; m image inspect -f "$f" test/hist > mi; diff di mi && echo same
echo "== keys"; docker image inspect test/hist | jq -r '.[0] | keys[]' > dk; m image inspect test/hist | jq -r '.[0] | keys[]' > mk; comm -23 dk mk; echo end
echo "== rmi-refusals"
rmis() { # $1: docker or m; the same container and refusals, IDs replaced
  c=$($1 create --name "rc-$1" test/ex01 true | cut -c1-12); i=$($1 image inspect -f '{{.Id}}' test/ex01 | cut -c8-19)
  $1 rmi test/ex01 2>&1; $1 rmi "$i" 2>&1; $1 rm "rc-$1" >/dev/null
} 
rmis docker | sed "s/[0-9a-f]\{12\}/ID/g" > dr; rmis m | sed "s/[0-9a-f]\{12\}/ID/g; s/^mini: //" > mr; diff dr mr && echo same
echo "== prune-nothing"; [ "$(docker image prune -f)" = "$(m image prune -f)" ] && echo same
docker tag test/ex01 theirs/ex01:2
docker save -o theirs.tar theirs/ex01:2
echo "== our-load"; m --root "$T/other" load -i theirs.tar
echo "== our-run"; m --root "$T/other" run --rm theirs/ex01:2 cat /flag
echo "== listing"; for a in "--digests" "-q" "--no-trunc" "--format {{.Repository}}:{{.Tag}}"; do docker images $a test/hist; m images $a test/hist; done > both; sort both | uniq -u | wc -l
echo "== history-q"; [ "$(docker history -q test/hist)" = "$(m history -q test/hist)" ] && echo same
docker tag test/hist test/hist:v2; m tag test/hist test/hist:v2
echo "== save-tags"; [ "$(docker save test/hist | tar -xOf - manifest.json | jq -c '.[].RepoTags')" = "$(m save test/hist | tar -xOf - manifest.json | jq -c '.[].RepoTags')" ] && echo same
echo "== rmi-f"
rmif() { # $1: docker or m
  $1 create --name "rf-$1" test/hist true >/dev/null
  $1 rmi test/hist:v2; $1 rmi -f test/hist 2>&1; $1 rm "rf-$1" >/dev/null; $1 images -q test/hist | wc -l
}
rmif docker | sed "s/[0-9a-f]\{64\}/ID/g" > dr; rmif m | sed "s/[0-9a-f]\{64\}/ID/g" > mr; diff dr mr && echo same; cat mr
echo "== df"
docker system prune -a -f >/dev/null; docker load -q -i ex01only.tar >/dev/null; m --root "$T/dfroot" load -q -i ex01only.tar >/dev/null
docker run --name df1 --network none test/ex01 sh -c 'head -c 1000 /dev/zero > /f'
m --root "$T/dfroot" run --name df1 test/ex01 sh -c 'head -c 1000 /dev/zero > /f'
docker system df > dd; m --root "$T/dfroot" system df > md; diff dd md && echo same
docker system df -v | sed -n '/^Images/,/^$/p' | sed 's/[0-9a-f]\{12\}/ID/' > dd; m --root "$T/dfroot" system df -v | sed -n '/^Images/,/^$/p' | sed 's/[0-9a-f]\{12\}/ID/' > md; diff dd md && echo same
echo "== system-prune"
docker system prune -f | sed "s/[0-9a-f]\{64\}/ID/g" > dd; m --root "$T/dfroot" system prune -f | sed "s/[0-9a-f]\{64\}/ID/g" > md; diff dd md && echo same; cat md
docker system prune -a -f | sed "s/[0-9a-f]\{64\}/ID/g" > dd; m --root "$T/dfroot" system prune -a -f | sed "s/[0-9a-f]\{64\}/ID/g" > md; diff dd md && echo same; cat md
kill "$(cat "$T/docker.pid")"; wait
"#
    ));
    assert_eq!(section(&out, "docker-load"), "Loaded image: test/hist:latest\nLoaded image: test/ex01:latest\n");
    assert_eq!(section(&out, "docker-run"), "Well done !!! you've finished exercice\n");
    let images: Vec<&str> = section(&out, "images").lines().collect();
    assert_eq!(images.len(), 2, "{out}");
    assert_eq!(images[0], images[1], "same IMAGE ID and SIZE as docker's");
    assert_eq!(section(&out, "history"), "same\n");
    assert_eq!(section(&out, "history-raw"), "same\n");
    assert_eq!(section(&out, "rootfs"), "same\n");
    assert_eq!(section(&out, "history-none"), "same\n", "an image whose config has no history");
    assert_eq!(section(&out, "images-table"), "same\n");
    assert_eq!(section(&out, "inspect"), "same\n");
    assert_eq!(section(&out, "keys"), "end\n", "every field docker's image inspect has, ours has");
    assert_eq!(section(&out, "rmi-refusals"), "same\n", "docker's refusals, word for word");
    assert_eq!(section(&out, "prune-nothing"), "same\n");
    assert_eq!(section(&out, "our-load"), "Loaded image: theirs/ex01:2\n");
    assert_eq!(section(&out, "our-run"), "Well done !!! you've finished exercice\n");
    assert_eq!(section(&out, "listing"), "0\n", "images --digests, -q, --no-trunc, --format print docker's lines");
    assert_eq!(section(&out, "history-q"), "same\n");
    assert_eq!(section(&out, "save-tags"), "same\n", "a name without a tag saves all its tags, as docker's");
    assert_eq!(section(&out, "df"), "same\nsame\n", "system df and its -v images, as docker's");
    let sp = section(&out, "system-prune");
    assert!(sp.starts_with("same\nDeleted Containers:\nID\n\nTotal reclaimed space: 1kB\nsame\nDeleted Images:\nuntagged: test/ex01:latest\n"), "{sp}");
    assert_eq!(sp.matches("same\n").count(), 2, "both prunes print docker's lines: {sp}");
    assert_eq!(
        section(&out, "rmi-f"),
        "same\nUntagged: test/hist:v2\nUntagged: test/hist:latest\nDeleted: sha256:ID\n0\n",
        "-f past a stopped container: untagged and deleted, its layers kept for it, as docker"
    );
}

/// A pulled image has the registry's digest: `images --digests` and inspect's
/// RepoDigests show it, and `rmi` untags it with the last tag of its repository, then
/// deletes the image and its layers top first (Debian's docker-registry on 127.0.0.1
/// of the sandbox's own network namespace).
#[test]
fn a_pulled_image_is_untagged_with_its_digest() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(r#"
command -v docker-registry >/dev/null || { echo "docker-registry is missing: apt-get install -y docker-registry"; exit 1; }
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s/reg\nhttp:\n  addr: 127.0.0.1:5000\n' "$T" > reg.yml
docker-registry serve reg.yml >"$T/reg.log" 2>&1 &
i=0; until curl -sf http://127.0.0.1:5000/v2/ >/dev/null; do
  i=$((i+1)); [ $i -gt 200 ] && { echo "docker-registry did not start:"; cat "$T/reg.log"; exit 1; }; sleep 0.1
done
img-pull -q push test/ex01 127.0.0.1:5000/lab/ex01:1 >/dev/null || exit 1
P="$T/pulled"
m --root "$P" pull 127.0.0.1:5000/lab/ex01:1 > pull.out || { cat pull.out; exit 1; }
digest=$(sed -n 's/^Digest: //p' pull.out)
id=$(m --root "$P" inspect -f '{{.Id}}' 127.0.0.1:5000/lab/ex01:1)
layers=$(m --root "$P" inspect -f '{{json .RootFS.Layers}}' 127.0.0.1:5000/lab/ex01:1)
echo "== digests"; m --root "$P" images --digests --format '{{.Repository}} {{.Tag}} {{.Digest}}' | sed "s/$digest/DIGEST/"
echo "== repo-digests"; m --root "$P" image inspect -f '{{json .RepoDigests}}' 127.0.0.1:5000/lab/ex01:1 | sed "s/$digest/DIGEST/"
echo "== size"; [ "$(m --root "$P" images --format '{{.Size}}')" = "$(m images --format '{{.Size}}' test/ex01)" ] && echo same
echo "== rmi"; m --root "$P" rmi 127.0.0.1:5000/lab/ex01:1 | sed "s/$digest/DIGEST/; s/${id#sha256:}/ID/"
echo "== layers"; echo "$layers"
echo "== empty"; ls "$P/oci/blobs/sha256" | wc -l
"#);
    assert_eq!(section(&out, "digests"), "127.0.0.1:5000/lab/ex01 1 DIGEST\n");
    assert_eq!(section(&out, "repo-digests"), "[\"127.0.0.1:5000/lab/ex01@DIGEST\"]\n");
    assert_eq!(section(&out, "size"), "same\n", "pulled (sizes recorded) or imported (counted): the same SIZE");
    let layers: Vec<String> = serde_json::from_str(section(&out, "layers")).unwrap();
    let chains = contlab::image::render::chain_ids(&layers);
    assert_eq!(
        section(&out, "rmi"),
        format!(
            "Untagged: 127.0.0.1:5000/lab/ex01:1\nUntagged: 127.0.0.1:5000/lab/ex01@DIGEST\nDeleted: sha256:ID\nDeleted: {}\nDeleted: {}\n",
            chains[1], chains[0]
        )
    );
    assert_eq!(section(&out, "empty"), "0\n");
}
