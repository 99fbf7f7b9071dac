[ "$(uname -rv)" = "$(ns-exec -q --all -- uname -rv)" ] && echo "same kernel inside and outside"
