r"""`exec --lines` passes bytes that are not UTF-8 through as they came, as the gathered output and pdsh do.

`--lines` decoded each line with "replace", so `printf 'a\377b'` printed `a\ufffdb` (`a` EF BF BD `b`) while the
gathered output kept `a` FF `b`. The real console script on a real pipe, on local and SSH nodes (`fleet`); JSON and
CSV cannot carry such bytes and replace them (docs/ssh.md).
"""

from __future__ import annotations

import json
import subprocess

from cli_process import CLI_ARGV
from exec_fleets import Fleet, fleet  # noqa: F401 - the fixture

SCRIPT = r"printf 'a\377b\nc\376'; printf 'e\375\n' >&2"


def exec_bytes(config: str, *options: str) -> subprocess.CompletedProcess[bytes]:
    argv = [*CLI_ARGV, "--config", config, "exec", "n01", *options, "--", "sh", "-c", SCRIPT]
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=False)


def test_lines_passes_bytes_through(fleet: Fleet):  # noqa: F811 - the fixture, as a parameter
    done = exec_bytes(fleet.config, "--lines")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"n01: a\xffb\nn01: c\xfe\n"
    assert done.stderr == b"n01: e\xfd\n"


def test_the_gathered_output_passes_the_same_bytes(fleet: Fleet):  # noqa: F811 - the fixture, as a parameter
    done = exec_bytes(fleet.config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(b"---------------\na\xffb\nc\xfe\n")


def test_json_replaces_them(fleet: Fleet):  # noqa: F811 - the fixture, as a parameter
    done = exec_bytes(fleet.config, "-o", "json")
    assert done.returncode == 0, done.stderr
    [item] = json.loads(done.stdout)["items"]
    assert (item["stdout"], item["stderr"]) == ("a\ufffdb\nc\ufffd", "e\ufffd\n")
