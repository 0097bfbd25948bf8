# Podman settings that work on hosts without a Docker engine (sourced by the scripts in this folder).
# runc + cgroupfs: crun fails on hybrid cgroup hosts; containers.conf without default ulimits: some
# hosts refuse podman's defaults (setting RLIMIT_NPROC is not permitted).
SLIMTEXT_PODMAN_CONF=${SLIMTEXT_PODMAN_CONF:-/tmp/slimtext-containers.conf}
if [ ! -f "$SLIMTEXT_PODMAN_CONF" ]; then
    printf '[containers]\ndefault_ulimits = []\n' > "$SLIMTEXT_PODMAN_CONF"
fi
export CONTAINERS_CONF="$SLIMTEXT_PODMAN_CONF"
PODMAN=(podman --runtime runc --cgroup-manager cgroupfs)
# the Debian mirror apt already uses (mmdebstrap builds the local base images from it)
debian_mirror() {
    local m
    m=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1)
    [ -n "$m" ] || m=$(grep -h '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -1)
    echo "${m:-http://deb.debian.org/debian}"
}
