//! mini build: the course's Dockerfiles (BUILD-*, DOCKERFILE-EX1..3) built with mini,
//! and the same Dockerfiles and contexts built by Debian's docker.io (the classic
//! builder) in the same sandbox, compared: files, owners and modes, configuration,
//! layers, history, build output; the cache; docker's messages for bad input.
//!
//! Root tier, in the sandbox of `tests/mini.rs`. The base images are the sandbox's
//! (test/alpine, test/web, made from Debian's static busybox; test/alpine flattened
//! into `alpine:latest` and `alpine:3.14`, as the course's Dockerfiles name it), and
//! loaded into docker with `mini save | docker load`: both builders start from the
//! same image, offline.

use crate::harness::{require, Tier};
use crate::mini::{ok, section, DOCKERD, PODMAN};

/// The course's contexts, made in `$T/NAME`, and the base images under the course's
/// names. `b NAME ARGS...` builds `$T/NAME` with mini (cd'd there, output kept).
const CONTEXTS: &str = r#"
# alpine: test/alpine flattened by export | import, so that it has a history (docker
# lines a history up with the layers from the bottom: an image without one would
# shift docker's sizes, not ours).
m create --name flat test/alpine >/dev/null && m export flat | m import -c 'CMD ["/bin/sh"]' \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - alpine:latest >/dev/null || exit 1
m rm flat >/dev/null && m tag alpine:latest alpine:3.14 || exit 1
mkdir -p nginx && cd nginx
printf '<h1>Docker for life!</h1>\n' > index.html
printf 'FROM test/web\nCOPY index.html /usr/share/nginx/html/\n' > Dockerfile.step1
cd "$T"
# DOCKERFILE-EX1: files owned by 1000 with mode 0664, a tar of them, file04 ignored.
mkdir -p ex1/tarred && cd ex1
for i in 1 2 3 4 5; do echo "content of file0$i" > "file0$i"; done
head -c 16800 /dev/zero | tr '\0' 'x' > file03
echo inner > tarred/one; echo two > tarred/two
chown 1000:1000 file0* tarred/*; chmod 664 file0* tarred/*
tar -C tarred --owner=1000 --group=1000 -czf files.tar.gz one two; rm -r tarred
echo file04 > .dockerignore
cat > Dockerfile <<'X'
FROM alpine:latest
LABEL maintainer="moi@example.com" version="1.0"
ADD files.tar.gz /dir_tar
RUN mkdir /dir_add
COPY file0* /dir_add/
CMD ls -al /dir_add /dir_tar
X
cd "$T"
# BUILD-03: the prometheus-style Dockerfile, every kind of instruction.
mkdir -p prom/console_libraries && cd prom
echo 'global: {}' > prometheus.yml; echo '#!/bin/sh' > prometheus; chmod 755 prometheus
echo lib > console_libraries/lib.js
cat > Dockerfile <<'X'
ARG BASE=alpine
FROM ${BASE}:3.14
LABEL maintainer="The Prometheus Authors <prometheus-developers@googlegroups.com>"
ARG PORT=9090
ENV PROM_PORT=$PORT CONF="/etc/prometheus/prometheus.yml"
COPY prometheus /bin/prometheus
COPY prometheus.yml /etc/prometheus/prometheus.yml
COPY console_libraries/lib.js /usr/share/prometheus/console_libraries/
RUN mkdir -p /prometheus && chown -R nobody:nogroup etc/prometheus /prometheus && echo "port $PORT"
USER       nobody
EXPOSE     $PORT
VOLUME     [ "/prometheus" ]
WORKDIR    /prometheus
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=30s CMD wget -q localhost:9090 || exit 1
ONBUILD RUN echo built on prometheus
ENTRYPOINT [ "/bin/prometheus" ]
CMD        [ "--config.file=/etc/prometheus/prometheus.yml", \
             "--storage.tsdb.path=/prometheus" ]
X
cd "$T"
# BUILD-04: a multi-stage build; the builder stage carries a 2 MB "toolchain".
mkdir -p multi && cd multi
cat > hello.sh <<'X'
#!/bin/sh
echo 'Hello world!'
X
cat > Dockerfile <<'X'
FROM alpine:latest AS builder
RUN head -c 2000000 /dev/zero > /toolchain
COPY hello.sh /src/
RUN mkdir -p /go/bin && cp /src/hello.sh /go/bin/hello && chmod 755 /go/bin/hello
FROM alpine:latest
COPY --from=builder /go/bin/hello /usr/local/bin/hello
COPY --from=0 /src/hello.sh /src/hello.sh
COPY --from=test/ex01 /flag /flag
CMD ["hello"]
X
cd "$T"
b() { n=$1; shift; (cd "$T/$n" && m build "$@"); }
ids() { sed -e 's/[0-9a-f]\{64\}/ID/g' -e 's/[0-9a-f]\{12\}/ID/g'; }
"#;

/// `script` after the course's contexts, in a sandbox of the root tier (`None`: the
/// tier cannot run here, and the test says so).
fn course(script: &str) -> Option<String> {
    require(Tier::Root).then(|| ok(&format!("{CONTEXTS}{script}")))
}

/// BUILD-01: nginx-demo from test/web with a COPY of index.html, `-f`, the build's
/// lines as docker's classic builder prints them, the page in the image, and the
/// history: the COPY layer over the base, named by the IMAGE column.
#[test]
fn build_01_nginx_demo_copy_and_history() {
    let Some(out) = course(
        r#"
echo "== build"; b nginx -f Dockerfile.step1 -t nginx-demo . | ids
echo "== page"; m run --rm nginx-demo cat /usr/share/nginx/html/index.html
echo "== history"; m history nginx-demo | ids | sed 's/  */ /g'
echo "== again"; b nginx -f Dockerfile.step1 -t nginx-demo . | ids
echo "== images"; m images nginx-demo --format '{{.Repository}}:{{.Tag}}'; m images -q | wc -l; m images -aq | wc -l
"#,
    ) else {
        return;
    };
    assert_eq!(
        section(&out, "build"),
        "Step 1/2 : FROM test/web\n ---> ID\nStep 2/2 : COPY index.html /usr/share/nginx/html/\n ---> ID\nSuccessfully built ID\nSuccessfully tagged nginx-demo:latest\n"
    );
    assert_eq!(section(&out, "page"), "<h1>Docker for life!</h1>\n");
    let h = section(&out, "history");
    let rows: Vec<&str> = h.lines().collect();
    assert_eq!(rows.len(), 4, "the COPY and the base's three: {h}");
    assert!(rows[1].starts_with("ID ") && rows[1].contains("/bin/sh -c #(nop) COPY file:"), "{h}");
    assert!(rows[1].ends_with(" 26B "), "the page's 26 bytes: {h}");
    assert!(rows[2].starts_with("ID "), "the base image, named on its top row: {h}");
    assert!(rows[3].starts_with("<missing> "), "{h}");
    assert_eq!(
        section(&out, "again"),
        "Step 1/2 : FROM test/web\n ---> ID\nStep 2/2 : COPY index.html /usr/share/nginx/html/\n ---> Using cache\n ---> ID\nSuccessfully built ID\nSuccessfully tagged nginx-demo:latest\n"
    );
    // Five test images, the two names of test/alpine, nginx-demo: the COPY step's
    // image is nginx-demo itself, so no intermediate image is left.
    assert_eq!(section(&out, "images"), "nginx-demo:latest\n8\n8\n");
}

