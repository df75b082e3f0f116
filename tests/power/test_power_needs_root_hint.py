"""The needs-root hint names every place the login user comes from, not only factory.yaml's.

The user may come from ~/.ssh/config (`User`), and the hint used to send everyone to `user:` or `ssh.user`.
Run as a user who is not root, as test_power_set_needs_root.py does.
"""

from __future__ import annotations

from pathlib import Path

from test_power_set_needs_root import factoryctl, home, pytestmark  # noqa: F401 - the fixture, used by name


def test_the_hint_names_ssh_config_and_factory_yaml_alike(home: Path) -> None:  # noqa: F811 - the fixture
    done = factoryctl(home, "power", "set", "locked", "--watts", "400")
    assert done.returncode == 1, done.stderr
    assert (
        "connect as root (User in ~/.ssh/config, or `user:` / `ssh.user` in factory.yaml), or run factoryctl as "
        "root for a `transport: local` node." in done.stderr
    ), done.stderr
