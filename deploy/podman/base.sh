#!/usr/bin/env bash
# Make a local stand-in for python:3.11-slim-bookworm from Debian's packages (no registry needed):
#   deploy/podman/base.sh [IMAGE]        default localhost/slimtext-base:bookworm-slim; skipped when it exists
# minbase + python3 (3.11) + python3-venv, without docs, man pages, locales or apt's lists, and without
# the files of full perl (47 MB, pulled in by usrmerge only for its one-time conversion; perl-base stays)
# and glibc's iconv modules (8 MB; Python's codecs do not use them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
image=${1:-localhost/slimtext-base:bookworm-slim}
if "${PODMAN[@]}" image exists "$image"; then echo "base image $image exists"; exit 0; fi
tar=$(mktemp /tmp/slimtext-base.XXXXXX.tar)
trap 'rm -f "$tar"' EXIT
start=$(date +%s)
mmdebstrap --quiet --variant=minbase \
    --include=usr-is-merged,python3,python3-venv,python-is-python3,ca-certificates \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*' \
    --customize-hook='rm -rf "$1"/usr/share/perl/5.* "$1"/usr/lib/x86_64-linux-gnu/perl/5.* "$1"/usr/lib/x86_64-linux-gnu/libperl.so*' \
    --customize-hook='find "$1"/usr/lib/x86_64-linux-gnu/gconv -name "*.so" -delete' \
    bookworm "$tar" "deb $(debian_mirror) bookworm main"
"${PODMAN[@]}" import --change 'CMD ["python3"]' --change 'ENV LANG=C.UTF-8' "$tar" "$image" >/dev/null
echo "base image $image built in $(( $(date +%s) - start )) s: $("${PODMAN[@]}" image inspect --format '{{.Size}}' "$image") bytes"
