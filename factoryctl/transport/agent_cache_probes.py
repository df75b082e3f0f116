"""The POSIX sh that checks the agent cache on a node, from the node's side (`agent_cache` reads its answers).

Kept apart from `agent_cache` because it is a program of its own, in another language, with its own contract: what
each script is given (`$1`...) and the lines it prints back. The Python that decides from those lines stays in
`agent_cache` (its refusals worded in `agent_cache_rules`), which also holds the start command (`_LAUNCH`) that
re-checks the cache in the agent's own shell.
"""

from __future__ import annotations

#: `sum256 FILE` prints FILE's sha256 (64 hex digits) with the first of sha256sum (GNU, busybox), shasum (BSD,
#: macOS) or openssl that works, or nothing when none does: then the size alone decides, as before the content was
#: compared. FILE is read on stdin, so its name is never echoed back (sha256sum escapes odd names).
SUM256 = r"""sum256() {
  h=$({ sha256sum < "$1" || shasum -a 256 < "$1" || openssl dgst -sha256 -r < "$1"; } 2>/dev/null) || h=
  h=${h%%[!0-9a-f]*}
  [ ${#h} -eq 64 ] && printf '%s\n' "$h"
  return 0
}
"""

#: The SFTP path's one exec: the login uid, then the sha256 of the cached zipapp `$1` (relative paths start at the
#: login directory) if it is a regular file of that user of the right size `$2` (so nothing else is ever read).
#: The SFTP checks that follow decide whether it is reused; the hash only tells a damaged copy from a good one.
LOGIN_PROBE = (
    SUM256
    + r"""id -u || exit 1
if [ -f "$1" ] && [ ! -h "$1" ] && [ -O "$1" ]; then
  s=$(wc -c < "$1") && [ $s -eq "$2" ] && sum256 "$1"
fi
exit 0
"""
)


#: The cache check of `agent_cache._ship_with_cat` (no SFTP): the same rules as over SFTP, in POSIX sh plus `test -O` (dash,
#: bash, busybox and ksh have it). `$1` the cache directory, `$2` the zipapp's name, `$3` its size, `$4` its sha256
#: (compared when the node can hash, see `SUM256`). Prints two lines: `reuse <sha256, if hashed>` or `upload` and
#: the cache's resolved path, or the problem (`symlink`, `notdir`, `owner`, `mode <ls mode>`, `powner <uid> <ls mode>`, `pmode <ls mode>`,
#: `pnotdir <ls mode>`, `missing`) and the path it is about.
CAT_PROBE = (
    SUM256
    + r"""umask 077
set -f
say() { printf '%s\n%s\n' "$1" "$2"; exit 0; }
info() { l=$(LC_ALL=C ls -ldn -- "$1") || say missing "$1"; set -- $l; m=$1; o=$3; }
up() {
  p=$1
  while [ "$p" != / ]; do
    p=$(dirname -- "$p")
    info "$p"
    case $o in 0|"$me") ;; *) say "powner $o $m" "$p";; esac
    case $m in
      l*) ;;
      d????w*|d???????w*) case $m in ?????????[tT]*) ;; *) say "pmode $m" "$p";; esac;;
      d*) ;;
      *) say "pnotdir $m" "$p";;
    esac
  done
}
me=$(id -u) || exit 1
case $1 in /*) d=$1;; *) d=$(pwd -P)/$1 || exit 1;; esac
if [ ! -e "$d" ] && [ ! -h "$d" ]; then
  mkdir -p -- "$(dirname -- "$d")" 2>/dev/null
  mkdir -- "$d" 2>/dev/null && chmod 700 -- "$d"
fi
[ -h "$d" ] && say symlink "$d"
[ -d "$d" ] || say notdir "$d"
r=$(cd -P -- "$d" && pwd -P) || exit 1
[ -O "$r" ] || say owner "$r"
info "$r"
case $m in ?????w*|????????w*) say "mode $m" "$r";; esac
up "$d"
up "$r"
f=$r/$2
if [ -f "$f" ] && [ ! -h "$f" ] && [ -O "$f" ]; then
  info "$f"
  case $m in ?????w*|????????w*) ;; *)
    s=$(wc -c < "$f") && [ $s -eq "$3" ] && h=$(sum256 "$f") && { [ -z "$h" ] || [ "$h" = "$4" ]; } && say "reuse $h" "$r";;
  esac
fi
say upload "$r"
"""
)
