"""What the live dashboard shows, without the dashboard: its services port, the store's view and its own collector.

The dashboard (`factoryctl.tui`) draws snapshots; everything that reads nodes or the store to make them lives here,
below the UI: it imports no Textual or Rich (an import-linter contract, not only a test), so the CLI, a benchmark or
a test drives it headless. This `__init__` imports nothing.
"""
