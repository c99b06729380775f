#!/usr/bin/env bash
# After the manual approval: the same gated shift for everyone; its promotion makes NEW_POOL's
# 100 % the stable weights and removes the canary cohort.
. "$(dirname "$0")/lib.sh"
gated_shift --reason "release $RELEASE: promote to everyone"
