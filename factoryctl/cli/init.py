"""`factoryctl init`: write a commented example factory.yaml to start from.

`-` means stdout, as for most Unix tools, so the example can be piped or read without creating a file named `-`;
only `-` itself does (`./-` is that file), and an empty PATH is a usage error, never the current directory: PATH is
read as typed (`arguments.exact_path`), as every file option is, but for a leading `~` or `~user`, expanded as in
--config and $FACTORYCTL_CONFIG: quoted (`'~/lab/factory.yaml'`), it made a directory named `~` here.

A new ./factory.yaml wins over the XDG dir's file for every command run in this directory; when one exists, init says
so after writing, and how to keep using it.

A symbolic link at PATH is written through (the user's own link to a dotfiles repository keeps working, also when
it names a file not made yet), unless another user could have planted it: a link in a directory anyone may write
that is neither the user's nor root's is refused (`private_files.resolve_trusted_links`), its owner chose the file.
"""

from __future__ import annotations

from pathlib import Path

import typer

from factoryctl.cli import context
from factoryctl.cli.arguments import exact_path

EXAMPLE = """\
# factory.yaml: the factoryctl inventory. `factoryctl config show` prints every key with its value or default.
name: lab
# state_dir: ~/.local/state/factoryctl/lab   # the store and simulated GPU state; share it between users if needed

ssh:                            # defaults for every node; a key left out comes from ~/.ssh/config, as for `ssh HOST`
  # user: root                  # else ~/.ssh/config's User, else your local user (set here, it wins over User)
  # identity_file: ~/.ssh/gpu_key   # else ~/.ssh/config's IdentityFile, else ~/.ssh/id_ed25519, id_ecdsa, id_rsa
                                    # (set here, it wins over IdentityFile); then ssh-agent's keys
  known_hosts: ~/.ssh/known_hosts   # host keys are verified here as [host]:port; see `factoryctl nodes trust`
  # port: 22                    # else ~/.ssh/config's Port, else 22

nodes:                          # a key may be a node set: every node in it gets the same fields
  # gpu01: {host: 10.0.0.11, rack: a, labels: {pool: train}}
  # gpu[02-04]: {rack: a}       # host defaults to the node's name
  # sim[1-2]: {host: 127.0.0.1, port: 2222, sim: h100-sxm, gpus: 8}   # simulated GPUs, reached over SSH
  ws: {transport: local, sim: {profile: h100-sxm, gpus: 8, seed: 7}}    # this machine, 8 simulated H100

groups:                         # use as @name in any TARGET
  # rack-a: gpu[01-04]
  local: ws

controller:
  interval_s: 1.0               # telemetry sampling interval

scheduler:
  default_walltime: 24h

power:
  # facility_budget_kw: 400
"""


def register(app: typer.Typer) -> None:
    """Add `init` to the root app."""

    @app.command("init", short_help="Write a commented example factory.yaml.")
    def init_command(
        ctx: typer.Context,
        path: Path | None = typer.Argument(
            None,
            path_type=str,
            callback=exact_path("stdout"),
            help="Where to write the example (default: --config's file, else $FACTORYCTL_CONFIG, else ./factory.yaml);"
            " - for stdout.",
        ),
        force: bool = typer.Option(False, "--force", "-f", help="Overwrite an existing file."),
    ) -> None:
        """Write a commented example factory.yaml (`factoryctl init -` prints it on stdout instead)."""
        from factoryctl.cli.arguments import is_std_stream
        from factoryctl.config_checks import expand_home
        from factoryctl.errors import UsageError

        if path is None:  # `factoryctl --config /etc/factoryctl/factory.yaml init` writes there
            path = _default_path(context.global_options(ctx)[0])
        elif not is_std_stream(path):
            path = expand_home(path, "PATH", UsageError)
        if is_std_stream(path):  # `-` itself; `./-` (and `-c -`, a file option) name the file `-`
            from factoryctl.cli.render import emit

            emit(EXAMPLE)
            return
        from factoryctl.current_dir import require_current_dir
        from factoryctl.pathlimits import check_path_length

        path = require_current_dir(path, "the file", UsageError, "; nothing was written")  # not a crash (`rm -rf .`)
        check_path_length(path, "the factory.yaml path", "pick a shorter path for factory.yaml.")
        if path.is_dir():
            raise UsageError(
                f"{path} is a directory; nothing was written.", f"name the file, e.g. {path / 'factory.yaml'}."
            )
        if path.exists() and not force:
            raise UsageError(f"{path} already exists; nothing was written.", "pass --force to overwrite it.")
        shadowed = _shadowed_by(path)
        _write_or_say_why(path)
        if not context.global_options(ctx)[1]:
            from factoryctl.cli.arguments import bytes_as_text

            typer.echo(f"wrote {bytes_as_text(str(path))}; check it with `{_validate_command(path)}`", err=True)
        if shadowed is not None:  # a warning, so not dropped by -q (docs/cli.md)
            _warn_shadowed(path, shadowed)


