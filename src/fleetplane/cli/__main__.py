"""`python -m fleetplane.cli`: the `fleetplane` command without its console script."""

from fleetplane.cli import main

main()
