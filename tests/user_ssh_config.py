"""Write a file of the test user's ~/.ssh (its config, or a file the config includes), for the ssh_config tests."""

from __future__ import annotations

from pathlib import Path


def write_user_ssh_config(home: Path, text: str, name: str = "config") -> Path:
    """`text` as `home`/.ssh/`name` (the directory made if missing); returns the file's path."""
    path = home / ".ssh" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path
