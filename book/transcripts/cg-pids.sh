cg-limit -q run --name bomb-$$ --pids 10 -- sh -c 'for i in $(seq 15); do sleep 1 & done; wait'; echo "exit $?"
