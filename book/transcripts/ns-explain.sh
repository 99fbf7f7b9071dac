ns-exec --explain --dry-run --user --map-root -- id
