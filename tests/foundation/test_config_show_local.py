"""`config show` shows a local node only what applies to it: no SSH port, login, key or known_hosts."""

from __future__ import annotations

import json
from pathlib import Path


def test_a_local_node_has_no_ssh_fields_and_an_ssh_node_keeps_them(cli, tmp_path: Path):
    config = tmp_path / "factory.yaml"
    config.write_text(
        "name: lab\nssh: {user: root, identity_file: ~/.ssh/id_ed25519}\nnodes:\n"
        "  ws: {transport: local, sim: {profile: h100-sxm, gpus: 2}}\n"
        "  gpu01: {host: 10.0.0.11, port: 2222}\n"
    )
    result = cli("--config", str(config), "config", "show", "-o", "json")
    assert result.exit_code == 0, result.stderr
    nodes = json.loads(result.stdout)["nodes"]
    assert not {"port", "user", "identity_file", "known_hosts"} & set(nodes["ws"])
    assert nodes["ws"]["transport"] == "local"
    assert (nodes["gpu01"]["port"], nodes["gpu01"]["user"]) == (2222, "root")
    assert nodes["gpu01"]["identity_file"] == "~/.ssh/id_ed25519"
    assert "port: 22\n" not in cli("--config", str(config), "config", "show").stdout.split("ws:")[1].split("gpu01:")[0]
