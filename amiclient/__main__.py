"""``python -m amiclient``: see :mod:`amiclient.cli`."""
import sys

from .cli import main

sys.exit(main())
