"""Review 13: option values, factory.yaml values and TARGETs that were taken for something else, or crashed.

A `--since` of 17 digits overflowed SQLite (exit 1), a unitless `90` was seconds, a relative `state_dir` moved
with the current directory, `n01/0-` was GPU 0, `n[01-08/2]` was read as `n[01-08` plus GPUs `2]`, and two GPU
counts for one node disagreed silently. Each is now a usage error (exit 2) or a config error (exit 3) naming the
bad part, or the meaning a user would read.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from factoryctl import targets
from factoryctl.cli.telemetry import parse_when, time_window
from factoryctl.config import load_config, parse_config
from factoryctl.errors import ConfigError, ExitCode, UsageError
from factoryctl.targets import parse_gpu_target, resolve_node_names

HUGE = "99999999999999999d"


def write_factory(directory: Path, body: str = "") -> Path:
    """A factory.yaml with one local simulated node, its store under `directory`, plus `body`."""
    path = directory / "factory.yaml"
    nodes = "nodes:\n  a: {transport: local, sim: {profile: h100-sxm, gpus: 1}}\n"
    path.write_text(f"name: bounds13\nstate_dir: {directory / 'state'}\n{nodes}{body}")
    return path


# ------------------------------------------------------------------------------------------ --since and --until


@pytest.mark.parametrize(
    "args",
    [
        ("events", "--since", HUGE),
        ("audit", "--since", HUGE),
        ("telemetry", "history", "all", "--since", HUGE),
        ("telemetry", "energy", "--since", HUGE),
        ("telemetry", "export", "--since", HUGE),
        ("events", "--since", "9" * 400 + "d"),  # infinity seconds
    ],
)
def test_a_since_too_far_back_is_a_usage_error_not_an_overflow(cli, tmp_path, args):
    result = cli("--config", str(write_factory(tmp_path)), *args)
    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert "reaches back before the year 1" in result.stderr
    assert "hint: write a shorter duration" in result.stderr
    assert "unexpected error" not in result.stderr
    assert result.stdout == ""  # `telemetry export` printed its CSV header before failing


@pytest.mark.parametrize("command", ["events", "audit"])
def test_a_limit_past_any_store_is_a_usage_error_not_an_overflow(cli, tmp_path, command):
    result = cli("--config", str(write_factory(tmp_path)), command, "--limit", "1" + "0" * 20)
    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert "--limit" in result.stderr
    assert "unexpected error" not in result.stderr


def test_the_earliest_iso_time_is_still_taken():
    assert parse_when("0001-01-01T00:00Z", time.time()) == datetime(1, 1, 1, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize("text", ["90", "3600", "1.5"])
def test_a_duration_without_a_unit_is_refused_naming_the_units(cli, tmp_path, text):
    result = cli("--config", str(write_factory(tmp_path)), "events", "--since", text)
    assert result.exit_code == ExitCode.USAGE
    assert f"--since `{text}` has no unit" in result.stderr
    assert f"e.g. --since {text}s or --since {text}m" in result.stderr


def test_compound_durations_and_lowercase_rfc3339_times_are_read():
    """`--since 1h30m` and `2026-11-24t01:00:00z` (RFC 3339 allows lower case) were refused, exit 2."""
    now = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc).timestamp()
    assert parse_when("1h30m", now) == now - 5400
    assert parse_when("2d12h", now) == now - 216000
    expected = datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc).timestamp()
    assert parse_when("2026-11-24t01:00:00z", now) == expected
    assert parse_when("2026-11-24T01:00:00Z", now) == expected
    with pytest.raises(UsageError, match="neither a duration nor an ISO-8601 time"):
        parse_when("1h30", now)


def test_an_eight_digit_since_is_the_iso_date_it_reads_as_not_seconds():
    now = time.time()
    assert parse_when("20261122", now) == datetime(2026, 11, 22, tzinfo=timezone.utc).timestamp()
    with pytest.raises(UsageError, match="has no unit"):
        parse_when("90", now)


def test_a_duration_of_another_scripts_digits_is_refused():
    with pytest.raises(UsageError, match="neither a duration nor an ISO-8601 time"):
        parse_when("\u0663h", time.time())  # Arabic-Indic 3


def test_an_empty_window_names_now_as_the_until_not_none():
    with pytest.raises(UsageError) as caught:
        time_window("2999-01-01", None)
    assert caught.value.message.startswith("now (the default --until) is not after --since 2999-01-01")
    assert "None" not in caught.value.message


# ------------------------------------------------------------------------------------------ factory.yaml values


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("controller: {raw_retention: 90}", "'90' has no unit; write 90s, 90m, 90h or 90d"),
        ('controller: {raw_retention: "90"}', "'90' has no unit; write 90s, 90m, 90h or 90d"),
        ("scheduler: {default_walltime: 1.5}", "'1.5' has no unit; write 1.5s, 1.5m, 1.5h or 1.5d"),
        ("controller: {rollup_retention: true}", "must be a duration such as 90s"),
    ],
)
def test_a_factory_yaml_duration_without_a_unit_is_refused_naming_the_units(line, shown):
    with pytest.raises(ConfigError) as caught:
        parse_config(line + "\n", Path("f.yaml"))
    assert shown in caught.value.message
    assert "valid string" not in caught.value.message


def test_a_factory_yaml_duration_with_a_unit_is_kept():
    config = parse_config("controller: {raw_retention: 90s}\nscheduler: {default_walltime: 2h}\n")
    assert config.settings.controller.raw_retention == "90s"
    assert config.default_walltime_s() == 7200


def test_rack_and_label_values_yaml_reads_as_numbers_are_their_written_text():
    text = "nodes:\n  a: {rack: 12, labels: {gen: 05, ib: no, day: 2024-01-01, f: 1.50}}\n"
    node = parse_config(text, Path("f.yaml")).nodes["a"]
    assert node.rack == "12"
    assert node.labels == {"gen": "05", "ib": "no", "day": "2024-01-01", "f": "1.50"}


def test_disagreeing_gpu_counts_are_refused_naming_both():
    text = "nodes:\n  a: {transport: local, sim: {profile: h100-sxm, gpus: 4}, gpus: 8}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, Path("f.yaml"))
    assert caught.value.message == "f.yaml:2:66: `nodes.a`: `gpus: 8` and `sim.gpus: 4` disagree."
    same = "nodes:\n  a: {transport: local, sim: {profile: h100-sxm, gpus: 4}, gpus: 4}\n"
    assert parse_config(same, Path("f.yaml")).nodes["a"].gpus == 4


# ------------------------------------------------------------------------------------------ relative paths


def test_relative_paths_in_factory_yaml_are_taken_from_its_directory(tmp_path, monkeypatch):
    conf = tmp_path / "conf"
    (conf / "sub").mkdir(parents=True)
    (conf / "factory.yaml").write_text(
        "name: rel13\nstate_dir: st-rel\nssh: {known_hosts: keys/known, identity_file: keys/id}\n"
        "nodes:\n  a: {}\n  b: {identity_file: ../b.key}\n  c: {identity_file: ~/c.key}\n"
    )
    monkeypatch.chdir(conf / "sub")  # as a systemd controller (cwd /) or an operator elsewhere
    config = load_config(Path("../factory.yaml"))
    assert config.state_dir == conf / "st-rel"
    assert config.nodes["a"].known_hosts == str(conf / "keys/known")
    assert config.nodes["a"].identity_file == str(conf / "keys/id")
    assert config.nodes["b"].identity_file == str(conf / "../b.key")
    assert config.nodes["c"].identity_file == "~/c.key"


def test_the_store_of_a_relative_state_dir_is_found_from_another_directory(cli, tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "rel.yaml").write_text(
        "name: rel13b\nstate_dir: st-rel\nnodes:\n  a: {transport: local, sim: {profile: h100-sxm, gpus: 1}}\n"
    )
    monkeypatch.chdir(tmp_path)
    assert cli("-q", "-c", "rel.yaml", "telemetry", "collect").exit_code == 0
    assert (tmp_path / "st-rel" / "factory.db").is_file()
    monkeypatch.chdir(tmp_path / "sub")
    result = cli("-c", "../rel.yaml", "events", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert '"node_up"' in result.stdout


@pytest.mark.parametrize(("key", "value"), [("state_dir", '""'), ("state_dir", '" "'), ("ssh", '{known_hosts: ""}')])
def test_a_blank_path_is_refused_not_the_default(key, value):
    with pytest.raises(ConfigError, match="must not be empty; remove the key to use the default"):
        parse_config(f"{key}: {value}\n", Path("f.yaml"))


# ------------------------------------------------------------------------------------------ /GPUS and node sets


@pytest.mark.parametrize(
    ("target", "named"),
    [
        ("n01/0-", "`0-` is not a GPU index or range"),  # `0-$LAST` with LAST unset: not GPU 0
        ("n01/1_0", "`1_0` is not a GPU index or range"),
        ("n01/+1", "`+1` is not a GPU index or range"),
        ("n01/\u0663", "`\u0663` is not a GPU index or range"),
        ("n01/-1", "`-1` is not a GPU index or range"),
        ("n01/0,", "an element is empty"),
        ("n01/", "an element is empty"),
        ("n01/3-1", "the range `3-1` runs backwards"),
        pytest.param("n01/" + "9" * 5000, "is out of range", id="n01/5000-digits"),
    ],
)
def test_a_gpu_list_takes_ascii_digits_and_whole_ranges_only(target, named):
    with pytest.raises(UsageError) as caught:
        parse_gpu_target(target)
    assert named in caught.value.message


def test_a_gpu_list_of_indexes_ranges_and_spaces_still_parses():
    assert parse_gpu_target("n01/0-2, 5") == ("n01", [0, 1, 2, 5])


def test_power_set_refuses_an_open_range_and_changes_nothing(cli, tmp_path):
    result = cli("--config", str(write_factory(tmp_path)), "power", "set", "a/0-", "--watts", "400")
    assert result.exit_code == ExitCode.USAGE
    assert "`0-` is not a GPU index or range" in result.stderr


NODES = [f"n{i:02d}" for i in range(1, 9)]


def test_a_step_range_is_a_node_set_not_a_gpu_list():
    assert parse_gpu_target("n[01-08/2]") == ("n[01-08/2]", None)
    assert parse_gpu_target("n[01-08/2]/0") == ("n[01-08/2]", [0])
    assert resolve_node_names("n[01-08/2]", NODES, {}) == ["n01", "n03", "n05", "n07"]
    with pytest.raises(UsageError) as caught:
        resolve_node_names("n[01-08/2]/0", NODES, {})
    assert caught.value.hint == "write `n[01-08/2]` for the whole nodes."


def test_a_huge_range_matching_no_node_is_not_expanded(monkeypatch):
    expanded: list[int] = []
    real = targets.expand_node_set

    def counting(term: str) -> list[str]:
        names = real(term)
        expanded.append(len(names))
        return names

    monkeypatch.setattr(targets, "expand_node_set", counting)
    with pytest.raises(UsageError, match=r"`n\[1-100000\]` matches no node"):
        resolve_node_names("n[1-100000]", NODES, {})
    assert max(expanded, default=0) <= targets.MAX_FOLDED_NAMES  # was 100,000 names, twice (16.9 s)


def test_a_step_without_a_unit_is_refused_naming_the_units(cli, tmp_path):
    result = cli("--config", str(write_factory(tmp_path)), "telemetry", "history", "all", "--step", "60")
    assert result.exit_code == ExitCode.USAGE
    assert "--step: '60' has no unit; write 60s, 60m, 60h or 60d." in result.stderr


def test_a_range_bound_of_thousands_of_digits_is_a_usage_error_not_an_int_overflow():
    with pytest.raises(UsageError, match="has a number of 5,000 digits in its brackets"):
        resolve_node_names("n[1-" + "9" * 5000 + "]", NODES, {})
