#!/usr/bin/env bash
# On-call: every replica back to the stable weights at once (ends a running plan), then status.
. "$(dirname "$0")/lib.sh"
ctl --wait rollback "$ROUTE" --reason "${ROLLBACK_REASON:-release $RELEASE: on-call rollback}"
ctl status "$ROUTE"
