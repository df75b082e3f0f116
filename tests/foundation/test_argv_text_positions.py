"""A text value read as UTF-8 is rewritten in the one argv word it came from: a path or exec word that reads the same
keeps its bytes.

`check_text_arguments` rewrote every word equal to a text value (and any `-X...value` word), so under
`LC_ALL=C PYTHONUTF8=0` `-c été nodes drain all --reason été` turned the config path `été` into text the ASCII
locale cannot encode ("invalid value for '--config'", exit 2), and in a Latin-1 locale into another file's name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_process import CLI_ARGV

from factoryctl.cli.arguments import check_text_arguments

FACTORY = "name: lab\nnodes:\n  ws: {transport: local, sim: {profile: h100-sxm, gpus: 2, seed: 7}}\n"


def test_a_config_path_equal_to_the_reason_keeps_its_bytes_under_the_c_locale(tmp_path: Path) -> None:
    place = tmp_path / "café"
    place.mkdir()
    (place / "été").write_text(FACTORY)
    c_locale = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0"}
    word = "été".encode()  # the path's bytes and the reason's, the same word twice
    done = subprocess.run(
        [*CLI_ARGV, "-c", word, "nodes", "drain", "all", "--reason", word],
        env=c_locale,
        cwd=place,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    listed = subprocess.run(
        [*CLI_ARGV, "-c", str(place / "été"), "nodes", "-o", "json"], capture_output=True, timeout=120, check=True
    )
    (item,) = json.loads(listed.stdout)["items"]
    assert item["drain_reason"] == "été"


@pytest.mark.parametrize("encoding", ["ascii", "iso8859-1"])
def test_only_the_text_values_words_are_rewritten(encoding: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The words as Python read them in an ASCII or a Latin-1 locale; paths and exec's words stay as they came."""
    monkeypatch.setattr(sys, "getfilesystemencoding", lambda: encoding)
    read = "été".encode().decode(encoding, "surrogateescape")  # `été` in UTF-8, as this locale reads it
    args = ["-c", "-x/" + read, "nodes", "drain", "all", "-r", read]
    check_text_arguments(args)
    assert args == ["-c", "-x/" + read, "nodes", "drain", "all", "-r", "été"]
    for attached in ("--reason=", "-r"):
        args = ["-c", attached + read, "nodes", "drain", "all", attached + read]
        check_text_arguments(args)
        assert args == ["-c", attached + read, "nodes", "drain", "all", attached + "été"]
    for command in (["echo", read, read], ["--", "echo", read, read]):
        args = ["exec", read, "-n", *command]
        check_text_arguments(args)
        assert args == ["exec", "été", "-n", *command]  # the target is text; the command's words keep their bytes
