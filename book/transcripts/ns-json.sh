ns-exec --trace=json --uts --hostname box -- true 2>&1 | grep sethostname
