#!/bin/sh
# Renders the gateway's address lists from the environment, before nginx
# starts. nginx cannot read environment variables itself, and
# `set_real_ip_from` takes one CIDR per line, which the official image's
# envsubst templates cannot expand from a list; so this script writes one
# include file per variable:
#
#   TRUSTED_PROXIES   -> trusted_proxies.conf   (`set_real_ip_from CIDR;` lines)
#       CIDRs of the proxies in front of the gateway (TLS terminators, load
#       balancers). The gateway takes the client's address from
#       X-Forwarded-For through them only. Default: none (the connection's
#       own address is the client's).
#   ADMIN_ALLOW_FROM  -> admin_allow_from.conf  (`CIDR 1;` lines of a geo block)
#       CIDRs the gateway serves /api/pay/admin/ and /admin/ to; others get 404.
#       Default (unset or empty): loopback and the private ranges.
#   /etc/resolv.conf  -> resolver.conf          (`resolver ADDRESSES valid=5s;`)
#       The container's DNS servers (Docker's and Podman's embedded DNS),
#       through which gateway.conf finds the services by name at run time;
#       `valid` overrides the records' TTL (Docker's is 600 s), so a
#       recreated container is reached within 5 s.
#
# Lists are separated by commas and/or spaces. A value that is not an
# address or CIDR stops the container with a line naming the variable.
#
# docker-compose.yml mounts this file as an executable script in the nginx
# image's /docker-entrypoint.d/, which runs it before nginx; gateway.conf
# includes what it writes from /etc/nginx/wxpay/ (WXPAY_NGINX_DIR changes
# that, and WXPAY_RESOLV_CONF the resolv.conf read, for tests).
# stack/tests/gateway_nginx.rs runs this same script.
set -eu
set -f # no globbing: a `*` in a value is an error, not a file list

out=${WXPAY_NGINX_DIR:-/etc/nginx/wxpay}
default_admin="127.0.0.0/8 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 ::1/128 fc00::/7"

# cidrs NAME VALUE FORMAT: prints FORMAT for each CIDR of VALUE.
cidrs() {
    for c in $(printf '%s' "$2" | tr ',' ' '); do
        case "$c" in
            *[!0-9A-Fa-f:./]* | */*/* | /* | */)
                echo "wxpay gateway: $1: \"$c\" is not an IP address or CIDR" >&2
                exit 1
                ;;
        esac
        # shellcheck disable=SC2059 # FORMAT is this script's own
        printf "$3" "$c"
    done
}

# resolv.conf's nameservers as nginx writes them (an IPv6 one in brackets).
nameservers() {
    while read -r key value _; do
        [ "$key" = nameserver ] || continue
        case "$value" in
            *:*) printf ' [%s]' "$value" ;;
            *) printf ' %s' "$value" ;;
        esac
    done < "$1"
}

resolv=${WXPAY_RESOLV_CONF:-/etc/resolv.conf}
servers=$(nameservers "$resolv")
if [ -z "$servers" ]; then
    echo "wxpay gateway: no nameserver in $resolv: the services' names cannot be resolved" >&2
    exit 1
fi

mkdir -p "$out"
# Rendered into temporary files first: a failure leaves no half-written list.
trap 'rm -f "$out/trusted_proxies.conf.tmp" "$out/admin_allow_from.conf.tmp" "$out/resolver.conf.tmp"' EXIT
{
    echo "# Rendered from TRUSTED_PROXIES by wxpay-gateway-env.sh."
    cidrs TRUSTED_PROXIES "${TRUSTED_PROXIES:-}" 'set_real_ip_from %s;\n'
} > "$out/trusted_proxies.conf.tmp"
{
    echo "# Rendered from ADMIN_ALLOW_FROM by wxpay-gateway-env.sh."
    cidrs ADMIN_ALLOW_FROM "${ADMIN_ALLOW_FROM:-$default_admin}" '%s 1;\n'
} > "$out/admin_allow_from.conf.tmp"
{
    echo "# Rendered from $resolv by wxpay-gateway-env.sh."
    echo "resolver$servers valid=5s;"
} > "$out/resolver.conf.tmp"
mv "$out/trusted_proxies.conf.tmp" "$out/trusted_proxies.conf"
mv "$out/resolver.conf.tmp" "$out/resolver.conf"
mv "$out/admin_allow_from.conf.tmp" "$out/admin_allow_from.conf"
