ns-exec -q --pid --mount-proc -- sh -c 'sleep 1 & ps -o pid,ppid,comm'
