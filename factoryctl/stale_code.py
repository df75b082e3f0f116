"""A long-running factoryctl process (`controller run`, `dash`, `metrics serve`) whose own files changed under it.

An upgrade (`pip install -U factoryctl`, a distribution package, an editable checkout moving on) replaces the files
while the old modules stay in memory: a module first imported after that is the new one, and it fails against the
old ones it imports (`cannot import name 'command_result' from 'factoryctl.transport.base'`). Imported lazily only
on the hand-over path (the controller gone, the process polling the nodes itself), that read as every node down:
27 false `factoryctl_node_up 0` series, `27 down · 0 up` on a dashboard open for 43 minutes.

So such a process imports, when it starts (in its command's body: `--help` and completion stay fast), what its later
paths may need (`load_all`); and an import failure of factoryctl's own code that still happens (a module this list
missed) is the process's failure, said once (`StaleCode`), never a node's. The code it ships is held as it started
too (`freeze_code`): the agent zipapp, built at an agent start from the files then on disk, was an upgrade's, and
every node it reconnected to failed with `the agent speaks protocol 2, this factoryctl speaks 1`
(transport/bundle.py, `pin_contents`). Imports nothing of factoryctl's until called.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TypeVar

_In = TypeVar("_In")
_Out = TypeVar("_Out")

#: What `load_all` leaves out: the CLI and the UI (their commands import what they show), and the code that runs on
#: the nodes (the agent and the simulated driver, run as a process of their own from the zipapp, whose bytes
#: `freeze_code` pins instead).
NOT_PRELOADED = ("factoryctl.cli", "factoryctl.tui", "factoryctl.agent", "factoryctl.sim", "factoryctl.__main__")

_PACKAGE_DIR = Path(__file__).resolve().parent


def freeze_code() -> None:
    """What a long-running process calls when it starts: all its modules loaded (`load_all`), its agent pinned.

    The agent zipapp it builds later holds the bytes of the agent, simulator and pynvml files as they are now
    (transport/bundle.py `pin_contents`: a few ms more), not an upgrade's.
    """
    load_all()
    from factoryctl.transport.bundle import pin_contents

    pin_contents()


def load_all() -> None:
    """Import every factoryctl module a long-running process may import later (all but `NOT_PRELOADED`).

    About 0.2 s once, at its start: a module imported late is whatever file is on disk by then.
    """
    import factoryctl

    _load_under(factoryctl)


def _load_under(package: ModuleType) -> None:
    for info in pkgutil.iter_modules(package.__path__, f"{package.__name__}."):
        if info.name.startswith(NOT_PRELOADED):
            continue
        module = importlib.import_module(info.name)
        if info.ispkg:
            _load_under(module)


def own_import_failure(exc: BaseException) -> bool:
    """Whether `exc` is factoryctl failing to load its own code (files changed under it), not anything of a node's.

    An ImportError naming a factoryctl module (`cannot import name ... from 'factoryctl.x'`, `No module named
    'factoryctl.x'`), an AttributeError of one (`module 'factoryctl.x' has no attribute ...`) or a SyntaxError in one
    of its files (one caught half-written).
    """
    if isinstance(exc, ImportError):
        return _ours(exc.name)
    if isinstance(exc, AttributeError):
        found = getattr(exc, "obj", None)
        return isinstance(found, ModuleType) and _ours(found.__name__)
    if isinstance(exc, SyntaxError) and exc.filename:
        return Path(exc.filename).resolve().is_relative_to(_PACKAGE_DIR)
    return False


def _ours(module: str | None) -> bool:
    return module is not None and (module == "factoryctl" or module.startswith("factoryctl."))


class StaleCodeError(Exception):
    """Raised where the process cannot go on with the code it has in memory: it must be restarted."""


class StaleCode:
    """This process's files changed under it: the first such failure, said once (`say`), for the process's life.

    `what` names the process in the sentence (`dashboard`, `metrics serve`). Thread-safe: nodes' threads notice.
    """

    def __init__(self, what: str, say: Callable[[str], object] | None = None) -> None:
        self.what = what
        self._say = say
        self._lock = threading.Lock()
        self.failure: BaseException | None = None

    @property
    def message(self) -> str:
        """`factoryctl's files changed under this running dashboard (an upgrade?): restart it`."""
        return f"factoryctl's files changed under this running {self.what} (an upgrade?): restart it"

    @property
    def detail(self) -> str:
        """The message with the failure that showed it (`...: restart it (ImportError: cannot import name ...)`)."""
        failure = self.failure
        if failure is None:
            return self.message
        return f"{self.message} ({type(failure).__name__}: {failure})"

    def notice(self, exc: BaseException) -> bool:
        """Whether `exc` is such a failure (`own_import_failure`); the first one is kept and said."""
        if not own_import_failure(exc):
            return False
        with self._lock:
            first, self.failure = self.failure is None, self.failure or exc
        if first and self._say is not None:
            self._say(self.detail)
        return True

    def noticing(self, connect: Callable[[_In], _Out]) -> Callable[[_In], _Out]:
        """`connect`, its failures to load factoryctl's own code noticed (`notice`) before its caller hears of them."""

        def noticed(node: _In) -> _Out:
            try:
                return connect(node)
            except Exception as exc:
                self.notice(exc)
                raise

        return noticed

    def check(self) -> None:
        """Raise `StaleCodeError` (the message) once a failure was noticed."""
        if self.failure is not None:
            raise StaleCodeError(self.message)