def _write_or_say_why(path: Path) -> None:
    """Write the example at `path`, creating its directory; `ActionFailed` saying why when it cannot be written."""
    from factoryctl.errors import ActionFailed
    from factoryctl.private_files import PlantedLink

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_example(path)
    except PlantedLink as planted:
        raise ActionFailed(
            f"cannot write {path}: {planted.problem}; nothing was written.", "pick a path without that link."
        ) from None
    except OSError as exc:
        raise ActionFailed(
            f"cannot write {path}: {exc.strerror or exc}.", "pick a path in a directory you can write to."
        ) from None


def _write_example(path: Path) -> None:
    """Write EXAMPLE to `path`, a new file writable by its owner alone whatever the umask (at most 0644).

    factoryctl refuses a factory.yaml others may write (config_file.py): under `umask 000` a plain write made one
    (0666) that every next command refused. An existing file (`--force`) keeps its mode.

    A link on the way is followed only if the user or root made it, or nobody else could have (`PlantedLink`); the
    file it names is then opened without following a link, so none planted meanwhile is followed either.
    """
    import os

    from factoryctl.private_files import resolve_trusted_links

    target = resolve_trusted_links(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    descriptor = os.open(target, flags, 0o644)  # the umask may only narrow it
    with open(descriptor, "w", encoding="utf-8") as handle:
        handle.write(EXAMPLE)


def _default_path(explicit: Path | None) -> Path:
    """Where `init` writes without a PATH: the file the other commands read, when chosen, else ./factory.yaml.

    Chosen by --config or $FACTORYCTL_CONFIG (their "no factory.yaml" hint names it); else ./factory.yaml, the next
    place they look.
    """
    from factoryctl.config import CONFIG_ENV, CONFIG_NAME, discover

    path, source = discover(explicit)
    return path if source in ("--config", f"${CONFIG_ENV}") else Path(CONFIG_NAME)


def _shadowed_by(path: Path) -> Path | None:
    """The XDG dir's factory.yaml that writing `path` hides from the commands run here, if it does.

    It does when `path` is ./factory.yaml, which does not exist yet, and the XDG dir's file does: the commands would
    find it now (neither $FACTORYCTL_CONFIG nor ./factory.yaml chooses another), and the new file from then on.
    """
    import os

    from factoryctl.config import CONFIG_NAME, discover

    found, source = discover(None)
    try:
        here = os.path.realpath(CONFIG_NAME)
        if source != "XDG config dir" or not found.is_file() or os.path.realpath(path) != here:
            return None
        return None if os.path.realpath(found) == here else found
    except OSError:
        return None


def _warn_shadowed(path: Path, shadowed: Path) -> None:
    """Say that ./factory.yaml now wins over `shadowed`, and how to keep using that one."""
    from factoryctl.cli.arguments import bytes_as_text, shell_word

    typer.echo(
        f"warning: {bytes_as_text(str(path))} now shadows {bytes_as_text(str(shadowed))}: every command run in this "
        f"directory uses the new file. To keep using the other, pass `-c {shell_word(str(shadowed))}` or run "
        "factoryctl from another directory.",
        err=True,
    )


def _validate_command(path: Path) -> str:
    """The shortest command that validates `path`: no --config when factoryctl would find the file by itself."""
    from factoryctl.cli.arguments import shell_word
    from factoryctl.config import discover

    found = discover(None)[0]
    with_config = f"factoryctl --config {shell_word(str(path))} config validate"  # `$'\xe9'` for a Latin-1 byte
    try:
        return "factoryctl config validate" if found.resolve() == path.resolve() else with_config
    except OSError:  # a path that cannot be resolved (a loop of symlinks): the explicit form always works
        return with_config
