"""``python -m resgraph`` (also what ``torchrun ... -m resgraph train ...`` runs)."""

from resgraph.cli import main

main()
