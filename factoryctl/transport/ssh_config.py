"""Where and as whom to connect: a NodeSpec merged with the operator's ~/.ssh/config.

factory.yaml wins where it says something; ~/.ssh/config fills in HostName, User, Port, IdentityFile and ProxyJump,
so an inventory that works with `ssh gpu01` works with factoryctl too. Only the keys named here are tried (the
configured identity, else IdentityFile, else OpenSSH's default identities) plus ssh-agent (only its copies of
those keys with `IdentitiesOnly yes`): never every key in ~/.ssh, which trips sshd's MaxAuthTries ("too many
authentication failures").

paramiko's SSHConfig ignores `Include`, so the files are read (ssh_config_files.py), as OpenSSH reads them, and
handed to paramiko as one config with the included lines in place (a block inside an including block written as
one Match with both criteria). A ProxyCommand is refused: factoryctl runs none, and connecting directly would go
around it. A `Match exec` command is run as ssh runs it (`$SHELL -c`, tokens substituted unquoted, stdin
/dev/null): once per node resolved (ssh_match_exec.py), and only for a host factory.yaml let through
(`host_problem`: no shell characters in it, as OpenSSH 9.6 refuses them on its command line). A Match criterion
paramiko cannot evaluate (`localnetwork`, `tagged`, a typo) is a config error where it is reached (`evaluable`).
"""

from __future__ import annotations

import functools
import getpass
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factoryctl.config_schema import host_problem
from factoryctl.errors import ConfigError
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.known_hosts import DEFAULT_KNOWN_HOSTS
from factoryctl.transport.ssh_config_files import CONFIG_HINT, ConfigSource, load_config_file
from factoryctl.transport.ssh_match_exec import (
    EXEC_RESULTS,
    RefusedCriterion,
    evaluable,
    exec_once_config,
    refused_error,
)

if TYPE_CHECKING:
    import paramiko

DEFAULT_IDENTITIES = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")
#: Jump chains longer than this are refused (a loop in ~/.ssh/config would recurse forever).
MAX_JUMPS = 8


@dataclass(frozen=True)
class SshTarget:
    """A fully resolved SSH endpoint; `jump` is the hop to tunnel through (ProxyJump), if any.

    `hash_known_hosts`: ~/.ssh/config says `HashKnownHosts yes` for it, so a key trusted for it is recorded hashed.
    `identities_only`: it says `IdentitiesOnly yes`, so only `identity_files` are offered (from ssh-agent too).
    """

    host: str
    port: int
    user: str
    identity_files: tuple[str, ...]
    known_hosts: str
    jump: SshTarget | None = None
    hash_known_hosts: bool = False
    identities_only: bool = False

    @property
    def key(self) -> tuple[str, int, str]:
        """Identity of a connection: endpoints with the same key can share one (jump hosts do)."""
        return (self.host, self.port, self.user)

    @property
    def address(self) -> str:
        """`host:port` for messages (`[::1]:22` for an IPv6 address, as ssh and URLs write it)."""
        return host_port(self.host, self.port)

    @property
    def label(self) -> str:
        """`user@host:port` for messages."""
        return f"{self.user}@{self.address}"


def host_port(host: str, port: int) -> str:
    """`host:port`, with an IPv6 address in brackets (`[::1]:9`): bare, its colons would run into the port's."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _config_path(config_path: Path | None) -> Path:
    return config_path or Path(os.path.expanduser("~/.ssh/config"))


_Pairs = tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class _Header:
    """A Host or Match line inside blocks whose result is fixed where they stand (`refs`: their line indexes)."""

    pairs: _Pairs
    refs: tuple[int, ...]

    def written(self, matched: dict[int, bool]) -> str:
        """The line with those blocks' results known: its own criteria if all of them matched, else never."""
        return _match_line(self.pairs) if all(matched.get(ref) for ref in self.refs) else "Match originalhost '!*'"


