"""The nvidia-smi fallback's change of power limits as one `sh` script on the node, under its limits lock.

An agent holds the node's limits lock (factoryctl.agent.limits_lock) from its read before a change to its read after;
a node driven through nvidia-smi has no agent, so the same sequence runs as `LOCKED_CHANGE` under `flock -w`, in
one SSH exec. Its own module because the script is long and is the one place that must follow limits_lock's choice
of path and its checks: a change there is a change here.
"""

from __future__ import annotations

import re

#: Why a node without `flock` is refused (after "cannot lock its power limits: ").
NO_FLOCK = (
    "the node has no `flock` command (util-linux) to hold its lock with, as nvidia-smi is driven without Python "
    "there: install util-linux, or Python 3.9 or later for the agent"
)
#: `sh -c LOCKED_CHANGE NAME WAIT MARKER QUERY [INDEX WATTS]...`: the query, the sets (to the first that fails) and
#: the query again under `flock -w WAIT`, each step a `MARKER STEP` line on stdout and stderr alike (`query`, `set
#: INDEX`, then `exit STATUS`), or a refusal (`busy PATH`, `unusable CLAUSE`, `noflock`). The lock and its checks
#: mirror factoryctl.agent.limits_lock's: what a simulated node's nvidia-smi names (factoryctl.sim.smi), else
#: /run/factoryctl-0 for root when /run can hold it, else `<home>/.local/state/factoryctl/<host name>`.
LOCKED_CHANGE = r"""w=$1 m=$2 q=$3; shift 3
say() { printf '\n%s %s\n' "$m" "$*"; printf '\n%s %s\n' "$m" "$*" >&2; }
no() { say "$@"; exit 0; }
owner() { stat -c %u "$1" 2>/dev/null; }
bits() { b=$(stat -c %a "$1" 2>/dev/null) && echo $((0$b & $2)); }  # $2: octal
run_holds() {
  [ -d /run ] && [ ! -L /run ] && [ "$(owner /run)" = 0 ] && [ "$(bits /run 022)" = 0 ] || return 1
  if [ -e "$1" ] || [ -L "$1" ]; then [ -L "$1" ] || [ ! -d "$1" ] || [ -w "$1" ]; else [ -w /run ]; fi
}
safe_above() {
  p=$1
  while [ -n "$p" ]; do
    p=${p%/*}; a=${p:-/}; o=$(owner "$a") || no unusable "$d is inside $a, which cannot be examined"
    [ "$o" = 0 ] || [ "$o" = "$u" ] || no unusable "$d is inside $a, which belongs to uid $o (neither root nor this user)"
    [ "$(bits "$a" 022)" = 0 ] || [ "$(bits "$a" 01000)" != 0 ] || [ -L "$a" ] ||
      no unusable "$d is inside $a, which is writable by others without the sticky bit"
  done
}
private_dir() {
  umask 077; [ -e "$d" ] || [ -L "$d" ] || mkdir -p "$d" 2>/dev/null || [ -d "$d" ] || no unusable "cannot create $d"
  { [ -d "$d" ] && [ ! -L "$d" ]; } || no unusable "$d is not a directory (remove it)"
  o=$(owner "$d"); [ "$o" = "$u" ] && [ "$(bits "$d" 022)" = 0 ] ||
    no unusable "$d belongs to uid $o or is writable by others (mode $(printf %04o "0$(stat -c %a "$d")"))"
  safe_above "$d"; safe_above "$(cd "$d" && pwd -P)"
}
o=$(nvidia-smi --factoryctl-limits-lock 2>/dev/null) || o=
case $o in
factoryctl-limits-lock:/*) l=${o#factoryctl-limits-lock:} u= ;;
*) u=$(id -u) || no unusable "cannot tell this user's uid"
   if [ "$u" = 0 ] && run_holds /run/factoryctl-0; then d=/run/factoryctl-0; else
     h=$(getent passwd "$u" | cut -d: -f6)
     case $h in /*) ;; *) no unusable "uid $u has no home in the user database, so no place for the lock" ;; esac
     n=$(uname -n | sed 's/[^A-Za-z0-9._-]/_/g; s/^\.*//'); d=$h/.local/state/factoryctl/${n:-_}
   fi
   private_dir; l=$d/gpu-limits.lock ;;
esac
command -v flock >/dev/null 2>&1 || no noflock
[ ! -L "$l" ] || no unusable "$l is a symbolic link (remove it)"
[ ! -e "$l" ] || [ -f "$l" ] || no unusable "$l is not a regular file (remove it)"
(exec 9>>"$l") 2>/dev/null || no unusable "cannot open $l"
exec 9>>"$l"
if [ -n "$u" ]; then
  o=$(owner "$l"); [ "$o" = "$u" ] || no unusable "$l belongs to uid $o, not to this user (remove it)"
  [ "$(bits "$l" 077)" = 0 ] || chmod 600 "$l"
fi
e=$(flock -w "$w" 9 2>&1) || { [ $? = 1 ] && [ -z "$e" ] && no busy "$l"; no unusable "flock on $l failed: $e"; }
say query; nvidia-smi "$q" --format=csv,noheader,nounits 9>&-; r=$?; say exit $r; [ $r = 0 ] || exit 0
while [ $# -ge 2 ]; do
  say set "$1"; nvidia-smi -i "$1" -pl "$2" 9>&-; r=$?; say exit $r; [ $r = 0 ] || break; shift 2
done
say query; nvidia-smi "$q" --format=csv,noheader,nounits 9>&-; say exit $?
"""


def sections(output: bytes, marker: str) -> list[tuple[str, str]]:
    """(step, what was printed in it) of each MARKER line of LOCKED_CHANGE's `output`, in order."""
    parts = re.split(rf"\n{re.escape(marker)} ([^\n]*)\n", output.decode("utf-8", "replace"))
    return list(zip(parts[1::2], parts[2::2], strict=True))


def locked_change_steps(stdout: bytes, stderr: bytes, marker: str) -> list[tuple[str, str, str, int | None]]:
    """(step, stdout, stderr, exit status: None when cut off) of each step LOCKED_CHANGE reported, refusals too."""
    out, err = sections(stdout, marker), sections(stderr, marker)
    steps: list[tuple[str, str, str, int | None]] = []
    for i, (what, printed) in enumerate(out):
        if what.startswith("exit "):
            continue
        then = out[i + 1][0] if i + 1 < len(out) else ""
        code = int(then[5:]) if then.startswith("exit ") and then[5:].isdigit() else None
        steps.append((what, printed, err[i][1] if i < len(err) and err[i][0] == what else "", code))
    return steps
