#!/bin/sh
# Example script (templates/deploy-with-remediation.yaml): waits $1 seconds, prints JSON.
set -eu
case "${1:-0}" in
  ''|*[!0-9.]*) echo "not a number of seconds: $1" >&2; exit 2 ;;
esac
sleep "${1:-0}"
printf '{"slept": "%s"}\n' "${1:-0}"
