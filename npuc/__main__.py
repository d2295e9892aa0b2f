"""``python -m npuc``: the npuc command line."""

import sys

from .cli import main

sys.exit(main())
