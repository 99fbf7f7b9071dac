L=$(lvm-snap --trace-file trace.txt loop attach --create --size 64M disk.img) && cat trace.txt && lvm-snap -q loop ls && lvm-snap loop detach $L
