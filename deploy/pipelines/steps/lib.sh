# Shared by the release steps (sourced, bash). Runs on a build agent, not in the image.
# The one address: CUTOVER_ENDPOINT, e.g. https://cutover-control.cutover.svc.cluster.local:9443 (a single
# replica's address or a ClusterIP Service: a fleet plan is one, stored once), or unix:PATH.
# mTLS: cutoverctl reads CUTOVER_CACERT, CUTOVER_CERT, CUTOVER_KEY (the pipeline's secure files).
set -euo pipefail
: "${CUTOVER_ENDPOINT:?set CUTOVER_ENDPOINT (https://HOST:PORT of the admin API, or unix:PATH)}"
: "${ROUTE:?set ROUTE (the cutover route to release)}"
: "${NEW_POOL:=green}"
: "${RELEASE:=${BUILD_BUILDNUMBER:-${GITHUB_RUN_ID:-manual}}}"
: "${CUTOVERCTL:=cutoverctl}"

ctl() {
    "$CUTOVERCTL" --endpoint "$CUTOVER_ENDPOINT" "$@"
}

# Runs a gated shift (arguments: extra shift options) and turns its exit code into the step's.
gated_shift() {
    local rc=0
    ctl shift "$ROUTE" --to "$NEW_POOL" --steps "${STEPS:-5,25,50,100}" \
        --interval "${STEP_INTERVAL:-5m}" --gate "5xx<=${MAX_5XX_PERCENT:-1}%" \
        --gate "p99<=${MAX_P99_MS:-500}ms" --min-requests "${MIN_REQUESTS:-200}" "$@" || rc=$?
    case $rc in
        0) echo "shift $ROUTE to $NEW_POOL: promoted ($*)" ;;
        6) echo "##[error]release $RELEASE was ROLLED BACK by a gate (see above); failing the stage" >&2 ;;
        5) echo "##[error]replicas disagree (exit 5): page on-call" >&2 ;;
        *) echo "##[error]shift stopped (exit $rc)" >&2 ;;
    esac
    return $rc
}
