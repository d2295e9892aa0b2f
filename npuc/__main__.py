"""``python -m npuc``: the npuc command line."""

from .cli import console_main

console_main()
