"""Where things are. Every location can be set from the environment; defaults live in the project."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
TRANSFORMS_DIR = PROJECT_DIR / "transforms"
SEEDS_DIR = TRANSFORMS_DIR / "seeds"
EXPECTATIONS_DIR = PROJECT_DIR / "expectations"


@dataclass(frozen=True)
class QuarantinePolicy:
    """A file fails the night on quarantined rows only when they exceed both the share and the count.

    A share alone would stop the whole province for one bad row in a small port's 25-row file.
    """

    max_share: float = 0.01
    max_rows: int = 20

    def describe(self) -> str:
        return f"more than {self.max_share:.1%} of its rows and more than {self.max_rows} rows"

    def breaches(self, files: list[tuple[str, int, int]]) -> list[str]:
        """What is wrong with each file (name, rows quarantined, rows read) that fails the night on its bad rows."""
        return [f"{name}: {quarantined} of {read} rows quarantined, {self.describe()} (see the quarantine table; "
                "CLEARANCE_MAX_QUARANTINE_SHARE and CLEARANCE_MAX_QUARANTINE_ROWS set the limits)"
                for name, quarantined, read in files
                if quarantined > self.max_share * read and quarantined > self.max_rows]


@dataclass(frozen=True)
class Settings:
    inbox: Path  # folder holding the dated deliveries <inbox>/<YYYY-MM-DD>/
    warehouse: Path  # the published DuckDB file analysts open
    max_quarantine_share: float  # a file fails the run with more quarantined rows than this share...
    max_quarantine_rows: int  # ...and more than this many
    keep_versions: int  # published warehouse files kept in versions/ besides the live one
    dashboard: Path  # the nightly dashboard, one self-contained HTML file
    memory_limit: str  # DuckDB's memory limit for the pipeline's work (it spills to disk beyond it)
    rebuild_memory_limit: str  # ...and for a full rebuild of the models, which reads every loaded row
    dashboard_url: str  # where offices open the dashboard; alert digests link to it

    @property
    def quarantine_policy(self) -> QuarantinePolicy:
        return QuarantinePolicy(self.max_quarantine_share, self.max_quarantine_rows)

    @property
    def warehouse_dir(self) -> Path:
        return self.warehouse.parent

    @property
    def work_dir(self) -> Path:
        """Scratch space of the runs, beside the warehouse (same filesystem, so os.replace is atomic)."""
        return self.warehouse_dir / "_build"

    @property
    def state_db(self) -> Path:
        """The pipeline's own DuckDB file: loaded rows, alert state, every model. Only the pipeline opens it."""
        return self.warehouse_dir / "_state" / f"{self.warehouse.stem}_state.duckdb"

    @property
    def partitions_dir(self) -> Path:
        """Monthly Parquet files behind the published warehouse's big tables (never rewritten)."""
        return self.warehouse_dir / "partitions"

    @property
    def versions_dir(self) -> Path:
        return self.warehouse_dir / "versions"

    @property
    def parquet_dir(self) -> Path:
        """The marts as Parquet partitioned by month (a link to the latest export)."""
        return self.warehouse_dir / "parquet"

    @property
    def event_log_dir(self) -> Path:
        """The clearance event log as XES, one file per month of declaration, for process-mining tools."""
        return self.warehouse_dir / "event_log"

    @property
    def gx_root(self) -> Path:
        """Great Expectations project of the runs: suites loaded from expectations/, every result kept."""
        return self.warehouse_dir / "validation"

    @property
    def data_docs_dir(self) -> Path:
        """Data Docs (static HTML) of the validation results, beside the warehouse."""
        return self.warehouse_dir / "data_docs"


def settings() -> Settings:
    dashboard = Path(os.environ.get("CLEARANCE_DASHBOARD", PROJECT_DIR / "dashboards" / "clearance_dashboard.html")).resolve()
    return Settings(
        inbox=Path(os.environ.get("CLEARANCE_INBOX", PROJECT_DIR / "warehouse" / "inbox")).resolve(),
        warehouse=Path(os.environ.get("CLEARANCE_WAREHOUSE", PROJECT_DIR / "warehouse" / "clearance.duckdb")).resolve(),
        max_quarantine_share=float(os.environ.get("CLEARANCE_MAX_QUARANTINE_SHARE", "0.01")),
        max_quarantine_rows=int(os.environ.get("CLEARANCE_MAX_QUARANTINE_ROWS", "20")),
        keep_versions=int(os.environ.get("CLEARANCE_KEEP_VERSIONS", "5")),
        dashboard=dashboard,
        # a night's task stays within 1.5 GiB (DuckDB's limit plus the process), a rebuild within 3 GiB
        memory_limit=os.environ.get("CLEARANCE_DUCKDB_MEMORY_LIMIT", "1GB"),
        rebuild_memory_limit=os.environ.get("CLEARANCE_DUCKDB_REBUILD_MEMORY_LIMIT", "2.5GB"),
        dashboard_url=os.environ.get("CLEARANCE_DASHBOARD_URL") or dashboard.as_uri(),
    )
