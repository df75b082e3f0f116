"""`python -m factoryctl` runs the CLI."""

from factoryctl.cli.app import main

main()
