#!/bin/sh
# The image's entrypoint: runs the command it is given (a binary of the
# image: auth-service, jssdk-service, pay-service or wechat-sandbox), and for
# those binaries listens on every interface, on the binary's own port, unless
# LISTEN_ADDR says otherwise. The binaries' own default is 127.0.0.1, which
# nothing outside the container could reach, so a plain
# `docker run -p 8083:8083 wxpay pay-service` would serve nobody.
# stack/tests/deploy_files.rs checks these ports against the services'.
set -eu
case "${1:-}" in
    auth-service) port=8081 ;;
    jssdk-service) port=8082 ;;
    pay-service) port=8083 ;;
    wechat-sandbox) port=8090 ;;
    *) exec "$@" ;;
esac
LISTEN_ADDR=${LISTEN_ADDR:-0.0.0.0:$port}
export LISTEN_ADDR
exec "$@"
