"""Telemetry: one-shot sweeps, the collection loop, node health, energy accounting and exposition."""
