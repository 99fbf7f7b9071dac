ns-exec --pid --mount-proc --uts --hostname lab -- sh -c 'hostname; ps'
