"""Frozen dataclasses shared by every layer: inventory, telemetry snapshots, jobs, prices and power actions.

Standard library only and no IO, so the scheduler, the power policy engine and the dashboard's widgets can all
depend on them without dragging in SSH, NVML or Textual.
"""