/// The course's Dockerfiles built by docker's classic builder and by mini from the
/// same contexts: the same files (paths, modes, owners, sizes, contents), the same
/// configuration, the same number of layers, the same history (docker's `file:` and
/// `multi:` checksums included), the same build output but for the containers docker
/// makes for configuration-only steps; and mini's images run in docker and podman.
#[test]
fn course_dockerfiles_build_as_dockers_classic_builder_builds_them() {
    let Some(out) = course(&format!(
        "{DOCKERD}{}{PODMAN}{}",
        r#"
m save alpine:latest alpine:3.14 test/ex01 | docker load -q >/dev/null || exit 1
# What is compared: every file of the image's layers, extracted in order (type, mode,
# owner, size, content; not times); the configuration; the layers; the history
# without times.
files() { rm -rf "$T/x" "$T/s"; mkdir -p "$T/x" "$T/s"; $1 save "$2" | tar -C "$T/s" -xf - || return 1
  for l in $(jq -r '.[0].Layers[]' "$T/s/manifest.json"); do tar -C "$T/x" -xf "$T/s/$l" || return 1; done
  (cd "$T/x" && find . -printf '%y %m %U:%G %s %p %l\n' | sort; find . -type f -exec md5sum {} + | sort -k2); }
conf() { $1 image inspect -f '{{json .Config}}' "$2" | jq -S '{Env, Cmd, Entrypoint, WorkingDir, User, ExposedPorts, Volumes, Labels, StopSignal, Healthcheck, OnBuild}'; }
layers() { $1 image inspect -f '{{len .RootFS.Layers}}' "$2"; }
hist() { $1 history --no-trunc --format '{{.CreatedBy}} {{.Size}}' "$2" | sed 's/dir:[0-9a-f]*/dir:H/'; }
lines() { grep -v -e '^Sending build context' -e 'Running in' -e '^Removing intermediate' | ids; }
for n in ex1 prom multi; do
  (cd "$T/$n" && docker build --network none -t "course/$n" . > "$T/$n.docker" 2>&1) || { echo "docker build $n failed:"; cat "$T/$n.docker"; exit 1; }
  b "$n" -t "course/$n" . > "$T/$n.mini" 2>&1 || { echo "mini build $n failed:"; cat "$T/$n.mini"; exit 1; }
  echo "== files $n"; files docker "course/$n" > d; files m "course/$n" > mm; diff d mm && echo same
  echo "== conf $n"; conf docker "course/$n" > d; conf m "course/$n" > mm; diff d mm && echo same
  echo "== layers $n"; [ "$(layers docker "course/$n")" = "$(layers m "course/$n")" ] && echo same
  echo "== hist $n"; hist docker "course/$n" > d; hist m "course/$n" > mm; diff d mm && echo same
  echo "== lines $n"; lines < "$T/$n.docker" > d; lines < "$T/$n.mini" > mm; diff d mm && echo same
done
echo "== ex1 run"; m run --rm course/ex1 | grep '^-' | awk '{print $1, $3, $4, $5, $NF}'
echo "== ex1 history"; m history course/ex1 --format '{{.CreatedBy}}|{{.Size}}' | head -5
echo "== multi run"; m run --rm course/multi; m image inspect -f '{{.Size}}' course/multi > s1
docker image inspect -f '{{.Size}}' course/multi > s2; echo "sizes $(cat s1) $(cat s2)"
echo "== in docker"; m save course/multi | docker load -q >/dev/null && docker tag course/multi mini/multi 2>/dev/null
m save -o "$T/ours.tar" course/prom && docker rmi -f course/prom >/dev/null && docker load -q -i "$T/ours.tar"
docker run --rm --network none --entrypoint sh course/prom -c 'id; cat /etc/prometheus/prometheus.yml; pwd'
kill "$(cat "$T/docker.pid")"; wait
"#,
        r#"
echo "== in podman"; m save course/multi | p load -q >/dev/null && p run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 course/multi
"#
    )) else {
        return;
    };
    assert_eq!(section(&out, "in podman"), "Hello world!\n", "podman runs mini's image");
    for n in ["ex1", "prom", "multi"] {
        assert_eq!(section(&out, &format!("files {n}")), "same\n", "{n}: the same files as docker's image");
        assert_eq!(section(&out, &format!("conf {n}")), "same\n", "{n}: the same configuration");
        assert_eq!(section(&out, &format!("layers {n}")), "same\n", "{n}: as many layers");
        assert_eq!(section(&out, &format!("hist {n}")), "same\n", "{n}: the same history");
        assert_eq!(section(&out, &format!("lines {n}")), "same\n", "{n}: the same build output");
    }
    // DOCKERFILE-EX1-b, c: file04 is ignored; COPY makes root's files, ADD's tar keeps
    // its owners.
    assert_eq!(
        section(&out, "ex1 run"),
        "-rw-rw-r-- root root 18 file01\n-rw-rw-r-- root root 18 file02\n-rw-rw-r-- root root 16800 file03\n-rw-rw-r-- root root 18 file05\n-rw-rw-r-- 1000 1000 6 one\n-rw-rw-r-- 1000 1000 4 two\n"
    );
    // DOCKERFILE-EX1-d: CMD 0B, COPY file0* 16.9kB, RUN mkdir 0B, ADD 10B, LABEL 0B.
    let h = section(&out, "ex1 history");
    let sizes: Vec<&str> = h.lines().map(|l| l.rsplit('|').next().unwrap()).collect();
    assert_eq!(sizes, ["0B", "16.9kB", "0B", "10B", "0B"], "{h}");
    assert!(h.lines().nth(1).unwrap().contains("COPY multi:"), "{h}");
    // BUILD-04: the final image runs the program and leaves the builder's toolchain.
    let m = section(&out, "multi run");
    assert!(m.starts_with("Hello world!\nsizes "), "{m}");
    let s: Vec<u64> = m.lines().nth(1).unwrap().split(' ').skip(1).map(|x| x.parse().unwrap()).collect();
    assert!(s[0] < 2_000_000 + 1_000_000 && s[0] == s[1], "without the 2 MB toolchain, as docker's: {s:?}");
    assert_eq!(
        section(&out, "in docker"),
        "Loaded image: course/prom:latest\nuid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\nglobal: {}\n/prometheus\n"
    );
}

