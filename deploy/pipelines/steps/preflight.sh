#!/usr/bin/env bash
# Before the shift: the fleet answers and has converged (exit 5 when not), and the route exists.
. "$(dirname "$0")/lib.sh"
ctl status "$ROUTE"
