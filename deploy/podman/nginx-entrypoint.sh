#!/bin/sh
# Runs deploy/nginx/nginx.conf (mounted as in docker-compose.yml) on Debian's nginx 1.22 under podman:
# - `server api:8000 resolve` needs nginx >= 1.27.3 (the upstream image has it): without it nginx resolves
#   `api` once at start, which returns every replica (they are healthy before the proxy starts);
# - Docker's embedded DNS (127.0.0.11) is podman's network gateway (aardvark-dns) here.
set -eu
ns=$(awk '/^nameserver/ {print $2; exit}' /etc/resolv.conf)
sed -e 's/ resolve / /' -e "s/resolver 127\.0\.0\.11/resolver $ns/" /etc/nginx/nginx.conf > /tmp/nginx.conf
nginx -t -q -c /tmp/nginx.conf
exec nginx -c /tmp/nginx.conf -g 'daemon off;'
