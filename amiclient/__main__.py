"""``python -m amiclient``: see :mod:`amiclient.cli`."""
import sys

try:
    from .cli import main

    code = main()
except KeyboardInterrupt:  # Ctrl-C before main() could handle it
    code = 130
sys.exit(code)
