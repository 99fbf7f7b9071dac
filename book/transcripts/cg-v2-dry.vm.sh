cg-limit --dry-run run --memory 64M --cpus 0.5 --pids 20 -- true
