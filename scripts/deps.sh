#!/usr/bin/env bash
# deps.sh - installs the Debian 12 packages cutover needs for a goal, or says exactly how.
# Usage: scripts/deps.sh build|test|bench
# As root it runs apt-get itself; otherwise it prints the apt-get command and exits 1.
set -euo pipefail

build=(gcc make pkg-config libevent-dev libssl-dev libnghttp2-dev libjansson-dev libmaxminddb-dev)
test=(libcriterion-dev python3 python3-h2 curl openssl nghttp2-client libmaxmind-db-writer-perl)
bench=(haproxy nginx-light nghttp2-client nghttp2-proxy nghttp2-server h2o wrk valgrind util-linux)

want=("${build[@]}")
case "${1:-build}" in
build) ;;
test) want+=("${test[@]}") ;;
bench) want+=("${test[@]}" "${bench[@]}") ;;
*) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$st" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "cutover: missing packages: ${missing[*]}" >&2
    echo "cutover: run as root:  apt-get update && $cmd" >&2
    exit 1
fi
echo "cutover: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$cmd >/dev/null
