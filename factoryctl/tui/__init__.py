"""The live dashboard (`factoryctl dash`): a Textual app built by `factoryctl.tui.app.make_app` from its services.

This package's `__init__` imports nothing, so the headless parts (services, summaries, renderables) can be used and
tested without starting Textual.
"""
