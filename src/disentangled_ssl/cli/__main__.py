"""``python -m disentangled_ssl.cli`` (also what ``torchrun -m disentangled_ssl.cli`` runs)."""

import sys

from disentangled_ssl.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
