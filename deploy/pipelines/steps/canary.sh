#!/usr/bin/env bash
# The gated canary: a shift of the canary cohort (CANARY_COUNTRIES, e.g. SG,MY: clients by
# GeoIP) to NEW_POOL. cutover judges each step against the gates and rolls back on its own; the
# step fails with cutoverctl's exit code (6: rolled back).
. "$(dirname "$0")/lib.sh"
: "${CANARY_COUNTRIES:?set CANARY_COUNTRIES (ISO codes, e.g. SG,MY)}"
gated_shift --cohort "country=$CANARY_COUNTRIES" --reason "release $RELEASE: canary ($CANARY_COUNTRIES)"
