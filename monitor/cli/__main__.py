"""`python -m monitor.cli`: the same as the `mailcanary` console script."""

from monitor.cli.app import main

main()