/// The cache: a second build uses it for every step; `touch` keeps it (times are not
/// in the checksum); a changed file misses from its COPY on; `--no-cache` uses none;
/// `--target` stops at the stage; intermediate images are listed by `images -a` only
/// and go with `rmi` of the image built on them.
#[test]
fn the_cache_follows_the_copied_files_and_intermediate_images_go_with_rmi() {
    let Some(out) = course(
        r#"
echo "== first"; b prom -t p1 . | grep -c 'Using cache'
echo "== again"; b prom -t p1 . | grep -c 'Using cache'
touch "$T/prom/prometheus.yml"
echo "== touched"; b prom -t p1 . | grep -c 'Using cache'
echo changed >> "$T/prom/prometheus.yml"
echo "== changed"; b prom -t p1 . | awk '/^Step/ {s=$2} /Using cache/ {printf "%s ", s}'; echo
echo "== no-cache"; b prom --no-cache -t p1 . | grep -c 'Using cache'
echo "== target"; b multi --target builder -t stage1 . | grep '^Step' ; m run --rm stage1 ls /go/bin
echo "== images"; m images -q | sort -u | wc -l; m images -aq | wc -l
echo "== rmi"; m rmi stage1 | grep -c Deleted; m rmi p1 >/dev/null; m image prune -f >/dev/null; m images -aq | sort -u | wc -l
"#,
    ) else {
        return;
    };
    assert_eq!(section(&out, "first"), "0\n");
    assert_eq!(section(&out, "again"), "16\n", "every step after FROM");
    assert_eq!(section(&out, "touched"), "16\n", "a new mtime is no change");
    assert_eq!(
        section(&out, "changed"),
        "3/18 4/18 5/18 6/18 \n",
        "the steps before the COPY of the changed file, and none after"
    );
    assert_eq!(section(&out, "no-cache"), "0\n");
    assert_eq!(
        section(&out, "target"),
        "Step 1/4 : FROM alpine:latest AS builder\nStep 2/4 : RUN head -c 2000000 /dev/zero > /toolchain\nStep 3/4 : COPY hello.sh /src/\nStep 4/4 : RUN mkdir -p /go/bin && cp /src/hello.sh /go/bin/hello && chmod 755 /go/bin/hello\nhello\n"
    );
    let images: Vec<usize> = section(&out, "images").lines().map(|l| l.trim().parse().unwrap()).collect();
    assert!(images[1] > images[0] + 10, "the steps' images are listed by -a only: {images:?}");
    let rmi: Vec<usize> = section(&out, "rmi").lines().map(|l| l.trim().parse().unwrap()).collect();
    assert!(rmi[0] >= 4, "stage1 and its three intermediate images, with their layers: {rmi:?}");
    assert_eq!(rmi[1], 6, "back to the sandbox's five images and alpine: {rmi:?}");
}

