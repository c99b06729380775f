#!/usr/bin/env bash
# deps.sh - installs the Debian 12 packages cutover needs for a goal, or says exactly how.
# Usage: scripts/deps.sh build|test|bench|fuzz
# As root it runs apt-get itself; otherwise it prints the apt-get command and exits 1.
#
# Several goals may run at once (`make -j2` starts `deps.sh build` and `deps.sh test` together),
# and apt-get refuses to run twice ("Could not get lock /var/lib/apt/lists/lock"). So the
# installing part runs under an exclusive flock(1) on a lock file, and what is missing is
# checked again once the lock is held: whoever waited finds the packages the other installed.
set -euo pipefail

build=(gcc make pkg-config libevent-dev libssl-dev libnghttp2-dev libjansson-dev libmaxminddb-dev libcurl4-openssl-dev
       libtcmalloc-minimal4)
test=(libcriterion-dev python3 python3-h2 curl openssl nghttp2-client libmaxmind-db-writer-perl etcd-server etcd-client
      python3-yaml prometheus nodejs)
# tests/integration/deploy: kubectl renders the Kustomize overlays (`kubectl kustomize`). Debian's
# package is kubernetes-client (kubectl 1.20, kustomize v2.0.3; the overlays are written for it); a
# kubectl already on the machine from another package is kept (both ship /usr/bin/kubectl, so
# installing Debian's over it would fail), and the deploy tests then fetch Debian's with
# `apt-get download` + `dpkg -x` to check both render the same objects. prometheus brings promtool
# (deploy/alerts).
# The Kubernetes schema validator is the npm package kubernetes-models, installed from
# tests/integration/deploy/validator/package-lock.json by `npm ci` (npm: Debian's package when no
# npm came with the machine's Node.js).
bench=(haproxy nginx-light nghttp2-client nghttp2-proxy nghttp2-server h2o wrk valgrind util-linux)
# libFuzzer and the sanitizer runtimes come with clang-14 (libclang-rt-14-dev); llvm provides
# llvm-symbolizer, so reports name functions and lines.
fuzz=(clang libclang-rt-14-dev llvm)

command -v kubectl >/dev/null 2>&1 || test+=(kubernetes-client)
command -v npm >/dev/null 2>&1 || test+=(npm)

want=("${build[@]}")
case "${1:-build}" in
build) ;;
test) want+=("${test[@]}") ;;
bench) want+=("${test[@]}" "${bench[@]}") ;;
fuzz) want+=("${fuzz[@]}") ;;
*) echo "usage: $0 build|test|bench|fuzz" >&2; exit 2 ;;
esac

missing=()
find_missing() {
    missing=()
    local p st
    for p in "${want[@]}"; do
        st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        [ "$st" = "install ok installed" ] || missing+=("$p")
    done
}

# The deploy tests' validator (npm registry), for the test goals, once the packages are there.
validator() {
    case "${1:-build}" in test|bench) ;; *) return 0 ;; esac
    local d
    d="$(cd "$(dirname "$0")/.." && pwd)/tests/integration/deploy/validator"
    [ -d "$d/node_modules/kubernetes-models" ] && return 0
    echo "cutover: installing the Kubernetes schema validator (npm ci in $d)" >&2
    (cd "$d" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
}

find_missing
if [ ${#missing[@]} -eq 0 ]; then
    validator "${1:-build}"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "cutover: missing packages: ${missing[*]}" >&2
    echo "cutover: run as root:  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi

# One installer at a time. flock comes with util-linux (Essential in Debian); the lock file
# lives where root can always write and is never removed (removing it would let a third
# process lock a new file while the second still holds the old one).
lock=/var/lock/cutover-deps.lock
[ -d /var/lock ] || lock=/tmp/cutover-deps.lock
exec 9>>"$lock"
if ! flock -w 900 9; then
    echo "cutover: waited 15 minutes for another deps.sh to finish ($lock); giving up" >&2
    exit 1
fi
find_missing # another deps.sh may have installed them while this one waited
if [ ${#missing[@]} -eq 0 ]; then
    validator "${1:-build}"
    exit 0
fi

echo "cutover: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Other apt users (unattended-upgrades) do not take our lock: apt waits for theirs.
apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null
apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "${missing[@]}" >/dev/null
validator "${1:-build}"
