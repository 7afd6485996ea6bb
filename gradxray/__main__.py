"""``python -m gradxray`` — the same as the ``gradxray`` console script."""
import sys

from gradxray.cli import main

if __name__ == "__main__":
    sys.exit(main())
