ns-exec --uts --hostname container -- sh -c 'hostname; uname -n'
