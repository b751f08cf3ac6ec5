#!/bin/sh
# Writes the deployment's settings that asterisk-config/ includes from the runtime directory, then
# runs Asterisk:
#   AMI_SECRET         (required) the secret of the `pbx-core` manager user -> manager-secret.conf
#   AMI_PERMIT         (required) networks the bridge and web connect to AMI from, comma separated
#                      (e.g. 172.30.57.0/24)                           -> manager-acl.conf
#   AMI_BIND_ADDRESS   where AMI listens in the container (default 0.0.0.0; never publish 5038)
#                                                                      -> manager-network.conf
#   HTTP_BIND_ADDRESS  where ws:// (8088) listens in the container (default 0.0.0.0; compose
#                      publishes it on the host's loopback only)       -> http-network.conf
# The secret lives only in the container's runtime directory, never in the repository or the image.
set -eu
set -f  # no globbing: AMI_PERMIT is split on commas, never expanded as a pattern

fail() {
    echo "asterisk: $*" >&2
    exit 2
}

# An address or network: hex digits, dots, colons and one /prefix. Nothing that could end a
# config line or start a comment (these values are written into Asterisk config files).
check_address() {  # name value
    case "$2" in
        ''|*[!0-9A-Fa-f.:/]*|*/*/*) fail "$1 must be an IP address or network (e.g. 172.30.57.0/24), got '$2'" ;;
    esac
}

secret="${AMI_SECRET:-}"
if [ -z "$secret" ]; then
    fail "AMI_SECRET is not set; the pbx-core AMI user needs a secret (set it in .env)"
fi
# Letters, digits and - . _ ~ only: the value is written into an Asterisk config line (where ';'
# starts a comment) and into the PBX_AMI_URL of the bridge (where it must be URL-safe).
case "$secret" in
    *[!A-Za-z0-9._~-]*) fail "AMI_SECRET may only contain letters, digits and - . _ ~" ;;
esac
if [ "${#secret}" -lt 16 ]; then
    fail "AMI_SECRET must be at least 16 characters"
fi

permit="${AMI_PERMIT:-}"
if [ -z "$permit" ]; then
    fail "AMI_PERMIT is not set: name the networks pbx-core's bridge and web reach AMI from (e.g. AMI_PERMIT=172.30.57.0/24); without it only this container's loopback may log in"
fi
ami_bind="${AMI_BIND_ADDRESS:-0.0.0.0}"
http_bind="${HTTP_BIND_ADDRESS:-0.0.0.0}"
check_address AMI_BIND_ADDRESS "$ami_bind"
check_address HTTP_BIND_ADDRESS "$http_bind"
acl=""
for net in $(echo "$permit" | tr ',' ' '); do
    check_address AMI_PERMIT "$net"
    acl="${acl}permit = $net
"
done

run_dir="${ASTERISK_RUN_DIR:-/var/run/asterisk}"
umask 077
mkdir -p "$run_dir"
printf 'secret = %s\n' "$secret" > "$run_dir/manager-secret.conf"
unset secret AMI_SECRET
umask 022
printf '; written by the entrypoint from AMI_BIND_ADDRESS\nbindaddr = %s\n' "$ami_bind" > "$run_dir/manager-network.conf"
printf '; written by the entrypoint from AMI_PERMIT\n%s' "$acl" > "$run_dir/manager-acl.conf"
printf '; written by the entrypoint from HTTP_BIND_ADDRESS\nbindaddr = %s\n' "$http_bind" > "$run_dir/http-network.conf"

exec "$@"
