#!/usr/bin/env bash
# usage: start-failoverd-signed.sh PORT ZONE_FILE "BACKENDS" BACKEND_PORT
# start-failoverd.sh with the zone signed (DNSSEC, NSEC3 by default; FAILOVERD_DNSSEC=nsec
# for NSEC): the FAILOVERD_START of ../shared/bench/peers/failoverd.sh for signed runs.
export FAILOVERD_DNSSEC=${FAILOVERD_DNSSEC:-nsec3}
exec "$(dirname "$0")/start-failoverd.sh" "$@"
