"""factory.yaml: node-set expansion, groups, targets, and errors that name file:line:col (exit 3)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from factoryctl.config import parse_config, parse_gpu_target
from factoryctl.errors import ConfigError, ExitCode, UsageError

DESIGN_EXAMPLE = """\
name: lab
ssh:
  user: root
  identity_file: ~/.ssh/id_ed25519
  known_hosts: ~/.ssh/known_hosts
  port: 22
nodes:
  gpu01: {host: 10.0.0.11, rack: a, labels: {pool: train}}
  gpu[02-04]: {rack: a}
  sim[1-2]: {host: 127.0.0.1, port: 2222, sim: h100-sxm, gpus: 8}
  ws: {transport: local, sim: {profile: a100-sxm4-80gb, seed: 7, unsupported: [ecc_uncorrected]}}
groups:
  rack-a: gpu[01-04]
"""


@pytest.fixture
def lab():
    return parse_config(DESIGN_EXAMPLE, Path("factory.yaml"))


def test_design_example_expands_node_sets(lab):
    assert list(lab.nodes) == ["gpu01", "gpu02", "gpu03", "gpu04", "sim1", "sim2", "ws"]
    assert lab.nodes["gpu03"].host == "gpu03"
    assert lab.nodes["gpu03"].rack == "a"
    assert lab.nodes["gpu01"].labels == {"pool": "train"}
    assert lab.nodes["sim2"].port == 2222
    assert lab.nodes["sim2"].sim is not None
    assert lab.nodes["sim2"].sim.gpus == 8
    assert lab.nodes["ws"].transport == "local"
    assert lab.nodes["ws"].sim.unsupported == ("ecc_uncorrected",)
    assert lab.nodes["gpu01"].transport == "ssh"


def test_transport_is_never_inferred_from_address(lab):
    assert lab.nodes["sim1"].host == "127.0.0.1"
    assert lab.nodes["sim1"].transport == "ssh"


def test_state_dir_defaults_under_xdg_state(lab, tmp_path):
    assert lab.state_dir.parts[-2:] == ("factoryctl", "lab")
    assert lab.store_path.name == "factory.db"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("all", ["gpu01", "gpu02", "gpu03", "gpu04", "sim1", "sim2", "ws"]),
        ("@rack-a", ["gpu01", "gpu02", "gpu03", "gpu04"]),
        ("@rack-a!gpu03", ["gpu01", "gpu02", "gpu04"]),
        ("gpu[01-02],ws", ["gpu01", "gpu02", "ws"]),
        ("gpu[01-99]", ["gpu01", "gpu02", "gpu03", "gpu04"]),
    ],
)
def test_targets(lab, target, expected):
    assert [n.name for n in lab.resolve_target(target)] == expected


@pytest.mark.parametrize(
    ("target", "fragment"),
    [("@nope", "unknown group `@nope`"), ("zzz[1-3]", "matches no node"), ("gpu[01-", "not a valid node set")],
)
def test_bad_targets_are_usage_errors(lab, target, fragment):
    with pytest.raises(UsageError) as caught:
        lab.resolve_target(target)
    assert fragment in caught.value.message
    assert caught.value.exit_code == ExitCode.USAGE
    assert caught.value.hint


def test_gpu_target():
    assert parse_gpu_target("gpu03/0-3") == ("gpu03", [0, 1, 2, 3])
    assert parse_gpu_target("gpu03/1,5") == ("gpu03", [1, 5])
    assert parse_gpu_target("@rack-a") == ("@rack-a", None)
    with pytest.raises(UsageError):
        parse_gpu_target("gpu03/x")
    with pytest.raises(UsageError, match="the range `3-1` runs backwards"):
        parse_gpu_target("gpu03/3-1")


@pytest.mark.parametrize(
    ("text", "position", "fragment", "hint"),
    [
        ("nodes:\n  a: {hots: x}\n", "f.yaml:2:7", "unknown key `nodes.a.hots`", "did you mean `host`?"),
        ("nodse: {}\n", "f.yaml:1:1", "unknown key `nodse`", "did you mean `nodes`?"),
        ("nodes:\n  a: {port: abc}\n", "f.yaml:2:13", "`nodes.a.port`", "`port`: SSH port"),
        ("nodes:\n  a:\n    sim: {profile: h100-sxm, sed: 1}\n", "f.yaml:3:30", "`nodes.a.sim.sed`", "`seed`"),
        ("nodes:\n  a: {sim: h9000}\n", "f.yaml:2:12", "`nodes.a.sim`", "`sim`: A profile name"),
        ("name: x\n  bad: [\n", "f.yaml:2:6", "malformed YAML", "indentation"),
        ("nodes:\n  a[1-: {}\n", "f.yaml:2:3", "not a valid node set", "gpu[01-16]"),
        ("nodes:\n  a[1-2]: {}\n  a2: {}\n", "f.yaml:3:3", "node `a2` is defined twice", "one key"),
        ("groups: {x: '@y'}\nnodes: {a: }\n", "f.yaml:1:13", "unknown group `@y`", "groups"),
        ("groups: {x: b}\nnodes: {a: }\n", "f.yaml:1:13", "`b` matches no node", "defined under `nodes:`"),
        ("controller: {interval_s: -1}\n", "f.yaml:1:26", "`controller.interval_s`", "`interval_s`: Telemetry"),
        ("- just\n- a list\n", "f.yaml:1:1", "must be a mapping", "init"),
        ("nodes:\n  n[1-100000000]: {}\n", "f.yaml:2:3", "names 100,000,000 nodes", "gpu[01-16]"),
        ("nodes:\n  a[1-60000]: {}\n  b[1-60000]: {}\n", "f.yaml:3:3", "past 100,000 nodes", "bounds"),
        ("nodes:\n  all: {}\n", "f.yaml:2:3", "node name `all` is reserved", "rename the node"),
        ("nodes:\n  n1/0: {}\n", "f.yaml:2:3", "`n1/0` cannot be written in a TARGET", "rename"),
        ("nodes:\n  'a b': {}\n", "f.yaml:2:3", "`a b` cannot be written", "rename"),
        ("nodes: {a: }\ngroups:\n  all: a\n", "f.yaml:3:3", "group name `all` is reserved", "`@name`"),
        ("nodes: {a: }\ngroups:\n  r!a: a\n", "f.yaml:3:3", "group name `r!a` cannot be written", "`@name`"),
        ("nodes:\n  a: {sim: h100-sxm, gpus: 0}\n", "f.yaml:2:28", "needs at least 1 GPU", "1-64"),
        ("nodes:\n  n1: {transport: local}\n  n1: {}\n", "f.yaml:3:3", "`nodes.n1` is given twice", "last"),
        ("name: a\nnodes: {}\nname: b\n", "f.yaml:3:1", "`name` is given twice", "keep one"),
        ("nodes:\n  a: {labels: {x: '1', x: '2'}}\n", "f.yaml:2:24", "`nodes.a.labels.x` is given", "keep"),
    ],
)
def test_config_errors_name_file_line_col(text, position, fragment, hint):
    with pytest.raises(ConfigError) as caught:
        parse_config(text, Path("f.yaml"))
    error = caught.value
    assert error.message.startswith(position + ":"), error.message
    assert fragment in error.message
    assert hint in (error.hint or "")
    assert error.exit_code == ExitCode.CONFIG


def test_empty_sections_take_defaults():
    config = parse_config("name: x\npower:\nnodes:\n  a:\n", Path("f.yaml"))
    assert config.settings.power.facility_budget_kw is None
    assert config.nodes["a"].host == "a"


def test_discovery_order(tmp_path, monkeypatch, cli):
    env_file = tmp_path / "env.yaml"
    env_file.write_text("name: fromenv\nnodes: {a: {}}\n")
    Path("factory.yaml").write_text("name: fromcwd\nnodes: {a: {}}\n")
    assert cli("config", "locate").stdout.strip() == str(Path.cwd() / "factory.yaml")
    monkeypatch.setenv("FACTORYCTL_CONFIG", str(env_file))
    assert cli("config", "locate").stdout.strip() == str(env_file)
    explicit = tmp_path / "x.yaml"
    assert cli("--config", str(explicit), "config", "locate").stdout.strip() == str(explicit)


def test_xdg_config_dir_is_last(cli, isolated_home):
    xdg = isolated_home / ".config" / "factoryctl" / "factory.yaml"
    xdg.parent.mkdir(parents=True)
    xdg.write_text("name: xdg\nnodes: {a: {}}\n")
    result = cli("config", "show", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["name"] == "xdg"


def test_reference_doc_matches_the_schema():
    from factoryctl.config_reference import render_reference

    doc = (Path(__file__).resolve().parents[2] / "docs" / "factory-yaml.md").read_text()
    generated = doc.split("<!-- reference:start -->\n", 1)[1].split("<!-- reference:end -->", 1)[0]
    assert generated.strip() == render_reference().strip()


def test_unsupported_names_must_be_gpu_fields():
    with pytest.raises(ConfigError) as caught:
        parse_config("nodes:\n  a: {sim: {unsupported: [ecc_uncorected]}}\n", Path("f.yaml"))
    assert "did you mean 'ecc_uncorrected'?" in caught.value.message
    assert caught.value.message.startswith("f.yaml:2:")


def test_gpus_zero_is_kept_on_a_node_without_sim_and_disagreeing_with_sim_gpus_is_refused():
    config = parse_config("nodes:\n  a: {gpus: 0}\n  b: {sim: {gpus: 2}, gpus: 2}\n", Path("f.yaml"))
    assert config.nodes["a"].sim is None
    assert config.nodes["b"].sim is not None
    assert config.nodes["b"].sim.gpus == 2
    with pytest.raises(ConfigError, match=r"`gpus: 0` and `sim.gpus: 2` disagree"):  # was: sim.gpus won silently
        parse_config("nodes:\n  b: {sim: {gpus: 2}, gpus: 0}\n", Path("f.yaml"))


def test_inventory_keys_apply_node_set_operators():
    """A key is a whole ClusterShell node set: `!` excludes, `&` intersects, `^` is the symmetric difference."""
    text = "nodes:\n  gpu[01-04]!gpu03: {}\n  n[1-4]&n[2-3]: {}\n  m[1-3]^m[2-4]: {}\n  gpu03: {}\n"
    config = parse_config(text, Path("f.yaml"))
    assert list(config.nodes) == ["gpu01", "gpu02", "gpu04", "n2", "n3", "m1", "m4", "gpu03"]


def test_a_factory_yaml_that_is_not_utf8_is_a_config_error_naming_the_line(cli, tmp_path):
    path = tmp_path / "factory.yaml"
    path.write_bytes("name: lab\nnodes:\n  caf\xe9: {transport: local}\n".encode("latin-1"))
    result = cli("--config", str(path), "nodes", "list")
    assert result.exit_code == ExitCode.CONFIG
    assert f"{path}:3: the factory.yaml is not UTF-8 text (byte 0xe9)." in result.stderr
    assert "hint: save it as UTF-8" in result.stderr


def test_validate_says_what_applies_a_power_policy(cli, tmp_path):
    """A policy in factory.yaml was accepted silently: the note says who applies it, by `power.interval`."""
    path = tmp_path / "factory.yaml"
    path.write_text("nodes: {a: {}}\npower: {policy: /etc/factoryctl/policy.yaml}\n")
    result = cli("--config", str(path), "config", "validate")
    assert result.exit_code == 0
    assert (
        "note: power.policy (/etc/factoryctl/policy.yaml) is applied by a running controller every power.interval"
        " (5m) and at each price interval's start, and by `factoryctl power apply` (docs/power.md)." in result.stderr
    )
    path.write_text("nodes: {a: {}}\npower: {policy: /etc/factoryctl/policy.yaml, interval: 0s}\n")
    assert (
        "note: power.policy (/etc/factoryctl/policy.yaml) is applied when `factoryctl power apply` runs"
        " (from cron: docs/power.md); power.interval is 0s, so the controller does not apply it."
        in cli("--config", str(path), "config", "validate").stderr
    )
    plain = tmp_path / "plain.yaml"
    plain.write_text("nodes: {a: {}}\n")
    assert "note:" not in cli("--config", str(plain), "config", "validate").stderr


def test_config_show_keeps_each_nodes_gpus(cli, tmp_path):
    config = tmp_path / "g.yaml"
    config.write_text("nodes:\n  g1: {gpus: 4}\n  g2: {}\n  s1: {sim: {profile: h100-sxm, gpus: 2}}\n")
    shown = cli("-c", str(config), "config", "show", "-o", "json")
    assert shown.exit_code == 0, shown.stderr
    nodes = shown.json()["nodes"]  # type: ignore[index]
    assert nodes["g1"]["gpus"] == 4
    assert nodes["g2"]["gpus"] is None
    assert nodes["s1"]["gpus"] == 2  # a simulated node has its simulated GPUs


def _limited_memory() -> None:
    """In the child: a 1 GiB address space, so a build that reads /dev/zero fails at once instead of eating RAM."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


