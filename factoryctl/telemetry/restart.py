"""What a restarted controller takes back from its store, so a restart neither repeats nor loses what it knew.

Kept apart from the store writer (telemetry/writer.py), which starts from it: each node's newest stored sample is the
`before` its first new sample is compared with.
"""

from __future__ import annotations

from factoryctl.model.telemetry import NodeSample
from factoryctl.store.sqlite import Store, StoreError


def stored_samples(store: Store) -> dict[str, NodeSample]:
    """Each node's newest stored sample, the `before` of its first new one (empty when the store cannot tell).

    A restarted controller compares its first samples with these: an XID, a lost GPU or an ECC count already
    logged is not logged again, and a GPU that is still lost keeps the UUID and name it had (`carry_forward`), so
    its `gpu_lost` and `DCGM_FI_DEV_XID_ERRORS` series keep their identity across the restart.
    """
    try:
        return {state.node: sample for state, sample in store.latest() if sample is not None}
    except StoreError:
        return {}
