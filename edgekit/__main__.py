"""``python -m edgekit`` (and ``torchrun -m edgekit``) runs the CLI."""
from edgekit.cli import main

main(prog_name="edgekit")
