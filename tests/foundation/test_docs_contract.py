"""The docs say what the product does: their examples and field lists, checked against the code and its output.

A docs-as-contract review ran every example verbatim and found pages that had drifted from the code: a stale rule for
numbers in factory.yaml, a help text promising jobs that do not exist yet, field lists missing fields the commands
print. Each test here ties one such statement to what the code does, so the page moves when the code does.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml

from factoryctl.config import parse_config
from factoryctl.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def page(name: str) -> str:
    """A page of docs/ (or README.md), its lines joined: wrapping never splits what a test looks for."""
    path = REPO / name if name == "README.md" else REPO / "docs" / name
    return " ".join(path.read_text().split())


def paragraph(name: str, start: str) -> str:
    """The paragraph of page `name` that begins with `start`, its lines joined."""
    text = (REPO / "docs" / name).read_text()
    return " ".join(text[text.index(start) :].split("\n\n", 1)[0].split())


def command_paths() -> set[str]:
    """Every command of the CLI, without the leading `factoryctl` (`nodes list`, `gpus` ...)."""
    from factoryctl.cli.app import app

    paths: set[str] = set()

    def walk(command: object, prefix: str) -> None:
        children = getattr(command, "commands", None)
        if not children:
            paths.add(prefix.strip())
            return
        for name, child in children.items():
            walk(child, f"{prefix} {name}")

    walk(typer.main.get_command(app), "")
    return paths


NUMBERS = [  # (as factory-yaml.md quotes it, a file holding it, the value read or None for a config error)
    ('`interval_s: "10"`', 'controller: {interval_s: "10"}', 10.0),
    ("`interval_s: 1e1`", "controller: {interval_s: 1e1}", 10.0),
    ("`connect_timeout_s: 1e3`", "ssh: {connect_timeout_s: 1e3}", 1000.0),
    ("`interval_s: 1e9`", "controller: {interval_s: 1e9}", None),
    ('`port: "22"`', 'ssh: {port: "22"}', None),
    ("`port: 22.0`", "ssh: {port: 22.0}", None),
    ("`port: true`", "ssh: {port: true}", None),
    ('`gpus: "2"`', 'nodes: {a: {gpus: "2"}}', None),
    ("`sim: {seed: 1e1}`", "nodes: {a: {sim: {seed: 1e1}}}", None),
]


@pytest.mark.parametrize(("quoted", "text", "value"), NUMBERS, ids=[n[0] for n in NUMBERS])
def test_the_numbers_rule_of_factory_yaml_md_holds(quoted, text, value):
    """Quantities take numbers YAML reads as text; ports, GPU counts and seeds stay strict, as the page says."""
    rule = paragraph("factory-yaml.md", "- **Numbers**")
    assert quoted in rule
    if value is None:
        with pytest.raises(ConfigError):
            parse_config(text if "nodes" in text else f"{text}\nnodes: {{a: {{}}}}\n", Path("f.yaml"))
        return
    config = parse_config(f"{text}\nnodes: {{a: {{}}}}\n", Path("f.yaml"))
    section, key = text.split(":", 1)[0], quoted.strip("`").split(":", 1)[0]
    assert getattr(getattr(config.settings, section), key) == value


def test_the_reference_example_is_not_the_quick_start_factory(cli):
    """Trying the reference example must not reset the quick start's simulated nodes: another `name`."""
    text = (REPO / "docs" / "factory-yaml.md").read_text()
    example = yaml.safe_load(text.split("## The smallest useful shape", 1)[1].split("```yaml\n", 1)[1].split("```")[0])
    written = cli("init", "-")
    assert written.exit_code == 0
    assert example["name"] != yaml.safe_load(written.stdout)["name"]
    assert example["state_dir"].endswith(f"/factoryctl/{example['name']}")  # its comment says: the default
    assert "The simulated state is per factory name" in page("simulated-driver.md")


def test_the_root_help_names_jobs_now_that_they_run(cli):
    """It said running jobs came in a later release, and once promised them before they existed."""
    shown = " ".join(cli("--help").stdout.split())
    assert "jobs" in {path.split()[0] for path in command_paths()}
    assert "gang jobs" in shown
    assert "later release" not in shown


def _backticked(text: str) -> list[str]:
    return re.findall(r"`([a-z][a-z /]*)`", text)


def _spelled_out(mention: str) -> list[str]:
    """`power plan / apply / status` is three commands; `sched simulate` one."""
    words = mention.split(" / ")
    noun = words[0].split()[0]
    return [words[0], *(f"{noun} {verb}" for verb in words[1:])]


def test_readme_says_which_commands_exist_today_and_which_come_later():
    """What README names as today's commands exists; what it names for a later release (if any) does not, yet.

    `power diff` and `power report`, the last commands DESIGN.md listed, are built: they are today's.
    """
    readme = (REPO / "README.md").read_text()
    opening = readme.split("## Two commands", 1)[0]
    today = " ".join(opening.split("- **Today**", 1)[1].split("- **A later release**", 1)[0].split())
    later = " ".join(opening.split("- **A later release**", 1)[1].split()) if "- **A later release**" in opening else ""
    commands = command_paths()
    nouns = {path.split()[0] for path in commands}
    named_today = [c for m in _backticked(today) for c in _spelled_out(m)]
    for command in named_today:
        assert command in commands or (command in nouns and " " not in command), command
    assert {"power diff", "power report"} <= set(named_today)
    announced = [c for m in _backticked(later) for c in _spelled_out(m)]
    assert not [c for c in announced if c in commands], "built now: move it to Today"


