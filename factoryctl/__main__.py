"""`python -m factoryctl` runs the CLI, as the `factoryctl` script does (`cli.entry`)."""

from factoryctl.cli.entry import main

main()
