"""A power-policy file (YAML or JSON) read into a `Policy`, for the CLI's commands and the controller's power loop.

`power simulate`, `plan`, `apply`, `diff` and the controller's loop sit on different layers, so the reader lives
below both of them.

Every refusal is a usage error naming the file (and the line, when YAML can): a repeated key is refused rather than
silently replaced, and YAML 1.2's exponent floats (`1e2`) are numbers, as in JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from factoryctl.errors import UsageError

if TYPE_CHECKING:
    from yaml.nodes import Node

    from factoryctl.model.power import GpuPowerRange
    from factoryctl.power.policy.config import Policy

POLICY_HINT = (
    "a policy file is YAML: `policy: optimize` with `max_throughput_loss: 0.05`, or `policy: tiers` with"
    " `tiers: [{above_per_mwh: 100, cap_pct: 70}]` (cap_pct: % of the default limit)."
)


def parse_policy_file(path: Path, gpu: GpuPowerRange, max_loss: float | None, text: str | None = None) -> Policy:
    """The policy in a YAML or JSON file; every refusal is a usage error naming the file (and line, when YAML can).

    `text`: the file's text already read (`power apply` parses the one text it fingerprinted, once per GPU range,
    not the file again: an editor saving meanwhile gave limits of the new file under the old one's fingerprint).
    """
    import yaml

    from factoryctl.power.policy.config import parse_policy
    from factoryctl.textfile import read_utf8

    if text is None:
        text = read_utf8(path, "policy file", "check the path given to --policy.")
    loader = _policy_loader()
    try:
        root = yaml.compose(text, Loader=loader)
        if root is None:  # nothing but blanks and comments: a truncated file, not the default policy
            raise UsageError(f"{path}: the policy file is empty (it holds no settings)", POLICY_HINT)
        _refuse_repeated_keys(root, path)
        document = yaml.load(text, Loader=loader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        place = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise UsageError(f"{place}: the policy file is not valid YAML or JSON", POLICY_HINT) from exc
    try:
        return parse_policy(document, gpu, where=str(path), max_throughput_loss=max_loss)
    except UsageError as exc:
        if exc.hint is not None:
            raise
        raise UsageError(exc.message, POLICY_HINT) from None


def _policy_loader() -> type[Any]:
    """YAML's safe loader that also reads `1e2`, `1.5e3` and `1E-3` as numbers, as YAML 1.2 and JSON do.

    PyYAML follows YAML 1.1, whose floats need a dot and a signed exponent, so `cap_pct: 1e2` (and the JSON number
    `{"cap_pct": 1e2}`, a valid JSON policy file) was the string '1e2' and refused as not a number. Only plain
    scalars are resolved: a quoted `"80"` is still a string, and refused.
    """
    import re

    import yaml

    class PolicyLoader(yaml.SafeLoader):
        """SafeLoader with YAML 1.2's exponent floats."""

    PolicyLoader.add_implicit_resolver(  # copies the resolvers first: SafeLoader itself is left as it is
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
        list("-+0123456789."),
    )
    return PolicyLoader


def _refuse_repeated_keys(root: Node, path: Path) -> None:
    """YAML lets a repeated key silently replace the first (`max_throughput_loss` twice: the last wins); refuse it.

    factory.yaml refuses it too (config.py, a ConfigError, exit 3); in a policy file it is a usage error, exit 2.
    """
    from factoryctl.textfile import first_repeated_key

    found = first_repeated_key(root)
    if found is not None:
        loc, mark = found
        raise UsageError(
            f"{path}:{mark.line + 1}:{mark.column + 1}: {loc[-1]} is given twice in the policy file, and YAML would"
            " silently use the last one.",
            "keep one of them.",
        )
