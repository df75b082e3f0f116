"""Free GPUs per node, indexed so that "does this gang fit?" costs O(GPUs per node), not O(nodes).

A scheduling pass asks the fit question for every pending job (10,000 of them on 1,000 nodes within 100 ms), so
nodes are bucketed by their free-GPU count. Placement (rarer) walks the buckets: topology first (fewest racks or
switches), then the tightest fit, so whole nodes stay free for the large gangs that need them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from factoryctl.errors import FactoryError

#: Per-node ceilings on top of the free count (node index -> GPUs usable), used to protect reservations.
Caps = Mapping[int, int]


class FreeMap:
    """Mutable index of free GPUs on the schedulable nodes; the scheduler owns one per pass or per simulation."""

    __slots__ = ("_hostable", "buckets", "free", "groups", "hosts", "max_gpus", "names", "totals")

    def __init__(self, names: Sequence[str], totals: Sequence[int], groups: Sequence[str]) -> None:
        """Start with every node entirely free."""
        self.names = list(names)
        self.totals = list(totals)
        self.groups = list(groups)
        self.max_gpus = max(self.totals, default=0)
        self.free = list(self.totals)
        self.buckets: list[set[int]] = [set() for _ in range(self.max_gpus + 1)]
        for index, total in enumerate(self.totals):
            self.buckets[total].add(index)
        self._hostable: dict[tuple[int, int, frozenset[int] | None], bool] = {}
        #: hosts[g]: how many nodes have at least g GPUs in total (never changes).
        self.hosts = [sum(1 for total in self.totals if total >= g) for g in range(self.max_gpus + 1)]

    def can_host(self, nodes: int, gpus: int, allowed: frozenset[int] | None = None) -> bool:
        """Whether the gang could ever run here, were every GPU free (cached: node sizes never change)."""
        if allowed is not None and gpus < len(self.hosts) and self.hosts[gpus] == len(self.totals):
            return len(allowed) >= nodes  # every node is big enough: only the count matters
        key = (nodes, gpus, allowed)
        known = self._hostable.get(key)
        if known is None:
            pool = range(len(self.totals)) if allowed is None else allowed
            known = self._hostable[key] = sum(1 for i in pool if self.totals[i] >= gpus) >= nodes
        return known

    def hostable(self, nodes: int, gpus: int, allowed: frozenset[int] | None) -> bool:
        """`can_host`, with the common unconstrained case answered from `hosts` without a cache lookup."""
        if allowed is None:
            return gpus < len(self.hosts) and nodes <= self.hosts[gpus]
        return self.can_host(nodes, gpus, allowed)

    def take(self, index: int, gpus: int) -> None:
        """Mark `gpus` GPUs of node `index` busy; over-committing is a bug and raises."""
        free = self.free[index]
        if gpus > free:
            raise FactoryError(f"scheduler bug: {gpus} GPUs taken on {self.names[index]} with only {free} free")
        self.buckets[free].discard(index)
        self.free[index] = free - gpus
        self.buckets[free - gpus].add(index)

    def give(self, index: int, gpus: int) -> None:
        """Return `gpus` GPUs of node `index`; returning more than the node has is a bug and raises."""
        free = self.free[index]
        if free + gpus > self.totals[index]:
            raise FactoryError(f"scheduler bug: {self.names[index]} would have more free GPUs than it has")
        self.buckets[free].discard(index)
        self.free[index] = free + gpus
        self.buckets[free + gpus].add(index)

    def count_at_least(self, gpus: int) -> int:
        """How many nodes have at least `gpus` free."""
        return sum(len(self.buckets[c]) for c in range(gpus, self.max_gpus + 1))

    def fits(self, nodes: int, gpus: int, caps: Caps | None = None, allowed: frozenset[int] | None = None) -> bool:
        """Whether `nodes` distinct nodes have `gpus` free each (within `caps`, among `allowed`)."""
        if gpus > self.max_gpus:
            return False
        if allowed is not None:
            free = self.free
            count = sum(1 for i in allowed if free[i] >= gpus and (caps is None or caps.get(i, gpus) >= gpus))
            return count >= nodes
        count = self.count_at_least(gpus)
        if caps:
            free = self.free
            count -= sum(1 for i, cap in caps.items() if cap < gpus <= free[i])
        return count >= nodes

    def _fitting_by_free_count(
        self, gpus: int, caps: Caps | None, allowed: frozenset[int] | None
    ) -> Iterator[set[int]]:
        """For each free count from `gpus` up (tightest first): the allowed nodes with that many free, within caps."""
        for count in range(gpus, self.max_gpus + 1):
            bucket = self.buckets[count]
            picked = bucket if allowed is None else bucket & allowed
            if caps:
                picked = {i for i in picked if caps.get(i, gpus) >= gpus}
            yield picked

    def candidates(self, gpus: int, caps: Caps | None, allowed: frozenset[int] | None) -> list[int]:
        """Nodes able to host `gpus` GPUs, tightest first (fewest free), then by index."""
        out: list[int] = []
        for picked in self._fitting_by_free_count(gpus, caps, allowed):
            out.extend(sorted(picked))
        return out

    def place(
        self, nodes: int, gpus: int, caps: Caps | None = None, allowed: frozenset[int] | None = None
    ) -> list[int] | None:
        """Choose nodes for a gang (fewest topology groups, then tightest fit) without taking them."""
        if nodes == 1:
            return self._place_one(gpus, caps, allowed)
        found = self.candidates(gpus, caps, allowed)
        if len(found) < nodes:
            return None
        return choose_grouped(found, nodes, self.groups, self.free)

    def _place_one(self, gpus: int, caps: Caps | None, allowed: frozenset[int] | None) -> list[int] | None:
        for picked in self._fitting_by_free_count(gpus, caps, allowed):
            if picked:
                return [min(picked)]
        return None

    def commit(self, chosen: Sequence[int], gpus: int) -> None:
        """Take `gpus` GPUs on each chosen node."""
        for index in chosen:
            self.take(index, gpus)

    def copy(self) -> FreeMap:
        """An independent copy of the free counts (for what-if planning such as preemption).

        Node names, sizes and groups never change, so the copy shares them and the size-only caches
        (`hosts`, `can_host`'s); only the free counts and their buckets are copied, in O(nodes).
        """
        other = FreeMap.__new__(FreeMap)
        other.names, other.totals, other.groups = self.names, self.totals, self.groups
        other.max_gpus, other.hosts, other._hostable = self.max_gpus, self.hosts, self._hostable
        other.free = list(self.free)
        other.buckets = [set(bucket) for bucket in self.buckets]
        return other


def choose_grouped(found: list[int], nodes: int, groups: Sequence[str], free: Sequence[int]) -> list[int]:
    """Pick `nodes` of the candidates `found` (tightest first) spanning as few topology groups as possible.

    A group that can hold the whole gang wins, the tightest such group first (least free capacity); otherwise the
    largest groups are used first so the gang spans the fewest of them.
    """
    by_group: dict[str, list[int]] = {}
    for index in found:
        by_group.setdefault(groups[index], []).append(index)
    if len(by_group) == 1:
        return found[:nodes]
    whole = [(sum(free[i] for i in members), name) for name, members in by_group.items() if len(members) >= nodes]
    if whole:
        _, best = min(whole)
        return by_group[best][:nodes]
    order = sorted(by_group.items(), key=lambda item: (-len(item[1]), item[0]))
    chosen: list[int] = []
    for _, members in order:
        chosen.extend(members[: nodes - len(chosen)])
        if len(chosen) == nodes:
            break
    return chosen


class Profile:
    """Free counts that only grow (running jobs ending), with the O(GPUs) fit test of `FreeMap`.

    Used to look ahead for the earliest time a gang fits. `held` GPUs (other reservations) are subtracted up front,
    so counts may be negative and are bucketed at zero. Building one costs O(GPUs per node + held nodes), not
    O(nodes): counts come from the map's buckets and only the nodes that change are tracked.
    """

    __slots__ = ("counts", "fm", "free", "max_gpus", "touched")

    def __init__(self, fm: FreeMap, held: Mapping[int, int]) -> None:
        """Start from the map's current free counts minus the GPUs `held` for earlier reservations."""
        self.fm = fm
        self.max_gpus = fm.max_gpus
        self.free = list(fm.free)
        self.counts = [len(bucket) for bucket in fm.buckets]
        self.touched: set[int] = set()
        for index, gpus in held.items():
            self._shift(index, -gpus)

    def _shift(self, index: int, delta: int) -> None:
        old = self.free[index]
        self.counts[max(old, 0)] -= 1
        self.free[index] = old + delta
        self.counts[max(old + delta, 0)] += 1
        self.touched.add(index)

    def release(self, index: int, gpus: int) -> None:
        """A running job ends and frees `gpus` on node `index`."""
        self._shift(index, gpus)

    def fits(self, nodes: int, gpus: int, allowed: frozenset[int] | None) -> bool:
        """Whether the gang fits on the counts as they are now."""
        if gpus > self.max_gpus:
            return False
        if allowed is not None:
            return sum(1 for i in allowed if self.free[i] >= gpus) >= nodes
        return sum(self.counts[gpus:]) >= nodes

    def candidates(self, gpus: int, allowed: frozenset[int] | None) -> list[int]:
        """Nodes with at least `gpus` free in the profile, tightest first, then by index."""
        free = self.free
        if allowed is not None:
            found = [i for i in allowed if free[i] >= gpus]
        else:
            touched = self.touched
            found = [i for i in touched if free[i] >= gpus]
            for count in range(gpus, self.max_gpus + 1):
                found.extend(i for i in self.fm.buckets[count] if i not in touched)
        found.sort(key=lambda i: (free[i], i))
        return found
