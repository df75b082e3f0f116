"""The node agent: runs on every node, samples NVML (or the simulated driver) and answers JSON lines on stdio.

Shipped alone inside a zipapp, so it imports only the standard library, `pynvml`, `factoryctl.sim` and (when the
node has it) psutil; never the rest of factoryctl. The wire protocol is docs/agent-protocol.md, its version, ops and
message shapes factoryctl.agent.protocol (which the client and the nvidia-smi bridge import too).
"""
