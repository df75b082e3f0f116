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


def quickstart_commands(section: str) -> list[list[str]]:
    """The `factoryctl ...` lines of the first sh block under `## <section>` in docs/quickstart.md, as argv."""
    import shlex

    text = (REPO / "docs" / "quickstart.md").read_text()
    block = text.split(f"## {section}", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line, comments=True)[1:] for line in block.splitlines() if line.startswith("factoryctl ")]


def test_quickstart_every_day_runs_as_written_on_the_init_file(cli):
    assert cli("init").exit_code == 0
    commands = quickstart_commands("3. Every day")
    assert len(commands) >= 7
    for argv in commands:
        if "--watch" in argv:
            continue  # redraws until Ctrl-C; `gpus` itself runs above
        result = cli(*argv)
        assert result.exit_code == 0, (argv, result.stderr)


def test_docs_send_no_reader_to_a_file_the_repository_lacks():
    pages = [REPO / "README.md", *(REPO / "docs").rglob("*.md")]
    citing = [page.name for page in pages if "DESIGN.md" in page.read_text()]
    assert not citing, f"these cite DESIGN.md, which is not in the repository: {citing}"


def command_options() -> dict[str, list[list[str]]]:
    """Each command path and the option names of each of its options."""
    from factoryctl.cli.app import app

    found: dict[str, list[list[str]]] = {}

    def walk(command: object, prefix: str) -> None:
        children = getattr(command, "commands", None)
        if children:
            for name, child in children.items():
                walk(child, f"{prefix} {name}".strip())
            return
        found[prefix] = [[*param.opts, *param.secondary_opts] for param in command.params]  # type: ignore[attr-defined]

    walk(typer.main.get_command(app), "")
    return found


def cli_paragraph(start: str) -> str:
    text = (REPO / "docs" / "cli.md").read_text()
    return text[text.index(start) :].split("\n\n", 1)[0]


def test_cli_md_names_every_short_option_with_its_long_form():
    paragraph = cli_paragraph("**Short forms.**").replace("\n", " ")
    for path, options in command_options().items():
        for names in options:
            short = [n for n in names if len(n) == 2]
            long = [n for n in names if n.startswith("--")]
            if short and long:
                assert (
                    f"`{short[0]}` `{long[0]}`" in paragraph
                    or f"`{short[0]}` is `{long[0]}`" in paragraph
                    or (f"`{long[0]}` for" in paragraph)
                ), (path, names)


def test_cli_md_names_the_commands_with_o_but_without_no_header():
    paragraph = cli_paragraph("Global options come before the noun").replace("\n", " ")
    refusing = sorted(
        path
        for path, options in command_options().items()
        if any("-o" in names for names in options) and not any("--no-header" in names for names in options)
    )
    import re

    sentence = paragraph[paragraph.index("`--no-header` too except") :].split("kubectl style")[0]
    named = sorted(re.findall(r"`([^`]+)`", sentence)[1:])  # the first is `--no-header` itself
    assert named == refusing
