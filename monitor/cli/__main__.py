"""`python -m monitor.cli`: the same as the `mailcanary` console script."""

from monitor.cli.entry import main

main()
