"""`config validate` warns of an SSH key file that is not there: every login of the nodes naming it would fail.

It said `ok` and nothing else; the operator found out from `nodes` listing 400 nodes down with an auth error.
"""

from __future__ import annotations

from pathlib import Path


def _factory(tmp_path: Path, nodes: str, ssh: str = "") -> str:
    path = tmp_path / "factory.yaml"
    path.write_text(f"name: lab\nstate_dir: {tmp_path / 'state'}\n{ssh}nodes:\n{nodes}")
    return str(path)


def test_a_missing_key_under_ssh_is_one_warning_naming_its_nodes(cli, tmp_path: Path) -> None:
    config = _factory(
        tmp_path, "  n[01-40]: {host: 10.0.0.1}\n  l1: {transport: local}\n", "ssh:\n  identity_file: k\n"
    )
    result = cli("-c", config, "config", "validate")
    assert result.exit_code == 0, result.stderr
    [warning] = [line for line in result.stderr.splitlines() if "identity_file" in line]
    assert warning == (
        f"warning: {config}: identity_file {tmp_path / 'k'} of n[01-40] (40) is not a file that can be read: "
        "their logins will fail; correct the path (under ssh: or the node's)."
    )


def test_a_readable_key_and_a_local_node_say_nothing(cli, tmp_path: Path) -> None:
    (tmp_path / "k").write_text("key\n")
    config = _factory(tmp_path, "  n1: {host: 10.0.0.1, identity_file: k}\n  l1: {transport: local}\n")
    result = cli("-c", config, "config", "validate")
    assert result.exit_code == 0, result.stderr
    assert "identity_file" not in result.stderr


def test_a_node_s_own_missing_key_is_said_with_its_name(cli, tmp_path: Path) -> None:
    (tmp_path / "k").write_text("key\n")
    config = _factory(
        tmp_path, "  n1: {host: 10.0.0.1, identity_file: gone}\n  n2: {host: 10.0.0.2, identity_file: k}\n"
    )
    result = cli("-c", config, "config", "validate")
    assert f"identity_file {tmp_path / 'gone'} of n1 is not a file" in result.stderr
    assert "of n2" not in result.stderr
