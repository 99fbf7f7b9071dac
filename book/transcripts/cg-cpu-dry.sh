cg-limit --dry-run run --cpus 0.5 -- true
