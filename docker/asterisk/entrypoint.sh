#!/bin/sh
# Writes the AMI secret of the `pbx-core` manager user from $AMI_SECRET (manager.conf #includes
# it), then runs Asterisk. The secret lives only in the container's runtime directory, never in
# the repository or the image.
set -eu

secret="${AMI_SECRET:-}"
if [ -z "$secret" ]; then
    echo "asterisk: AMI_SECRET is not set; the pbx-core AMI user needs a secret (set it in .env)" >&2
    exit 2
fi
# Letters, digits and - . _ ~ only: the value is written into an Asterisk config line (where ';'
# starts a comment) and into the PBX_AMI_URL of the bridge (where it must be URL-safe).
case "$secret" in
    *[!A-Za-z0-9._~-]*)
        echo "asterisk: AMI_SECRET may only contain letters, digits and - . _ ~" >&2
        exit 2 ;;
esac
if [ "${#secret}" -lt 16 ]; then
    echo "asterisk: AMI_SECRET must be at least 16 characters" >&2
    exit 2
fi

run_dir="${ASTERISK_RUN_DIR:-/var/run/asterisk}"
umask 077
mkdir -p "$run_dir"
printf 'secret = %s\n' "$secret" > "$run_dir/manager-secret.conf"
unset secret AMI_SECRET

exec "$@"
