ns-exec -q --pid --mount-proc -- sh -c 'ps -o pid,ppid,comm; echo "I am PID $$"'
