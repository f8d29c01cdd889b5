#!/usr/bin/env bash
# ctest test_onnx_conformance: writes the ONNX node cases into BUILD/onnx-node-cases
# and runs them through ASG (run_cases.py); fails if a case listed in
# tests/onnx/supported.txt no longer passes. Skipped (77) without onnx/numpy,
# unless ASG_REQUIRE_ONNX is set (CI).
#   conformance.sh LIBASG BUILD_DIR   (python: $ASG_PYTHON, else python3)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
py=${ASG_PYTHON:-python3}
if ! "$py" -c "import onnx, numpy" 2>/dev/null; then
  echo "onnx/numpy not installed for $py"
  [ -n "${ASG_REQUIRE_ONNX:-}" ] && exit 1 # CI installs them: a failure there
  echo "skipped"
  exit 77
fi
cases="$2/onnx-node-cases"
rm -rf "$cases"
"$py" "$here/gen_cases.py" "$cases"
exec "$py" "$here/run_cases.py" "$1" "$cases" "$2/onnx-table.md" --baseline "$here/supported.txt"
