//! ns-exec
