pid=$(ns-exec -q --detach --uts --hostname web --net -- sleep 60); ns-exec --enter $pid -- hostname; kill $pid
