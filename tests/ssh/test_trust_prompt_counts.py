"""`nodes trust` counts host keys the same way in its question and in its answer (a real sshd, a real prompt)."""

from __future__ import annotations


def test_the_prompt_counts_keys_as_they_are_recorded(cli, tmp_path, sshd):
    kh = tmp_path / "kh"
    config = sshd.write_factory(tmp_path / "factory.yaml", kh, "  n[1-2]: {host: 127.0.0.1}\n")
    result = cli("--config", config, "nodes", "trust", "all", stdin="y\n", tty=True)
    assert result.exit_code == 0, result.stderr
    # both nodes are one sshd: one key for two nodes, asked and recorded alike
    assert "Record 1 unknown host key for 2 nodes? [y/N]: " in result.stderr
    assert "recorded 1 host key(s) for 2 nodes" in result.stderr
    assert len(kh.read_text().splitlines()) == 1


def test_the_prompt_of_one_key_per_node_names_no_nodes(cli, tmp_path, sshd):
    config = sshd.write_factory(tmp_path / "factory.yaml", tmp_path / "kh", "  n1: {host: 127.0.0.1}\n")
    result = cli("--config", config, "nodes", "trust", "n1", stdin="n\n", tty=True)
    assert "Record 1 unknown host key? [y/N]: " in result.stderr
