ns-exec -q --detach --pid --net --uts --ipc -- sleep 60 | tee pid; ns-exec -q show $(cat pid); kill $(cat pid)
