"""A mistyped group near several names suggests all of them, not the first one difflib happens to rank."""

from __future__ import annotations

from pathlib import Path


def test_a_group_as_near_to_two_names_suggests_both(cli, tmp_path: Path) -> None:
    factory = tmp_path / "factory.yaml"
    factory.write_text(
        "name: r\nnodes:\n  a1: {transport: local}\n  b1: {transport: local}\ngroups:\n  rack-a: a1\n  rack-b: b1\n"
    )
    both = cli("--config", str(factory), "nodes", "@rack-")
    assert both.exit_code == 2
    assert "did you mean `@rack-a`, `@rack-b`?" in both.stderr
    one = cli("--config", str(factory), "nodes", "@rak-a")
    assert "did you mean `@rack-a`?" in one.stderr
