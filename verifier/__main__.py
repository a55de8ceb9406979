"""``python -m verifier`` = the ``verifier`` command."""

from .cli import main

main()
