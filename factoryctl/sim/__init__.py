"""factoryctl.sim: a simulated NVML driver, so the whole stack runs and is tested on machines without a GPU.

`factoryctl.sim.nvml` is a drop-in for the subset of `pynvml` the agent uses (same names, units and errors);
`state.SimNode` is the persisted node behind it (profiles, physics, faults); `smi` is an nvidia-smi shim over the
same state. Everything here is stdlib only and Python >= 3.9, because it ships inside the agent zipapp.
"""
