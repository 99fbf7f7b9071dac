ns-exec -q --pid -- sh -c 'id -u; cat /proc/self/uid_map'
