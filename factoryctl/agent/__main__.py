"""`python -m factoryctl.agent --node NAME [...]` (the zipapp's entry point calls the same `main`)."""

import sys

from factoryctl.agent.main import main

if __name__ == "__main__":
    sys.exit(main())
