#!/bin/sh
# run_on.sh ASG_TOOL BACKEND COMMAND...: runs COMMAND, or reports it skipped
# (exit 77) when BACKEND has no usable device here.
tool=$1 backend=$2
shift 2
"$tool" backends "$backend" >/dev/null || { echo "SKIPPED: no $backend device"; exit 77; }
exec "$@"
