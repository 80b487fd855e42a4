"""The head revision read from the migration files without Alembic (Store.upgrade skips
Alembic when the database is there): a wrong answer would leave a schema behind, so anything
but a plain chain says None and leaves the decision to Alembic. That it agrees with Alembic
on the real files is checked in tests/integration/test_store.py."""

from __future__ import annotations

from pathlib import Path

from monitor.adapters.migrations import migrations_head


def migration(versions: Path, name: str, revision: str, down: str, doc: str = "") -> None:
    (versions / f"{name}.py").write_text(
        f'"""{name}\n\n    revision = "indented: not an assignment"\n{doc}"""\n'
        f'revision: str = "{revision}"\n'
        f"down_revision: str | Sequence[str] | None = {down}  # the one before\n"
        "def upgrade() -> None:\n    op.execute(\"UPDATE t SET revision = 'x'\")\n",
        encoding="utf-8",
    )


def test_the_head_of_a_plain_chain_and_none_for_anything_else(tmp_path: Path) -> None:
    chain = tmp_path / "chain"
    chain.mkdir()
    migration(chain, "0002_b", "0002", '"0001"')
    migration(chain, "0001_a", "0001", "None")
    migration(chain, "0003_c", "0003", '"0002"')
    assert migrations_head(chain) == "0003"

    for case, (revision, down, doc) in {
        "merge": ("0003", '("0001", "0002")', ""),  # Alembic's merge revision
        "branch": ("0003", '"0001"', ""),  # two heads: 0002 and 0003
        "computed": ("0003", 'PREVIOUS + "2"', ""),
        "said twice": ("0003", '"0002"', 'revision = "0004"\n'),
    }.items():
        versions = tmp_path / case
        versions.mkdir()
        migration(versions, "0001_a", "0001", "None")
        migration(versions, "0002_b", "0002", '"0001"')
        migration(versions, "0003_c", revision, down, doc)
        assert migrations_head(versions) is None, case
