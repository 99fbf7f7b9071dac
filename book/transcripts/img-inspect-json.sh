export CONTLAB_ROOT=store; img-pull -q pull 127.0.0.1:5042/lab/busybox:1.0 >/dev/null && img-pull -q inspect 127.0.0.1:5042/lab/busybox:1.0
