#!/usr/bin/env bash
# scripts/deps.sh while another apt/dpkg process holds a lock, with apt-get,
# dpkg and sudo replaced by stubs (no root, no network, nothing installed):
# it must wait and retry, give up after ASG_APT_LOCK_WAIT seconds with a
# message, and fail at once on an error that is not a lock.
set -u
deps=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/bin"
# dpkg: every package installed but `fortunes`
cat >"$tmp/bin/dpkg" <<'STUB'
#!/bin/sh
[ "$2" != fortunes ]
STUB
cat >"$tmp/bin/sudo" <<'STUB'
#!/bin/sh
exec "$@"
STUB
# apt-get: logs its arguments; the first $LOCKED_<VERB> calls fail as apt
# 2.6 does on a held lock; ERROR_<VERB> makes a call fail otherwise
cat >"$tmp/bin/apt-get" <<'STUB'
#!/bin/bash
verb=""; for a in "$@"; do case $a in update|install) verb=$a;; esac; done
echo "$verb $*" >>"$STUB_DIR/log"
n=$(grep -c "^$verb " "$STUB_DIR/log")
locked=LOCKED_${verb^^}; error=ERROR_${verb^^}
if [ "$n" -le "${!locked:-0}" ]; then
  if [ "$verb" = update ]; then
    echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 1 (apt-get)"
    echo "E: Unable to lock directory /var/lib/apt/lists/"
  else
    echo "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?"
  fi >&2
  exit 100
fi
[ -z "${!error:-}" ] || { echo "E: ${!error}" >&2; exit 100; }
exit 0
STUB
chmod +x "$tmp/bin/"*
export STUB_DIR=$tmp PATH="$tmp/bin:$PATH"
failed=0
check() { # $1: what; the rest: a command that must succeed
  local what=$1; shift
  if "$@"; then echo "ok: $what"; else echo "FAILED: $what"; failed=1; fi
}
calls() { grep -c "^$1 " "$tmp/log"; }

# 1. the lists lock held for two updates, the dpkg lock for one install
rm -f "$tmp/log"
LOCKED_UPDATE=2 LOCKED_INSTALL=1 "$deps" 2>"$tmp/err"; rc=$?
cat "$tmp/err"
check "waits out held locks and succeeds" [ "$rc" = 0 ]
check "update retried until the lock is free" [ "$(calls update)" = 3 ]
check "install retried until the lock is free" [ "$(calls install)" = 2 ]
check "install waits on the dpkg lock itself" grep -q "^install .*DPkg::Lock::Timeout=[1-9]" "$tmp/log"
check "install gets the missing package" grep -q "^install .* fortunes" "$tmp/log"
check "says it is waiting" grep -q "waiting for another apt/dpkg" "$tmp/err"

# 2. a lock never released: gives up after the limit, with a message
rm -f "$tmp/log"
start=$SECONDS
LOCKED_UPDATE=1000 ASG_APT_LOCK_WAIT=3 "$deps" 2>"$tmp/err"; rc=$?
cat "$tmp/err"
check "gives up on a lock held past the limit" [ "$rc" != 0 ]
check "the wait is bounded" [ $((SECONDS - start)) -lt 60 ]
check "says why it gave up" grep -q "held its lock for 3s; giving up" "$tmp/err"
check "nothing installed after giving up" [ "$(calls install)" = 0 ]

# 3. another error: no retry
rm -f "$tmp/log"
ERROR_INSTALL="Unable to locate package fortunes" "$deps" 2>"$tmp/err"; rc=$?
cat "$tmp/err"
check "fails on an error that is not a lock" [ "$rc" != 0 ]
check "does not retry it" [ "$(calls install)" = 1 ]
check "shows apt's message" grep -q "Unable to locate package" "$tmp/err"

[ "$failed" = 0 ] && echo "deps.sh lock check passed"
exit "$failed"
