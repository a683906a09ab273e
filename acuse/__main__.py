"""``python -m acuse`` runs the command line."""

from acuse.cli import main

main()
