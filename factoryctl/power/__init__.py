"""Grid-price power capping: price sources, the pure policy engine, and the simulator that scores it offline.

`factoryctl.power.policy` and `factoryctl.power.curve` are pure (an import-linter contract keeps SSH, NVML and UI
libraries out); files are read only by `sources` and `curve_file`, and nodes are touched only by the applier.
"""
