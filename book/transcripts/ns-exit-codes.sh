ns-exec -q -- no-such-command; echo "exit $?"; ns-exec -q -- sh -c 'kill -9 $$'; echo "exit $?"
