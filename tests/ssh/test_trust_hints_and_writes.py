"""`nodes trust` edge cases against a real sshd: one folded hint for many nodes with unknown keys, a known_hosts
that cannot be written as one sentence (not "unexpected error: FileNotFoundError"), and what `--yes` reports."""

from __future__ import annotations

from factoryctl.cli.render import report_node_errors

TRUST = "if the fingerprint is right, record it with `factoryctl nodes trust {node}`."


def test_a_hint_naming_each_node_is_given_once_for_their_folded_set(capsys):
    errors = [
        {
            "node": f"n{n:02d}",
            "error": "host_key",
            "message": "unknown host key",
            "hint": TRUST.format(node=f"n{n:02d}"),
        }
        for n in range(1, 31)
    ]
    errors.append({"node": "n1", "error": "host_key", "message": "unknown host key", "hint": TRUST.format(node="n1")})
    errors.append({"node": "x", "error": "dns", "message": "cannot resolve x", "hint": "check n01's name."})
    report_node_errors(errors)
    assert capsys.readouterr().err.splitlines() == [
        "factoryctl: n[1,01-30] (31): unknown host key",
        "factoryctl: x: cannot resolve x",
        "hint: if the fingerprint is right, record it with `factoryctl nodes trust n[1,01-30]`.",
        "hint: check n01's name.",
    ]


def test_thirty_nodes_with_unknown_keys_get_one_trust_hint(cli, tmp_path, sshd):
    config = sshd.write_factory(tmp_path / "factory.yaml", tmp_path / "kh", "  n[01-30]: {host: 127.0.0.1}\n")
    result = cli("--config", config, "exec", "all", "--", "true")
    assert result.exit_code == 4
    hints = [line for line in result.stderr.splitlines() if line.startswith("hint:")]
    assert hints == ["hint: if the fingerprint is right, record it with `factoryctl nodes trust n[01-30]`."]


def test_a_known_hosts_that_cannot_be_written_is_one_sentence(cli, tmp_path, sshd):
    config = sshd.write_factory(tmp_path / "factory.yaml", "/proc/kh", "  n01: {host: 127.0.0.1}\n")
    result = cli("--config", config, "nodes", "trust", "n01", "--yes")
    assert result.exit_code == 1
    assert "unexpected" not in result.stderr
    assert "Traceback" not in result.stderr
    assert "factoryctl: cannot write the known_hosts file /proc/kh: No such file or directory." in result.stderr
    assert "hint: set `known_hosts:`" in result.stderr


def test_trust_yes_shows_the_keys_as_trusted_and_counts_what_it_wrote(cli, tmp_path, sshd):
    kh = tmp_path / "kh"
    config = sshd.write_factory(tmp_path / "factory.yaml", kh, "  n[1-2]: {host: 127.0.0.1}\n")
    result = cli("--config", config, "nodes", "trust", "all", "--yes")
    assert result.exit_code == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[1:3]]
    assert [(row[0], row[-1]) for row in rows] == [("n1", "trusted"), ("n2", "trusted")]
    assert "recorded 1 host key(s) for 2 nodes" in result.stderr  # both nodes are one sshd: one line written
    assert len(kh.read_text().splitlines()) == 1
