"""The agent's GPU field list and the model's are one list written twice, and must stay so.

The agent is stdlib-only and imports nothing of ours, so it cannot import `factoryctl.model.telemetry.GPU_FIELDS`
and keeps its own copy (`factoryctl.agent.sampler.GPU_FIELDS`: the keys of a GPU on the wire, in order). The
model's list is the same fields in the same order, with the node's name first (the wire nests GPUs in their node's
sample) and without `xid_events` (recent events, not a value of the sample: `GpuSample.xid_events` is read and
stored apart). A field added to one list and not the other, or moved in one, fails here.
"""

from __future__ import annotations

from factoryctl.agent.sampler import GPU_FIELDS as AGENT_FIELDS
from factoryctl.model.telemetry import GPU_FIELDS as MODEL_FIELDS


def test_the_models_gpu_fields_are_the_agents_with_the_node_first_and_no_xid_events() -> None:
    assert ("node", *(f for f in AGENT_FIELDS if f != "xid_events")) == MODEL_FIELDS
