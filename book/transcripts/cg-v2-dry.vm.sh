rmdir /sys/fs/cgroup/contlab 2>/dev/null; echo '-cpu -io -memory -pids' > /sys/fs/cgroup/cgroup.subtree_control; cg-limit --dry-run run --memory 64M --cpus 0.5 --pids 20 -- true
