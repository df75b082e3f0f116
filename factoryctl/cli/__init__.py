"""The `factoryctl` command line: one Typer app per noun, assembled in `app.py` behind one error boundary."""
