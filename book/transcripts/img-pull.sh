export CONTLAB_ROOT=store; img-pull pull 127.0.0.1:5042/lab/busybox:1.0