@pytest.mark.parametrize("kind", ["device", "directory"])
def test_a_config_path_that_is_not_a_file_or_pipe_is_refused_before_reading(tmp_path, kind):
    config = tmp_path / "factory.yaml"
    if kind == "device":
        config.symlink_to("/dev/zero")  # read for ever: config validate and every TAB hung
    else:
        config.mkdir()
    # a child process, bounded: without the check it would hang or fill memory, not fail
    done = subprocess.run(
        [sys.executable, "-m", "factoryctl", "-c", str(config), "config", "validate"],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limited_memory,
        check=False,
    )
    assert done.returncode == 3
    assert done.stderr == (
        f"factoryctl: {config} is not a regular file, so it is not read as factory.yaml.\n"
        "hint: pass --config FILE with your factory.yaml, or run `factoryctl init` to write one.\n"
    )


def test_a_config_from_a_pipe_is_read_and_completion_never_waits_on_one(tmp_path):
    """`-c <(sops -d factory.yaml)` and `-c /dev/stdin` are pipes: read them (a review found them refused); a TAB
    must not block on a pipe that has no writer, nor eat what it carries."""
    from test_completion import complete_bash

    piped = subprocess.run(
        [sys.executable, "-m", "factoryctl", "-c", "/dev/stdin", "config", "validate"],
        input="nodes: {n1: {transport: local}}\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (piped.returncode, piped.stdout) == (0, "/dev/stdin: ok, 1 node, 0 groups\n"), piped.stderr
    fifo = tmp_path / "factory.yaml"
    os.mkfifo(fifo)  # no writer: opening it would block
    assert complete_bash(f"factoryctl -c {fifo} nodes ") == ["list", "trust", "check", "drain", "resume"]


def test_config_locate_of_a_missing_file_exits_3_and_says_how_to_write_it(cli, tmp_path):
    missing = tmp_path / "x.yaml"
    result = cli("--config", str(missing), "config", "locate")
    assert result.exit_code == 3
    assert result.stdout.strip() == str(missing)  # still printed: it is where the other commands look
    assert f"hint: `factoryctl init {missing}` writes an example there." in result.stderr
    missing.write_text("nodes: {a: {}}\n")
    found = cli("--config", str(missing), "config", "locate")
    assert (found.exit_code, found.stderr) == (0, "from --config (exists)\n")


def test_a_recursive_alias_in_factory_yaml_is_a_config_error_not_a_crash(tmp_path):
    """The repeated-key walk followed `x: &a [*a]` forever (RecursionError, "unexpected error", exit 1)."""
    import subprocess
    import sys

    path = tmp_path / "f.yaml"
    path.write_text("nodes: {n1: {transport: local}}\nx: &a [*a]\n")
    argv = [sys.executable, "-m", "factoryctl", "--config", str(path), "config", "validate"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr
    assert "unexpected error" not in result.stderr


def test_a_pipe_that_never_ends_is_read_up_to_a_bound(tmp_path):
    """`-c <(yes 'a: b')` read until memory ran out (MemoryError, exit 1)."""
    yes = subprocess.Popen(["yes", "a: b"], stdout=subprocess.PIPE)
    assert yes.stdout is not None
    try:
        done = subprocess.run(
            [sys.executable, "-m", "factoryctl", "-c", "/dev/stdin", "config", "validate"],
            stdin=yes.stdout,
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=_limited_memory,
            check=False,
        )
    finally:
        yes.kill()
        yes.wait()
        yes.stdout.close()
    assert done.returncode == 3, done.stderr
    assert "holds more than 64 MiB, far more than any factory.yaml." in done.stderr


def test_config_show_resolves_the_ssh_paths_as_the_nodes_use_them(cli, tmp_path):
    """`ssh.identity_file` and `ssh.known_hosts` were shown as written while the nodes' copies were resolved."""
    folder = tmp_path / "f"
    folder.mkdir()
    factory = folder / "factory.yaml"
    factory.write_text(
        "name: x\nssh: {identity_file: ../id_ed25519, known_hosts: ../known_hosts}\nstate_dir: st\n"
        "nodes:\n  n1: {host: 127.0.0.1}\n"
    )
    shown = cli("--config", str(factory), "config", "show", "-o", "json").json()
    assert shown["ssh"]["identity_file"] == shown["nodes"]["n1"]["identity_file"] == f"{folder}/../id_ed25519"
    assert shown["ssh"]["known_hosts"] == shown["nodes"]["n1"]["known_hosts"] == f"{folder}/../known_hosts"
    assert shown["state_dir"] == f"{folder}/st"
