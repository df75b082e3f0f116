r"""A path printed for a machine is the file's exact bytes; a hint names it so a shell reaches the same file.

`main()` wrote stdout with errors="replace", so `config locate` printed `/tmp/?.yaml` for `/tmp/\xe9.yaml` (a
Latin-1 name, legitimate on Linux) and `cat "$(factoryctl config locate)"` opened another file. The console entry
point runs in a subprocess here, as a user's shell starts it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from factoryctl.cli.arguments import register_output_errors


def run_main(*args: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [os.fsencode(sys.executable), b"-m", b"factoryctl", *args], capture_output=True, timeout=60, check=False
    )


def test_config_locate_prints_the_exact_bytes_of_the_path(tmp_path: Path) -> None:
    latin1 = os.fsencode(tmp_path) + b"/caf\xe9.yaml"
    Path(os.fsdecode(latin1)).write_text("name: lab\nnodes: {}\n")
    done = run_main(b"-c", latin1, b"config", b"locate")
    assert done.returncode == 0, done.stderr
    assert done.stdout == latin1 + b"\n"


def test_the_hint_for_a_missing_file_names_it_in_bytes_a_shell_can_type(cli: Any, tmp_path: Path) -> None:
    result = cli("--config", f"{tmp_path}/it's\udcff.yaml", "config", "locate")
    assert result.exit_code == 3
    assert f"factoryctl: {tmp_path}/it's\\xff.yaml (from --config) does not exist." in result.stderr
    assert f"hint: `factoryctl init $'{tmp_path}/it\\'s\\xff.yaml'` writes an example there." in result.stderr
    done = subprocess.run(  # bash's $'...' gives the very bytes of the path
        ["bash", "-c", f"printf %s $'{tmp_path}/it\\'s\\xff.yaml'"], capture_output=True, timeout=60, check=True
    )
    assert done.stdout == os.fsencode(f"{tmp_path}/it's\udcff.yaml")


def test_what_the_locale_cannot_write_is_still_replaced_never_fatal() -> None:
    errors = register_output_errors()
    assert "caf\udce9 \u00e9".encode("ascii", errors) == b"caf\xe9 ?"
    assert "\u00e9\udce9".encode("utf-8", errors) == b"\xc3\xa9\xe9"
