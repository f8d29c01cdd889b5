#!/usr/bin/env bash
# The graph viewer in headless Chromium: writes the GPT-2 124M training
# step's page with `asg graph`, opens it with #selftest=<a parameter deep in
# block 11> (the page opens that scope, searches the name, selects the node
# and writes "VIEWER-SELFTEST PASS ..." into #selftest), checks the DOM and
# keeps a screenshot. Exit 77 (skipped) without Chromium.
# usage: check.sh ASG_TOOL OUTDIR
set -euo pipefail
asg=$1 out=$2
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
  echo "SKIP: chromium is not installed (Debian package chromium)"
  exit 77
fi
mkdir -p "$out"
page=$out/gpt2_train.html
"$asg" graph --model gpt2-small --train -o "$page"
node=h11.attn.qkv_proj.weight
url="file://$(cd "$out" && pwd)/gpt2_train.html#selftest=$node"
flags=(--headless=new --no-sandbox --disable-gpu --hide-scrollbars --no-first-run
  --user-data-dir="$out/profile" --virtual-time-budget=10000)
# the DOM after the page's script ran
timeout 120 "$browser" "${flags[@]}" --dump-dom "$url" >"$out/dom.html" 2>"$out/chromium.log" || {
  echo "chromium failed:"; tail -20 "$out/chromium.log"; exit 1; }
result=$(grep -o 'id="selftest">VIEWER-SELFTEST [^<]*' "$out/dom.html" | sed 's/^id="selftest">//' || true)
echo "${result:-no VIEWER-SELFTEST line in the DOM}"
timeout 120 "$browser" "${flags[@]}" --window-size=1400,900 --screenshot="$out/viewer.png" "$url" \
  >>"$out/chromium.log" 2>&1 || echo "(no screenshot: see $out/chromium.log)"
[ -f "$out/viewer.png" ] && echo "screenshot: $out/viewer.png"
case "$result" in
  "VIEWER-SELFTEST PASS node="*"scope=h11.attn.qkv_proj "*) exit 0 ;;
  *) exit 1 ;;
esac