@dataclass(frozen=True)
class _Block:
    """A Host or Match block, as the blocks nested in it (through Include) and the lines after an Include repeat it.

    `live`: all its criteria and its enclosing blocks'; `stable`: those that give the same answer wherever they are
    evaluated again; `refs`: the blocks (line indexes) whose criteria depend on what the config has set so far
    (Match host, user, exec), which OpenSSH evaluates once, where they stand.
    """

    header: str
    live: _Pairs = ()
    stable: _Pairs = ()
    refs: tuple[int, ...] = ()

    def reopened(self) -> tuple[str, _Header | None]:
        """The line that opens this block again after an Include, and how to write it once `refs` are known."""
        return self.header, (_Header(self.stable, self.refs) if self.refs else None)


@dataclass(frozen=True)
class _Flat:
    """A config with its Include lines replaced by the files they name, and where each of its lines comes from.

    `headers`: the lines to write again for each host once the results of the blocks in `marks` are known (each
    mark is followed by a `FactoryctlMatchedN yes` line that tells whether it matched).
    """

    lines: tuple[str, ...]
    origins: tuple[str, ...]
    headers: tuple[tuple[int, _Header], ...] = ()
    marks: tuple[int, ...] = ()


_GLOBAL = _Block("Host *")
#: paramiko's SSHConfig.SETTINGS_REGEX, applied to a stripped line: what paramiko reads as `keyword value`.
_SETTING = re.compile(r"(\w+)(?:\s*=\s*|\s+)(.+)")
#: Match criteria that give the same answer wherever they are evaluated again (paramiko's Host is `originalhost`).
_STABLE = ("originalhost", "localuser", "all", "canonical", "final")
#: A value that stands for line N of the flattened config in `_first_line`'s lookups (no %-token or ~ in it).
_MARK = "factoryctl-line-"
_MATCHED = "factoryctlmatched"


def _criteria(words: list[str]) -> _Pairs:
    """Match criteria as (type, pattern) pairs; `all`, `canonical` and `final` take no pattern."""
    pairs: list[tuple[str, ...]] = []
    while words:
        kind = words.pop(0)
        takes_pattern = bool(words) and kind.lstrip("!").lower() not in ("all", "canonical", "final")
        pairs.append((kind, words.pop(0)) if takes_pattern else (kind,))
    return tuple(pairs)


def _match_line(pairs: _Pairs) -> str:
    """`Match` with all of `pairs` (`all` only alone: paramiko refuses it with other criteria)."""
    words = [shlex.quote(word) for pair in pairs if pair != ("all",) for word in pair]
    return "Match " + (" ".join(words) or "all")


