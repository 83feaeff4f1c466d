"""`python -m oiforge.cli`: the same as the `oiforge` command."""

from oiforge.cli import main

main()
