#!/usr/bin/env bash
# ctest test_onnx_export_ort: check_export.py on the models test_onnx_export
# left in DIR (python: $ASG_PYTHON, else python3).
#   check_export.sh DIR
set -eu
exec "${ASG_PYTHON:-python3}" "$(cd "$(dirname "$0")" && pwd)/check_export.py" "$1"
