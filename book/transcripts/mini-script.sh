export CONTLAB_ROOT=store; mini -q pull 127.0.0.1:5042/lab/busybox:1.0 >/dev/null; mini -q run --script --network none --memory 64m 127.0.0.1:5042/lab/busybox:1.0 echo hello
