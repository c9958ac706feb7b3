"""Where a command runs: a local subprocess or a docker container. Both tee logs to <workdir>/logs/<stage>.log."""
