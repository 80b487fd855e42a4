"""The README names exactly the Debian packages that ./dev installs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_lists_the_debian_packages_of_dev():
    debs = re.search(r"^DEBS=\(([^)]*)\)", (ROOT / "dev").read_text(), re.M)
    assert debs, "./dev: no DEBS=(...) line"
    readme = (ROOT / "README.md").read_text()
    said = re.search(r"the (\d+) Debian packages `([^`]+)`", readme)
    assert said, "README: no 'the N Debian packages `...`'"
    packages = debs.group(1).split()
    assert said.group(2).split() == packages
    assert int(said.group(1)) == len(packages)
