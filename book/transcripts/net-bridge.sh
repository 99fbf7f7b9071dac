unshare --net --mount sh -c 'mount -t tmpfs tmpfs /run; netns-bridge bridge create docker0 --subnet 172.17.0.1/16; ip -4 addr show docker0 | grep inet; ip route'
