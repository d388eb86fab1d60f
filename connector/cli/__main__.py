"""`python -m connector.cli`: the `connector` command (the tests and bench/harness.py run it so)."""

from connector.cli import main

if __name__ == "__main__":  # not on a mere import (a walk over the package's modules)
    main()