def _without_parentheses(text: str) -> str:
    return re.sub(r"\s*\([^()]*\)", "", " ".join(text.split()))


def test_pages_give_the_exit_code_precedence_of_the_code():
    from factoryctl.errors import _SEVERITY

    order = ", then ".join(str(int(code)) for code in sorted(_SEVERITY, key=_SEVERITY.__getitem__, reverse=True))
    assert order == "3, then 2, then 4, then 124, then 1"
    for name in ("architecture.md", "cli.md", "README.md"):
        assert order in _without_parentheses(page(name)), name


def test_architecture_md_lists_added_commands_that_exist_and_none_missing():
    text = page("architecture.md")
    added = text.split("**Commands the brief did not list**", 1)[1].split(" - ", 1)[0]
    commands = command_paths()
    for mention in ("sched explain", "controller status", "completion"):
        assert f"`{mention}`" in added, mention
        assert mention in commands, mention
    for mention in ("power diff", "power report"):  # the last the brief listed: built now, none is missing
        assert mention in commands, mention
    assert "that do not exist yet" not in text
    for contract in ("`-o csv`", "`config`", "`usage`", "`interrupted`", "`sim inject --hot`", "141", "143"):
        assert contract in text, contract


def test_ssh_md_exec_example_runs_on_a_simulated_node(cli):
    """The exec example of ssh.md runs where the docs teach you to try it: on simulated nodes too."""
    text = (REPO / "docs" / "ssh.md").read_text()
    block = text.split("## Running commands: `factoryctl exec`", 1)[1].split("```console\n", 1)[1].split("```")[0]
    argv = block.splitlines()[0].removeprefix("$ factoryctl ").split()
    assert argv[:2] == ["exec", "@rack-a"]
    shown = block.splitlines()[-1]
    assert cli("init").exit_code == 0
    result = cli("exec", "all", *argv[2:])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[-1] == shown


def test_ssh_md_lists_every_field_of_nodes_trust_json():
    from factoryctl.cli.nodes_trust import _trust_item
    from factoryctl.model.inventory import NodeSpec
    from factoryctl.transport.known_hosts import HostKeyStatus
    from factoryctl.transport.ssh_handshake import ServerKey

    key = ServerKey("127.0.0.1", 22, "ssh-ed25519", b"k", HostKeyStatus.unknown, ())
    fields = list(_trust_item(NodeSpec(name="n1", host="127.0.0.1"), key))
    listed = page("ssh.md").split("`-o json` lists `{", 1)[1].split("}`", 1)[0]
    assert [f.strip() for f in listed.split(",")] == fields


def test_cli_md_lists_every_field_of_events_and_audit(cli):
    assert cli("init").exit_code == 0
    assert cli("nodes", "drain", "ws", "-r", "fan").exit_code == 0
    assert cli("power", "set", "ws/0", "--watts", "500").exit_code == 0
    for command, start in (("events", "**Event fields**"), ("audit", "**Audit fields**")):
        result = cli(command, "-o", "json")
        assert result.exit_code == 0, result.stderr
        items = result.json()["items"]  # type: ignore[index]
        assert items, command
        described = paragraph("cli.md", start)
        assert [f for f in items[0] if f"`{f}`" not in described] == [], command


def test_cli_md_names_the_commands_that_print_a_document_and_their_fields(cli, tmp_path):
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
    prices = tmp_path / "p.csv"
    prices.write_text(f"timestamp_utc,price_per_mwh\n{now:%Y-%m-%dT%H:%M:%SZ},50\n")
    assert cli("init").exit_code == 0
    described = paragraph("cli.md", "**Documents.**")
    for argv in (("config", "show"), ("controller", "status"), ("price", "show", "--prices", str(prices))):
        document = cli(*argv, "-o", "json").json()
        assert isinstance(document, dict), argv
        assert "items" not in document, argv
        named = described.split(f"`{' '.join(argv[:2])}`", 1)[1].split(";", 1)[0]
        assert [key for key in document if key not in named] == [], argv
    assert "`power simulate`" in described


def test_the_shim_and_the_rank_document_their_default_factory(tmp_path):
    """Without `--factory` the shim reads factory `default`, which simulated-driver.md must say."""
    shown = subprocess.run(
        [sys.executable, "-m", "factoryctl.sim.smi", "--node", "n1", "--state-dir", str(tmp_path), "-L"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert shown.stdout.startswith("GPU 0:")
    assert (tmp_path / "default" / "n1.json").exists()
    text = page("simulated-driver.md")
    assert "**`--factory NAME` defaults to `default`**" in text
    assert "left out it is `$FACTORYCTL_SIM_FACTORY`, else `default`" in text
