#!/usr/bin/env bash
# GitHub Actions: writes the admin API's CA and the client certificate from secrets (CA_PEM,
# CERT_PEM, KEY_PEM) to files only this user reads, and exports their paths for later steps.
set -euo pipefail
d="${RUNNER_TEMP:?}/cutover-tls"
mkdir -p -m 700 "$d"
umask 077
printf '%s\n' "$CA_PEM" > "$d/ca.pem"
printf '%s\n' "$CERT_PEM" > "$d/client.crt"
printf '%s\n' "$KEY_PEM" > "$d/client.key"
{
    echo "CUTOVER_CACERT=$d/ca.pem"
    echo "CUTOVER_CERT=$d/client.crt"
    echo "CUTOVER_KEY=$d/client.key"
} >> "${GITHUB_ENV:?}"
