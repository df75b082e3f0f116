"""Docs move with the code: every command of the CLI appears in docs/."""

from __future__ import annotations

from pathlib import Path

import typer

REPO = Path(__file__).resolve().parents[2]


def command_paths() -> list[str]:
    from factoryctl.cli.app import app

    root = typer.main.get_command(app)
    paths: list[str] = []

    def walk(command: object, prefix: str) -> None:
        children = getattr(command, "commands", None)
        if not children:
            paths.append(prefix)
            return
        for name, child in children.items():
            walk(child, f"{prefix} {name}")

    walk(root, "factoryctl")
    return paths


def test_every_command_is_documented():
    docs = "\n".join(p.read_text() for p in (REPO / "docs").rglob("*.md"))
    missing = [path for path in command_paths() if f"`{path}" not in docs]
    assert not missing, f"commands missing from docs/: {missing}"


def test_readme_names_the_two_commands_and_ci_runs_the_second():
    readme = (REPO / "README.md").read_text()
    assert "factoryctl demo" in readme
    assert "scripts/test" in readme
    assert "scripts/test" in (REPO / ".ci" / "run").read_text()