/// DOCKERFILE-EX2 (an image converter run as the caller, on a bind mount, removed
/// after), DOCKERFILE-EX3-P3 and BUILD-08 (FROM scratch and ADD of an exported root
/// filesystem), DOCKERFILE-EX1-e (USER root changes nothing: the build runs as root).
/// The course's imagemagick is a package download: offline, the converter copies.
#[test]
fn course_ex2_converter_ex3_from_scratch_and_user_root() {
    let Some(out) = course(
        r#"
mkdir -p conv && cd conv
cat > entrypoint.sh <<'X'
#!/bin/sh
if [ $# -lt 2 ]; then
  echo 'Usage: docker run --rm -v $(pwd):/images IMAGE_NAME [pattern] [format]'
  echo 'Example: docker run --rm -v $(pwd):/images image-converter "a*.jpg" png'
  exit 0
fi
for f in $1; do cp "$f" "${f%.*}.$2"; done
X
printf 'FROM alpine:3.14\nCOPY entrypoint.sh /entrypoint.sh\nRUN chmod +x /entrypoint.sh\nWORKDIR /images\nENTRYPOINT ["/entrypoint.sh"]\n' > Dockerfile
m build -q -t image-converter . >/dev/null || exit 1
cd "$T"; mkdir imgs; touch imgs/a1.jpg imgs/a2.jpg imgs/b.jpg; chown -R 1000:1000 imgs
echo "== usage"; m run --rm image-converter
echo "== convert"; m run --rm -u 1000:1000 -v "$T/imgs:/images" image-converter "a*.jpg" png; ls -n imgs | awk 'NR>1 {print $3, $4, $NF}'
echo "== left"; m ps -aq | wc -l
mkdir -p scratch/images && cd scratch
echo cat > images/cat.jpg
m create --name my-alpine-container alpine:3.14 >/dev/null && m export my-alpine-container > my-alpine.tar || exit 1
printf 'FROM scratch\nADD my-alpine.tar /\nRUN echo built > /built\nCOPY images/ .\nENV PATH=/usr/local/bin:/usr/bin:/bin\nCMD ["cat", "/built", "/cat.jpg"]\n' > Dockerfile
echo "== scratch"; m build -t asciicat3 . | grep -e '^Step' -e '^ ---> $'
echo "== scratch run"; m run --rm asciicat3
echo "== scratch layers"; m image inspect -f '{{len .RootFS.Layers}}' asciicat3; m history --format '{{.CreatedBy}}' asciicat3 | tail -1 | cut -c1-27
cd "$T/ex1"; cp Dockerfile Dockerfile.root; sed -i 's/^CMD/USER root\nCMD/' Dockerfile.root
echo "== user root"; m build -q -f Dockerfile.root -t exercice1:0.2 . >/dev/null && m build -q -t exercice1 . >/dev/null
m run --rm exercice1:0.2 > a; m run --rm exercice1 > b; diff a b && echo same; m run --rm --entrypoint id exercice1
"#,
    ) else {
        return;
    };
    assert_eq!(
        section(&out, "usage"),
        "Usage: docker run --rm -v $(pwd):/images IMAGE_NAME [pattern] [format]\nExample: docker run --rm -v $(pwd):/images image-converter \"a*.jpg\" png\n"
    );
    assert_eq!(
        section(&out, "convert"),
        "1000 1000 a1.jpg\n1000 1000 a1.png\n1000 1000 a2.jpg\n1000 1000 a2.png\n1000 1000 b.jpg\n",
        "the converted files are the caller's (-u), on the host (-v)"
    );
    assert_eq!(section(&out, "left"), "0\n", "--rm: no container left");
    assert_eq!(
        section(&out, "scratch"),
        "Step 1/6 : FROM scratch\n ---> \nStep 2/6 : ADD my-alpine.tar /\nStep 3/6 : RUN echo built > /built\nStep 4/6 : COPY images/ .\nStep 5/6 : ENV PATH=/usr/local/bin:/usr/bin:/bin\nStep 6/6 : CMD [\"cat\", \"/built\", \"/cat.jpg\"]\n"
    );
    assert_eq!(section(&out, "scratch run"), "built\ncat\n");
    assert_eq!(section(&out, "scratch layers"), "3\n/bin/sh -c #(nop) ADD file:\n", "the tar is the bottom layer");
    assert_eq!(section(&out, "user root"), "same\nuid=0(root) gid=0(root) groups=0(root)\n");
}

/// The ways in: a Dockerfile on stdin (no context), a context tar on stdin (and `-f`
/// inside it), `-q` and `--iidfile`, `--label` (one LABEL step each), several `-t`,
/// an unused `--build-arg`, ONBUILD triggers run by the image built FROM it.
#[test]
fn stdin_quiet_labels_tags_build_args_and_onbuild() {
    let Some(out) = course(
        r#"
cd "$T/nginx"
printf 'FROM alpine\nRUN echo from stdin > /s\n' > Stdin.Dockerfile
echo "== stdin"; m build -t s1 - < Stdin.Dockerfile | grep -c '^Step'; m run --rm s1 cat /s
echo "== stdin copy"; printf 'FROM alpine\nCOPY index.html /\n' | m build - 2>&1 | tail -1 | sed 's/^mini: //'
echo "== tar"; tar -c . | m build -q -f Dockerfile.step1 -t s2 - | grep -c '^sha256:[0-9a-f]\{64\}$'; m run --rm s2 cat /usr/share/nginx/html/index.html
echo "== iid"; m build -q --iidfile "$T/iid" -f Dockerfile.step1 . > q; [ "$(cat q)" = "$(cat "$T/iid")" ] && echo same
echo "== labels"; m build --label b=2 --label a=1 --build-arg UNUSED=x -t l1:1 -t l2 -f Dockerfile.step1 . | grep -e '^Step' -e Warning -e tagged
m image inspect -f '{{json .Config.Labels}}' l2
printf 'FROM alpine\nONBUILD RUN echo triggered > /t\nONBUILD COPY index.html /i\n' > Base.Dockerfile
m build -q -f Base.Dockerfile -t onbase . >/dev/null
echo "== onbuild"; printf 'FROM onbase\nCMD ["cat", "/t", "/i"]\n' > Child.Dockerfile
m build -f Child.Dockerfile -t onchild . | grep -e '^#' -e '^Step'; m run --rm onchild; m image inspect -f '{{json .Config.OnBuild}}' onchild
"#,
    ) else {
        return;
    };
    assert_eq!(section(&out, "stdin"), "2\nfrom stdin\n");
    assert_eq!(
        section(&out, "stdin copy"),
        "COPY failed: file not found in build context or excluded by .dockerignore: stat index.html: file does not exist\n"
    );
    assert_eq!(section(&out, "tar"), "1\n<h1>Docker for life!</h1>\n");
    assert_eq!(section(&out, "iid"), "same\n");
    assert_eq!(
        section(&out, "labels"),
        "Step 1/4 : FROM test/web\nStep 2/4 : COPY index.html /usr/share/nginx/html/\nStep 3/4 : LABEL a=1\nStep 4/4 : LABEL b=2\n[Warning] One or more build-args [UNUSED] were not consumed\nSuccessfully tagged l1:1\nSuccessfully tagged l2:latest\n{\"a\":\"1\",\"b\":\"2\"}\n"
    );
    assert_eq!(
        section(&out, "onbuild"),
        "Step 1/2 : FROM onbase\n# Executing 2 build triggers\nStep 2/2 : CMD [\"cat\", \"/t\", \"/i\"]\ntriggered\n<h1>Docker for life!</h1>\nnull\n"
    );
}

/// Bad input: docker's messages and exit codes (a failing RUN exits with its code,
/// its output shown, its container kept stopped, nothing left mounted), and a build
/// killed with SIGKILL in the middle of a RUN leaves what `mini rm -f` removes.
#[test]
fn bad_input_gets_dockers_messages_and_a_killed_build_leaves_what_rm_f_removes() {
    let Some(out) = course(
        r#"
cd "$T/nginx"
t() { printf "$1" > Bad.Dockerfile; shift; m build -f Bad.Dockerfile "$@" . > o 2> e; c=$?; tail -1 e | sed 's/^mini: //'; echo "code $c"; }
echo "== unknown"; t 'FROM alpine\nBOGUS x\n'
echo "== empty"; t ''
echo "== no from"; t '# nothing\nRUN true\n'
echo "== outside"; t 'FROM alpine\nCOPY ../x /\n'
echo "== missing"; t 'FROM alpine\nCOPY missing.txt /\n'
echo "== several"; t 'FROM alpine\nCOPY index.html Dockerfile.step1 /dst\n'
echo "== target"; t 'FROM alpine AS a\n' --target nosuch
echo "== tag"; t 'FROM alpine\n' -t BadTag
echo "== mount"; t 'FROM alpine\nRUN --mount=type=cache,target=/x true\n'
echo "== context"; m build nosuchdir 2> e; c=$?; sed 's/^mini: //' e; echo "code $c"
echo "== json"; t 'FROM alpine\nCMD ["a",\n' -t badjson; m image inspect -f '{{json .Config.Cmd}}' badjson
echo "== run"; t 'FROM alpine\nRUN echo out; echo err >&2; exit 3\n'; grep -c '^out$' o; grep -c '^err$' e
m ps -a --format '{{.Status}}' | cut -c1-10; grep -c "$CONTLAB_ROOT" /proc/mounts
printf 'FROM alpine\nRUN sleep 60\n' > Slow.Dockerfile
m build -f Slow.Dockerfile . > slow 2>&1 & pid=$!
i=0; until grep -q 'Running in' slow; do i=$((i+1)); [ $i -gt 300 ] && { cat slow; exit 1; }; sleep 0.1; done
kill -9 $pid; wait $pid 2>/dev/null
echo "== killed"; ids=$(m ps -aq --no-trunc); echo "$ids" | wc -l; m rm -f $ids >/dev/null; m ps -aq | wc -l
grep -c "$CONTLAB_ROOT" /proc/mounts; for i in $ids; do ls -d /sys/fs/cgroup/*/contlab/mini/$i /sys/fs/cgroup/contlab/mini/$i 2>/dev/null; done | wc -l
"#,
    ) else {
        return;
    };
    let msg = |s: &str, m: &str, c: i32| format!("{m}\ncode {c}\n{}", if s.is_empty() { "" } else { s });
    assert_eq!(
        section(&out, "unknown"),
        msg("", "Error response from daemon: dockerfile parse error line 2: unknown instruction: BOGUS", 1)
    );
    assert_eq!(
        section(&out, "empty"),
        msg("", "Error response from daemon: the Dockerfile (Bad.Dockerfile) cannot be empty", 1)
    );
    assert_eq!(section(&out, "no from"), msg("", "Error response from daemon: no build stage in current context", 1));
    assert_eq!(section(&out, "outside"), msg("", "COPY failed: forbidden path outside the build context: ../x ()", 1));
    assert_eq!(
        section(&out, "missing"),
        msg("", "COPY failed: file not found in build context or excluded by .dockerignore: stat missing.txt: file does not exist", 1)
    );
    assert_eq!(
        section(&out, "several"),
        msg(
            "",
            "When using COPY with more than one source file, the destination must be a directory and end with a /",
            1
        )
    );
    assert_eq!(section(&out, "target"), msg("", "failed to reach build target nosuch in Dockerfile", 1));
    let tag = section(&out, "tag");
    assert!(
        tag.starts_with("invalid argument \"BadTag\" for \"-t, --tag\" flag: ") && tag.ends_with("code 125\n"),
        "{tag}"
    );
    assert!(section(&out, "mount").contains("the --mount option requires BuildKit"), "{out}");
    assert_eq!(section(&out, "context"), "unable to prepare context: path \"nosuchdir\" not found\ncode 1\n");
    assert_eq!(
        section(&out, "json"),
        "code 0\n[\"/bin/sh\",\"-c\",\"[\\\"a\\\",\"]\n",
        "not JSON: the shell form, as docker"
    );
    assert_eq!(
        section(&out, "run"),
        "The command '/bin/sh -c echo out; echo err >&2; exit 3' returned a non-zero code: 3\ncode 3\n1\n1\nExited (3)\n0\n",
        "the RUN's code, its output, its container stopped and kept (as docker's), nothing mounted"
    );
    assert_eq!(
        section(&out, "killed"),
        "2\n0\n0\n0\n",
        "the killed RUN's container and the failed one: rm -f removes all"
    );
}

/// BUILD-09 (TP1): ARG and ENV for the port, a user made by RUN (busybox has no
/// groupadd/useradd: the lines they would write), WORKDIR, COPY,
/// EXPOSE $PORT, USER, an ENTRYPOINT serving the directory (busybox's httpd for the
/// course's python http.server); `.dockerignore` with `!` exceptions; `ADD` of a URL
/// (mode 0600, as docker's) served on the sandbox's loopback.
#[test]
fn build_09_a_user_a_port_dockerignore_exceptions_and_add_of_a_url() {
    let Some(out) = course(
        r#"
mkdir -p tp1/notes && cd tp1
echo '<p>test</p>' > test.html; echo readme > README.md; echo secret > SECRET.md; echo n > notes/a.md; echo keep > notes/keep.txt
printf '*.md\n!README.md\nnotes/*.md\n' > .dockerignore
mkdir -p "$T/www" && echo 'from the web' > "$T/www/remote.txt"
busybox httpd -p 127.0.0.1:8000 -h "$T/www" || exit 1
cat > Dockerfile <<'X'
FROM alpine:latest
ARG PORT=9999
ENV PORT=${PORT}
RUN echo 'nagini:x:999:999::/home/nagini:/bin/sh' >> /etc/passwd && echo 'nagini:x:999:' >> /etc/group \\
    && mkdir -p /home/nagini && chown nagini:nagini /home/nagini
WORKDIR /home/nagini
COPY . .
ADD http://127.0.0.1:8000/remote.txt /downloads/
EXPOSE $PORT
USER nagini
ENTRYPOINT httpd -f -p $PORT -h /home/nagini
X
m build --network host -q -t tp1 . >/dev/null || exit 1
echo "== files"; m run --rm --entrypoint sh tp1 -c 'find . | sort; ls -ln /downloads; id'; m run --rm -u 0 --entrypoint cat tp1 /downloads/remote.txt
echo "== config"; m image inspect -f '{{json .Config.ExposedPorts}} {{.Config.User}} {{.Config.WorkingDir}} {{json .Config.Entrypoint}}' tp1
echo "== serve"; c=$(m run -d tp1); i=0; until m exec "$c" wget -qO- localhost:9999/test.html 2>/dev/null; do i=$((i+1)); [ $i -gt 100 ] && break; sleep 0.1; done
m exec "$c" sh -c 'cat /proc/1/status | grep ^Uid'; m rm -f "$c" >/dev/null
"#,
    ) else {
        return;
    };
    assert_eq!(
        section(&out, "files"),
        ".\n./.dockerignore\n./Dockerfile\n./README.md\n./notes\n./notes/keep.txt\n./test.html\ntotal 4\n-rw-------    1 0        0               13 Jan  1  1970 remote.txt\nuid=999(nagini) gid=999(nagini) groups=999(nagini)\nfrom the web\n"
            .replace("Jan  1  1970", section(&out, "files").lines().nth(8).map(|l| &l[44..56]).unwrap_or("")),
        "!README.md is back, notes/*.md and SECRET.md are not; the URL's file is root's, mode 0600"
    );
    assert_eq!(
        section(&out, "config"),
        "{\"9999/tcp\":{}} nagini /home/nagini [\"/bin/sh\",\"-c\",\"httpd -f -p $PORT -h /home/nagini\"]\n"
    );
    assert_eq!(section(&out, "serve"), "<p>test</p>\nUid:\t999\t999\t999\t999\n", "served by nagini on $PORT");
}

/// docker's rules in the corners: `COPY --from` keeps the source's owners; a glob of
/// one file needs no trailing `/`; a COPY into a VOLUME's path is in the layer (the
/// step runs without the image's volumes); `COPY --from=stage /` copies the stage's
/// files, not the runtime's (/etc/hosts...); `--chown` owns the directories it makes;
/// `--build-arg K` without a value keeps the default; a gzip that is not a tar is
/// copied as a file; a symlink to an ignored file is not in the context; a failed
/// RUN is named without its build args; EXPOSE ranges are their ports; `--label K`
/// is empty; an intermediate image cannot be removed, a base with children is only
/// untagged.
#[test]
fn docker_rules_in_the_corners_of_copy_args_expose_labels_and_rmi() {
    let Some(out) = course(
        r#"
mkdir -p corner && cd corner
echo data > data.txt; echo hi | gzip > notar.gz; echo secret > .env; ln -s .env cfg; echo .env > .dockerignore
cat > Dockerfile <<'X'
FROM test/ex01 AS build
RUN mkdir -p /home/app && echo mine > /home/app/f && chown -R 1111:1111 /home/app
FROM alpine:latest
ARG V=default
VOLUME /data
COPY data*.txt /data/one.txt
COPY --from=build /home/app /home/app
COPY --from=build / /stage/
COPY --chown=1111:1111 data.txt /made/by/chown/
ADD notar.gz /gz/
EXPOSE 8000-8002/tcp
RUN echo "V=$V" > /v
X
echo "== build"; m build --build-arg V --label nolabel -t corner . > o 2>&1 || cat o; echo "code $?"
m run --rm --entrypoint sh corner -c 'cat /data/one.txt; ls -ln /home/app | tail -1 | awk "{print \$3, \$4}"; ls /stage/etc/resolv.conf /stage/etc/hosts 2>/dev/null | wc -l; ls /stage/home/app; stat -c "%u:%g %n" /made /made/by /made/by/chown /made/by/chown/data.txt; ls /gz; cat /v' > r 2>&1; cat r
m image inspect -f '{{json .Config.ExposedPorts}} {{json .Config.Labels}}' corner
echo "== cfg"; printf 'FROM alpine\nCOPY cfg /\n' > Cfg.Dockerfile; m build -f Cfg.Dockerfile . 2>&1 | tail -1 | sed 's/^mini: //'
echo "== run msg"; printf 'FROM alpine\nARG X=1\nRUN exit 2\n' > Fail.Dockerfile; m build -f Fail.Dockerfile . 2>&1 | tail -1 | sed 's/^mini: //'
echo "== rmi"; mid=$(m images -aq --no-trunc | while read i; do [ "$(m image inspect -f '{{len .RootFS.Layers}}' $i)" = 2 ] && echo $i; done | head -1)
m rmi "$mid" 2>&1 | sed 's/^mini: //; s/[0-9a-f]\{12\}/ID/'; m rmi alpine:3.14 >/dev/null; m rmi alpine:latest 2>&1; m images -a -q --no-trunc | grep -c "$(m image inspect -f '{{.Id}}' corner)"
"#,
    ) else {
        return;
    };
    assert_eq!(
        section(&out, "build"),
        "code 0\ndata\n1111 1111\n0\nf\n1111:1111 /made\n1111:1111 /made/by\n1111:1111 /made/by/chown\n1111:1111 /made/by/chown/data.txt\nnotar.gz\nV=default\n{\"8000/tcp\":{},\"8001/tcp\":{},\"8002/tcp\":{}} {\"nolabel\":\"\"}\n"
    );
    assert_eq!(
        section(&out, "cfg"),
        "COPY failed: file not found in build context or excluded by .dockerignore: stat cfg: file does not exist\n"
    );
    assert_eq!(section(&out, "run msg"), "The command '/bin/sh -c exit 2' returned a non-zero code: 2\n");
    assert_eq!(
        section(&out, "rmi"),
        "Error response from daemon: conflict: unable to delete ID (cannot be forced) - image has dependent child images\nUntagged: alpine:latest\n1\n",
        "an intermediate image stays; the base of built images is only untagged"
    );
}