def _opened(outer: _Block, keyword: str, value: str, where: str, index: int) -> tuple[_Block, _Header | None]:
    """The block a Host or Match line (at `index`) opens inside `outer`, the block of the Include that read it.

    Inside another block it applies only where both do: one Match with both criteria (a Host's patterns become
    `originalhost`, what paramiko matches Host patterns against). Returns how to write the line once the results
    of the enclosing blocks in `refs` are known, if it depends on them.
    """
    try:
        words = shlex.split(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: cannot read SSH config: {keyword} {value!r}: {exc}.", CONFIG_HINT) from None
    written = (("originalhost", ",".join(words)),) if keyword.lower() == "host" else _criteria(words)
    own = written if keyword.lower() == "host" else evaluable(written, index)
    fixed = all(pair[0].lstrip("!").lower() in _STABLE for pair in own)
    stable, refs = (outer.stable + own, outer.refs) if fixed else (outer.stable, (*outer.refs, index))
    header = f"{keyword} {value}" if outer is _GLOBAL and own == written else _match_line(outer.live + own)
    block = _Block(header, outer.live + own, stable, refs)
    return block, (_Header(outer.stable + own, outer.refs) if outer.refs else None)


def _keyword(line: str) -> str:
    """The keyword of a config line, lower-case, as paramiko reads it; "" for a blank line or a comment."""
    setting = _SETTING.match(line.strip())
    return setting.group(1).lower() if setting else ""


_Lines = list[tuple[str, str, _Header | None]]


def _inline(source: ConfigSource, outer: _Block, out: _Lines) -> _Block:
    """Append `source`'s lines to `out` as (line, origin, header), each Include replaced by the files it names.

    `outer` is the block the file is read in. Returns the block the file ends in: when it is not the including
    one, the lines after the Include go back to the including block (the header opened again), as in OpenSSH.
    """
    includes = dict(source.includes)
    block = outer
    for number, raw in enumerate(source.text.split("\n"), 1):
        where = f"{source.path}, line {number}"
        line = raw.strip()
        setting = _SETTING.match(line)
        keyword = setting.group(1).lower() if setting else ""
        if setting and keyword in ("host", "match"):
            block, header = _opened(outer, setting.group(1), setting.group(2), where, len(out))
            out.append((block.header, where, header))
            if len(out) - 1 in block.refs:  # its own criteria are evaluated here only: record the result
                out.append((f"  {_MATCHED}{len(out) - 1} yes", where, None))
        elif keyword == "include":
            for child in includes.get(number, ()):
                if _inline(child, block, out) is not block:
                    again, header = block.reopened()
                    out.append((again, where, header))
        elif setting or not line or line.startswith("#"):
            out.append((raw, where, None))
        else:
            raise ConfigError(f"{where}: cannot read SSH config: unparsable line {line!r}.", CONFIG_HINT)
    return block


@functools.lru_cache(maxsize=4)
def _flattened(source: ConfigSource) -> _Flat:
    """The config with its includes in place, flattened once, not once per node of a 2,000-node fleet."""
    out: _Lines = []
    _inline(source, _GLOBAL, out)
    lines = tuple(line for line, _, _ in out)
    headers = tuple((index, header) for index, (_, _, header) in enumerate(out) if header is not None)
    marks = tuple(index - 1 for index, line in enumerate(lines) if line.startswith(f"  {_MATCHED}"))
    return _Flat(lines, tuple(origin for _, origin, _ in out), headers, marks)


def _view(alias: str, config_path: Path | None) -> tuple[_Flat, tuple[str, ...]] | None:
    """~/.ssh/config (or `config_path`) with its includes in place and its lines as they stand for host `alias`.

    A Match on what the config sets (host, user, exec) with an Include inside keeps the result it had where it
    stands, as in OpenSSH, for the blocks nested in it and the lines after the Include: looked up once with the
    blocks evaluated again, then with their results written in, until those results no longer change.
    """
    source = load_config_file(str(_config_path(config_path)), private=config_path is None)
    if source is None:
        return None
    flat = _flattened(source)
    lines, known, rewrite = flat.lines, None, dict(flat.headers)
    for _ in range(len(flat.marks) + 2 if rewrite else 0):
        found = _lookup_text(lines, alias, config_path, flat.origins)
        matched = {index: f"{_MATCHED}{index}" in found for index in flat.marks}
        if matched == known:
            break
        known = matched
        lines = tuple(rewrite[n].written(matched) if n in rewrite else line for n, line in enumerate(flat.lines))
    return flat, lines


def _lookup_text(
    lines: tuple[str, ...], alias: str, config_path: Path | None, origins: tuple[str, ...]
) -> dict[str, Any]:
    """The settings paramiko gives host `alias` in `lines`; a config error names the line (`origins`) it can."""
    try:
        return dict(_parsed("\n".join(lines) + "\n").lookup(alias))
    except RefusedCriterion as exc:
        raise refused_error(exc.value, alias, origins) from None
    except Exception as exc:  # paramiko raises several types for bad files
        path = _config_path(config_path)
        raise ConfigError(f"{path}: cannot read SSH config: {exc}", CONFIG_HINT) from exc


def _ssh_config_lookup(alias: str, config_path: Path | None) -> dict[str, Any]:
    view = _view(alias, config_path)
    found = {} if view is None else _lookup_text(view[1], alias, config_path, view[0].origins)
    return {key: value for key, value in found.items() if not key.startswith(_MATCHED)}


@functools.lru_cache(maxsize=4)
def _parsed(text: str) -> paramiko.SSHConfig:
    """The flattened text parsed once, not once per node of a 2,000-node fleet (reading it again is cheap)."""
    return exec_once_config().from_text(text)


def _first_line(
    view: tuple[_Flat, tuple[str, ...]], alias: str, keywords: tuple[str, ...], config_path: Path | None
) -> int | None:
    """Index in `_view`'s lines of the line whose value for one of `keywords` host `alias` takes, if any.

    Found by asking paramiko again with each such line's value replaced by its index: which line wins depends on
    the Host and Match blocks that apply, and on first-wins order across them.
    """
    flat, lines = view
    marked = tuple(f"{keywords[0]} {_MARK}{n}" if _keyword(line) in keywords else line for n, line in enumerate(lines))
    found = str(_lookup_text(marked, alias, config_path, flat.origins).get(keywords[0]) or "")
    number = found.removeprefix(_MARK)
    return int(number) if found.startswith(_MARK) and number.isdigit() else None


#: The ~/.ssh/config keywords whose line `explain` finds (the settings `config show --ssh` shows).
EXPLAINED = ("hostname", "port", "user", "identityfile", "proxyjump")
_APPLIED = "factoryctlapplied"


def explain(spec: NodeSpec, config_path: Path | None = None) -> tuple[SshTarget, dict[str, str]]:
    """`resolve`, and where (`FILE, line N`) ~/.ssh/config gave each of `EXPLAINED` that host `spec.host` takes.

    For `config show --ssh`, in one `resolve` scope: each `Match exec` command runs once, as when connecting. The
    line is the first of its keyword in a block that applied (first wins, as in ssh), the blocks told by a line
    of no effect after each header, so every criterion is evaluated against the values the connection sees.
    """
    scope = EXEC_RESULTS.set({})
    try:
        target, view = _resolve(spec, config_path), _view(spec.host, config_path)
        if view is None:
            return target, {}
        flat, lines = view
        tagged = [
            (line, f"  {_APPLIED}{n} yes") if _keyword(line) in ("host", "match") else (line,)
            for n, line in enumerate(lines)
        ]
        applied = _lookup_text(tuple(t for pair in tagged for t in pair), spec.host, config_path, flat.origins)
        origins: dict[str, str] = {}
        block_applies = True  # the lines before any Host or Match apply to every host
        for n, line in enumerate(lines):
            keyword = _keyword(line)
            if keyword in ("host", "match"):
                block_applies = f"{_APPLIED}{n}" in applied
            elif block_applies and keyword in EXPLAINED:
                origins.setdefault(keyword, flat.origins[n])
        return target, origins
    finally:
        EXEC_RESULTS.reset(scope)


def _bad_setting(
    config_path: Path | None, alias: str, keyword: str, value: str, problem: str, hint: str
) -> ConfigError:
    """A ConfigError naming the file and line of the `keyword` line host `alias` took, else the file."""
    view = _view(alias, config_path)
    index = None if view is None else _first_line(view, alias, (keyword.lower(),), config_path)
    where = str(_config_path(config_path)) if view is None or index is None else view[0].origins[index]
    return ConfigError(f"{where}: {keyword} {value!r} for host {alias} {problem}.", hint)


_PROXY_COMMAND_HINT = (
    "use ProxyJump instead (`ProxyJump bastion` for `ssh -W %h:%p bastion`): factoryctl reaches nodes through a "
    "bastion over one connection; or write `ProxyCommand none` for the hosts to reach directly."
)


def _proxy_jump(found: dict[str, Any], alias: str, config_path: Path | None) -> str:
    """The ProxyJump host `alias` takes ("" or "none": direct); a ProxyCommand it takes is a ConfigError.

    As in OpenSSH, whichever of ProxyJump and ProxyCommand comes first wins (`ProxyCommand none` too: direct;
    `ProxyJump none` does not stop a later ProxyCommand). The winning line is looked for rather than taken from
    paramiko, which lets a later `ProxyCommand none` in the same block replace a command. factoryctl runs no
    ProxyCommand, and connecting directly instead could go around the path it sets.
    """
    jump = str(found.get("proxyjump") or "")
    view = _view(alias, config_path) if "proxycommand" in found else None
    if view is None:
        return jump
    competing = ("proxycommand", "proxyjump") if jump and jump.lower() != "none" else ("proxycommand",)
    index = _first_line(view, alias, competing, config_path)
    setting = None if index is None else _SETTING.match(view[1][index].strip())
    if index is None or setting is None or setting.group(1).lower() == "proxyjump":
        return jump
    if setting.group(2).lower() == "none":
        return ""
    raise ConfigError(
        f"{view[0].origins[index]}: ProxyCommand {setting.group(2)!r} for host {alias} cannot be used: factoryctl "
        "does not run ProxyCommand, and connecting directly could bypass it.",
        _PROXY_COMMAND_HINT,
    )


def hashes_known_hosts(spec: NodeSpec, jump_label: str | None = None, config_path: Path | None = None) -> bool:
    """Whether ~/.ssh/config says `HashKnownHosts yes` for the node, or for its jump host `jump_label` (`user@host:port`).

    As `ssh -G` resolves it: the node's setting is looked up by its host, a jump host's by the hop as ProxyJump
    names it. `nodes trust` then records the key under a hashed name, as ssh would.
    """
    target = resolve(spec, config_path)
    if jump_label is not None:
        hop = target.jump
        while hop is not None and hop.label != jump_label:
            hop = hop.jump
        return hop is not None and hop.hash_known_hosts
    return target.hash_known_hosts


def _port(text: str) -> int | None:
    """A TCP port (1-65535) written in decimal, else None."""
    return int(text) if text.isascii() and text.isdigit() and 0 < int(text) < 65536 else None


#: How OpenSSH writes a yes/no option's value (any case); anything else makes ssh refuse the file.
_FLAG_VALUES = {"yes": True, "true": True, "no": False, "false": False}


def _flag(found: dict[str, Any], alias: str, keyword: str, config_path: Path | None) -> bool:
    """The yes/no option `keyword` for host `alias` (no when unset); another value is a ConfigError, as with ssh."""
    value = str(found.get(keyword.lower(), "no"))
    words = value.split()
    comment = next((i for i, word in enumerate(words) if word.startswith("#")), len(words))
    words = words[:comment]  # `IdentitiesOnly yes # why`: a word starting with # begins a comment, as in ssh
    flag = _FLAG_VALUES.get(words[0].lower()) if len(words) == 1 else None
    if flag is None:
        problem = "is not yes or no (ssh refuses it too: unsupported option)"
        raise _bad_setting(config_path, alias, keyword, value, problem, f"write `{keyword} yes` or `{keyword} no`.")
    return flag


def _identities(explicit: str | None, configured: list[str] | None, alias: str) -> tuple[str, ...]:
    """The identity files to try: factory.yaml's, else ~/.ssh/config's IdentityFile, else OpenSSH's defaults.

    A missing file named in either place is kept, so that a refusal names it as skipped (`ssh_identities`); missing
    defaults are dropped, as ssh does. paramiko expands IdentityFile's tokens but `%n` (the host as given: `alias`).
    """
    if explicit:
        return (os.path.expanduser(explicit),)
    if configured:
        named = (re.sub(r"(?<!%)%n", lambda _: alias, path) for path in configured)
        return tuple(dict.fromkeys(os.path.expanduser(p) for p in named))  # each once, in order (ssh drops repeats)
    return tuple(p for p in dict.fromkeys(map(os.path.expanduser, DEFAULT_IDENTITIES)) if os.path.isfile(p))


_JUMP_HINT = "write each hop as [user@]host[:port] with a port from 1 to 65535 (e.g. jumper:2222), separated by commas."


def _parse_jump(hop: str) -> tuple[str | None, str, int | None]:
    """`[user@]host[:port]` (also `ssh://user@host:port`); ValueError with the problem when it is not that."""
    hop = hop.removeprefix("ssh://")
    user, _, hostport = hop.rpartition("@")
    host, port_text = hostport, None
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else None
    elif hostport.count(":") == 1:
        host, _, port_text = hostport.partition(":")
    if not host:
        raise ValueError(f"has no host in {hop!r}")
    port = None if port_text is None else _port(port_text)
    if port_text is not None and port is None:
        raise ValueError(f"has a port that is not a number from 1 to 65535: {port_text!r}")
    return (user or None), host, port


def resolve(spec: NodeSpec, config_path: Path | None = None) -> SshTarget:
    """Resolve a node to the endpoint (and jump chain) to connect to, running each `Match exec` command once."""
    scope = EXEC_RESULTS.set({})
    try:
        return _resolve(spec, config_path)
    finally:
        EXEC_RESULTS.reset(scope)


def reached_at(spec: NodeSpec, config_path: Path | None = None) -> tuple[str, int]:
    """The host and port an SSH node is reached at: `resolve`'s (factory.yaml's, else ~/.ssh/config's HostName, Port).

    factory.yaml's `host` and `port` when ~/.ssh/config cannot be used: saying why is the connection's job.
    """
    try:
        target = resolve(spec, config_path)
    except (ConfigError, KeyError, OSError):  # KeyError, OSError: getpass.getuser() for a uid with no name
        return spec.host, spec.port
    return target.host, target.port


def _resolve(
    spec: NodeSpec, config_path: Path | None = None, _depth: int = 0, _jump_override: str | None = None
) -> SshTarget:
    if _depth > MAX_JUMPS:
        raise ConfigError(
            f"the ProxyJump chain of {spec.name} in {_config_path(config_path)} is longer than {MAX_JUMPS} hops.",
            "look for a loop: a jump host whose own ProxyJump leads back to it.",
        )
    problem = host_problem(spec.host) if _depth == 0 else None  # a jump host is named by ~/.ssh/config itself
    if problem is not None:  # factory.yaml refuses it; checked again where `Match exec` would run it
        raise ConfigError(f"node {spec.name}: `host` {problem}.", "write the node's host name or address.")
    found = _ssh_config_lookup(spec.host, config_path)
    host = str(found.get("hostname") or spec.host)
    port = spec.port
    if port == 22 and found.get("port"):
        port = _port(str(found["port"])) or 0
        if not port:
            problem, hint = "is not a number from 1 to 65535", "write the port as a number such as 22."
            raise _bad_setting(config_path, spec.host, "Port", str(found["port"]), problem, hint)
    user = spec.user or found.get("user") or getpass.getuser()
    identities = _identities(spec.identity_file, found.get("identityfile"), spec.host)
    known_hosts = spec.known_hosts or DEFAULT_KNOWN_HOSTS
    jump_text = _jump_override if _jump_override is not None else _proxy_jump(found, spec.host, config_path)
    jump = None
    if jump_text and jump_text.lower() != "none":
        hops = [hop.strip() for hop in jump_text.split(",")]
        try:
            if "" in hops:
                raise ValueError("has an empty hop")
            hop_user, hop_host, hop_port = [_parse_jump(hop) for hop in hops][-1]
        except ValueError as exc:
            raise _bad_setting(config_path, spec.host, "ProxyJump", jump_text, str(exc), _JUMP_HINT) from None
        earlier = hops[:-1]
        hop_spec = NodeSpec(
            name=f"{spec.name} (jump {hop_host})",
            host=hop_host,
            port=hop_port or 22,
            user=hop_user,
            known_hosts=spec.known_hosts,
        )
        jump = _resolve(hop_spec, config_path, _depth + 1, ",".join(earlier) if earlier else None)
    hashed, only = (_flag(found, spec.host, name, config_path) for name in ("HashKnownHosts", "IdentitiesOnly"))
    return SshTarget(host, port, str(user), identities, known_hosts, jump, hashed, only)
