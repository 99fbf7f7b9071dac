export CONTLAB_ROOT=store; mini -q run --network none --hostname hello hello-world; mini -q ps -a --format '{{.Image}} {{.Command}} {{.State}}'
