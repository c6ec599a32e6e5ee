"""The sandbox's KPI world: the lineage of `premium_amount` in SQLite files, with gaps injected on purpose.

Four layers, one database file standing in for each kind of system:

- ``source.db`` stands in for Oracle: ``policies`` (the system of record);
- ``lake.db`` for the S3 raw layer as Athena/Spectrum sees it: ``raw_policies``, other column names;
- ``warehouse.db`` for Redshift: ``ods_policies`` (loaded from the raw layer) and ``fact_policies``.

Sixty daily partitions end on 2025-02-18. What went wrong, exactly (`KpiWorld` says it in numbers):

1. 2025-02-18: the raw extract landed in two files. ``part-00001`` (143 policies changed after 22:00)
   arrived after the ODS load had read the prefix, so ``ods_policies`` and ``fact_policies`` lack those
   143 policies: source 1,204,331.50 vs Redshift 1,190,002.10 (-1.19%). The run failed before its
   partition-registration step, so ``dt=2025-02-18`` is in S3 but not in the Glue Data Catalog.
2. 2025-02-11: two rows of ``fact_policies`` have a NULL premium (a lookup that found nothing).
3. 2025-02-14: one policy is in ``fact_policies`` twice (a join fan-out on a duplicated dimension row).
4. Three refunds were booked as negative premiums in the source (the ``no_negative_premiums`` check).
"""

from __future__ import annotations

import gzip
import random
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

KPI_NAME = "premium_amount"
CHECK_NAME = "no_negative_premiums"
LAST_PARTITION = date(2025, 2, 18)
DAYS = 60
SEED = 20250218

SOURCE_LAYER, RAW_LAYER, ODS_LAYER, FACT_LAYER = "oracle.policies", "s3_raw.policies", "ods_policies", "fact_policies"
LAYERS = (SOURCE_LAYER, RAW_LAYER, ODS_LAYER, FACT_LAYER)
CONNECTIONS = {"oracle": "source.db", "athena": "lake.db", "redshift": "warehouse.db"}

GLUE_DATABASE, GLUE_TABLE = "raw", "policies"
RAW_BUCKET = "etl-doctor-sandbox-raw"
RAW_PREFIX = "policies"  # s3://etl-doctor-sandbox-raw/policies/dt=YYYY-MM-DD/part-0000N.csv.gz
ON_TIME_FILE, LATE_FILE = "part-00000.csv.gz", "part-00001.csv.gz"

BROKEN_PARTITION = "2025-02-18"
BROKEN_ROWS = 2_047  # policies of 2025-02-18 in the source
LATE_ROWS = 143  # of which arrived late in S3 and never reached ODS
SOURCE_TOTAL_CENTS = 120_433_150  # 1,204,331.50, DESIGN.md's day
LATE_TOTAL_CENTS = 1_432_940  # 14,329.40 -> Redshift 1,190,002.10
NULL_PARTITION, NULL_ROWS = "2025-02-11", 2
DUPLICATE_PARTITION, DUPLICATE_ROWS = "2025-02-14", 1
NEGATIVE_PARTITIONS = ("2025-02-04", "2025-02-09", "2025-02-16")
LATE_ARRIVAL = "2025-02-19 03:05:00"


@dataclass(frozen=True)
class LayerTotals:
    """One layer's rows and KPI (sum of premium_amount, NULLs ignored) in one partition."""

    rows: int
    total: Decimal


@dataclass(frozen=True)
class Gap:
    """A difference injected on purpose, and where it first shows in the lineage.

    Attributes:
        kind: ``late_file`` (rows lost), ``null_measure`` (value lost), ``duplicate_key`` (rows gained).
        partition: The partition it is in.
        upstream: The last layer that is still right.
        downstream: The first layer that is wrong.
        keys: The policy_ids concerned.
        amount: How much the downstream layer's KPI differs from the upstream's (negative: lower).
        rows: How many rows the downstream layer has more (positive) or fewer (negative).
    """

    kind: str
    partition: str
    upstream: str
    downstream: str
    keys: tuple[int, ...]
    amount: Decimal
    rows: int
    description: str


@dataclass(frozen=True)
class KpiWorld:
    """Where the KPI world's files are and exactly what is wrong in it (the answers tests assert).

    Attributes:
        directory: Holds source.db, lake.db and warehouse.db.
        partitions: The 60 daily partitions, oldest first.
        source_rows: Policies per partition in the source.
        totals: Per partition, per layer: rows and KPI.
        gaps: The injected differences, the headline first.
        negative_keys: Policies with a negative premium in the source (what the check counts).
        glue_missing_partitions: Partitions in S3 but not in the Glue Data Catalog.
    """

    directory: Path
    partitions: tuple[str, ...]
    source_rows: dict[str, int]
    totals: dict[str, dict[str, LayerTotals]]
    gaps: tuple[Gap, ...]
    negative_keys: tuple[int, ...]
    glue_missing_partitions: tuple[str, ...]

    @property
    def headline(self) -> Gap:
        """The gap the demo tells: 143 policies lost between the raw layer and ODS on 2025-02-18."""
        return self.gaps[0]

    @property
    def missing_keys(self) -> tuple[int, ...]:
        """The 143 policy_ids in the raw layer but missing from ods_policies and fact_policies on 2025-02-18."""
        return self.headline.keys

    def path(self, connection: str) -> Path:
        """The SQLite file behind a connection name (oracle, athena, redshift)."""
        return self.directory / CONNECTIONS[connection]

    def url(self, connection: str) -> str:
        """The SQLAlchemy URL of a connection."""
        return f"sqlite:///{self.path(connection).resolve()}"

    def s3_prefix(self, partition: str) -> str:
        """The S3 prefix of one raw partition."""
        return f"s3://{RAW_BUCKET}/{RAW_PREFIX}/dt={partition}/"

    def source_total(self, partition: str = BROKEN_PARTITION) -> Decimal:
        """The KPI in the source for one partition."""
        return self.totals[partition][SOURCE_LAYER].total

    def target_total(self, partition: str = BROKEN_PARTITION) -> Decimal:
        """The KPI in fact_policies for one partition."""
        return self.totals[partition][FACT_LAYER].total


def _cents(value: int) -> Decimal:
    return (Decimal(value) / 100).quantize(Decimal("0.01"))


def _scale_to(values: list[int], total: int) -> list[int]:
    """Scale positive integers so they sum to exactly ``total`` (the rounding residue goes to the first ones)."""
    current = sum(values)
    scaled = [max(1, value * total // current) for value in values]
    residue = total - sum(scaled)
    for index in range(abs(residue)):
        scaled[index % len(scaled)] += 1 if residue > 0 else -1
    return scaled


@dataclass
class _Row:
    policy_id: int
    policy_date: str
    cents: int
    status: str
    updated_at: str
    late: bool = False


def _premium(rng: random.Random) -> int:
    """A premium in cents: log-normal around 600.00, at least 15.00."""
    return max(1_500, round(rng.lognormvariate(6.22, 0.6) * 100))


def _time(rng: random.Random, first_hour: int, last_hour: int) -> str:
    seconds = rng.randrange(first_hour * 3600, (last_hour + 1) * 3600)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _generate(rng: random.Random) -> list[_Row]:
    rows: list[_Row] = []
    next_id = 1_000_001
    statuses = ("active",) * 16 + ("lapsed",) * 2 + ("cancelled",) * 2
    for offset in range(DAYS - 1, -1, -1):
        day = (LAST_PARTITION - timedelta(days=offset)).isoformat()
        count = BROKEN_ROWS if day == BROKEN_PARTITION else rng.randint(1_700, 2_300)
        late = set(rng.sample(range(count), LATE_ROWS)) if day == BROKEN_PARTITION else set()
        day_rows = [
            _Row(
                policy_id=next_id + index,
                policy_date=day,
                cents=rng.randint(3_000, 17_000) if index in late else _premium(rng),
                status=rng.choice(statuses),
                updated_at=f"{day} {_time(rng, 22, 23) if index in late else _time(rng, 0, 21)}",
                late=index in late,
            )
            for index in range(count)
        ]
        next_id += count
        if day == BROKEN_PARTITION:  # make DESIGN.md's numbers exact
            late_rows = [row for row in day_rows if row.late]
            on_time = [row for row in day_rows if not row.late]
            for group, total in ((late_rows, LATE_TOTAL_CENTS), (on_time, SOURCE_TOTAL_CENTS - LATE_TOTAL_CENTS)):
                for row, cents in zip(group, _scale_to([row.cents for row in group], total), strict=True):
                    row.cents = cents
        rows += day_rows
    return rows


@contextmanager
def _database(path: Path) -> Iterator[sqlite3.Connection]:
    path.unlink(missing_ok=True)
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        connection.execute("PRAGMA journal_mode = OFF")
        connection.execute("PRAGMA synchronous = OFF")
        connection.execute("BEGIN")
        yield connection
        connection.execute("COMMIT")


def build_kpi_world(directory: Path) -> KpiWorld:
    """Create source.db, lake.db and warehouse.db in ``directory`` (replacing them) and describe their gaps.

    The data is the same on every call (a seeded generator): about 120,000 policies over 60 days.
    """
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)  # noqa: S311 - reproducible demo data, not secrets
    rows = _generate(rng)
    by_day: dict[str, list[_Row]] = {}
    for row in rows:
        by_day.setdefault(row.policy_date, []).append(row)
    partitions = tuple(by_day)

    negatives = []
    for day in NEGATIVE_PARTITIONS:  # refunds booked as negative premiums
        row = rng.choice([r for r in by_day[day] if r.status == "cancelled"])
        row.cents = -row.cents
        negatives.append(row)
    nulls = rng.sample([r for r in by_day[NULL_PARTITION] if r.cents > 0], NULL_ROWS)
    duplicates = rng.sample([r for r in by_day[DUPLICATE_PARTITION] if r.cents > 0], DUPLICATE_ROWS)
    late = [row for row in by_day[BROKEN_PARTITION] if row.late]

    _write_source(directory / CONNECTIONS["oracle"], rows)
    _write_lake(directory / CONNECTIONS["athena"], directory / CONNECTIONS["oracle"])
    _write_warehouse(
        directory / CONNECTIONS["redshift"],
        directory / CONNECTIONS["athena"],
        nulls=[r.policy_id for r in nulls],
        duplicates=[r.policy_id for r in duplicates],
    )

    gaps = (
        Gap(
            kind="late_file",
            partition=BROKEN_PARTITION,
            upstream=RAW_LAYER,
            downstream=ODS_LAYER,
            keys=tuple(sorted(r.policy_id for r in late)),
            amount=-_cents(sum(r.cents for r in late)),
            rows=-len(late),
            description=f"{LATE_FILE} of dt={BROKEN_PARTITION} ({len(late)} policies changed after 22:00) landed "
            f"in S3 at {LATE_ARRIVAL}, after the ODS load had read the prefix; the partition was never "
            "registered in the Glue Data Catalog",
        ),
        Gap(
            kind="null_measure",
            partition=NULL_PARTITION,
            upstream=ODS_LAYER,
            downstream=FACT_LAYER,
            keys=tuple(sorted(r.policy_id for r in nulls)),
            amount=-_cents(sum(r.cents for r in nulls)),
            rows=0,
            description=f"{len(nulls)} rows of fact_policies have a NULL premium_amount (a lookup found nothing)",
        ),
        Gap(
            kind="duplicate_key",
            partition=DUPLICATE_PARTITION,
            upstream=ODS_LAYER,
            downstream=FACT_LAYER,
            keys=tuple(sorted(r.policy_id for r in duplicates)),
            amount=_cents(sum(r.cents for r in duplicates)),
            rows=len(duplicates),
            description=f"{len(duplicates)} policy is in fact_policies twice (a join fan-out)",
        ),
    )
    return KpiWorld(
        directory=directory,
        partitions=partitions,
        source_rows={day: len(day_rows) for day, day_rows in by_day.items()},
        totals=_totals(by_day, gaps),
        gaps=gaps,
        negative_keys=tuple(sorted(r.policy_id for r in negatives)),
        glue_missing_partitions=(BROKEN_PARTITION,),
    )


def _totals(by_day: dict[str, list[_Row]], gaps: tuple[Gap, ...]) -> dict[str, dict[str, LayerTotals]]:
    """Each layer's rows and KPI per partition, computed from the generated rows and the gaps (not from SQL)."""
    totals: dict[str, dict[str, LayerTotals]] = {}
    for day, day_rows in by_day.items():
        layer = LayerTotals(len(day_rows), _cents(sum(r.cents for r in day_rows)))
        totals[day] = {}
        for name in LAYERS:
            for gap in gaps:
                if gap.partition == day and gap.downstream == name:
                    layer = LayerTotals(layer.rows + gap.rows, layer.total + gap.amount)
            totals[day][name] = layer
    return totals


def _price(cents: int) -> str:
    return str(_cents(cents))


def _write_source(path: Path, rows: list[_Row]) -> None:
    with _database(path) as db:
        db.execute(
            "CREATE TABLE policies (policy_id INTEGER PRIMARY KEY, policy_date TEXT NOT NULL, "
            "premium_amount NUMERIC(12, 2), status TEXT NOT NULL, updated_at TEXT NOT NULL)"
        )
        db.executemany(
            "INSERT INTO policies VALUES (?, ?, ?, ?, ?)",
            [(r.policy_id, r.policy_date, _price(r.cents), r.status, r.updated_at) for r in rows],
        )
        db.execute("CREATE INDEX policies_policy_date ON policies (policy_date)")
        # the late file is what the extract wrote last; remembered here so the lake can split its files
        db.execute("CREATE TABLE extract_files (policy_id INTEGER PRIMARY KEY, file TEXT NOT NULL)")
        db.executemany(
            "INSERT INTO extract_files VALUES (?, ?)",
            [(r.policy_id, LATE_FILE) for r in rows if r.late],
        )


def _write_lake(path: Path, source: Path) -> None:
    with _database(path) as db:
        db.execute(
            "CREATE TABLE raw_policies (policy_id INTEGER, dt TEXT, premium_amt REAL, policy_status TEXT, "
            "updated_ts TEXT, source_file TEXT)"
        )
        db.execute("ATTACH DATABASE ? AS src", (str(source),))
        db.execute(
            "INSERT INTO raw_policies SELECT p.policy_id, p.policy_date, p.premium_amount, p.status, p.updated_at, "
            "COALESCE(f.file, ?) FROM src.policies p LEFT JOIN src.extract_files f USING (policy_id)",
            (ON_TIME_FILE,),
        )
        db.execute("CREATE INDEX raw_policies_dt ON raw_policies (dt)")
    with closing(sqlite3.connect(source, isolation_level=None)) as db:
        db.execute("DROP TABLE extract_files")  # the source knows nothing of files
        db.execute("VACUUM")


def _write_warehouse(path: Path, lake: Path, *, nulls: list[int], duplicates: list[int]) -> None:
    with _database(path) as db:
        db.execute(
            "CREATE TABLE ods_policies (policy_id INTEGER, policy_date TEXT, premium_amount NUMERIC(12, 2), "
            "status TEXT, updated_at TEXT, loaded_at TEXT)"
        )
        db.execute(
            "CREATE TABLE fact_policies (policy_sk INTEGER PRIMARY KEY, policy_id INTEGER, policy_date TEXT, "
            "premium_amount NUMERIC(12, 2), status TEXT, updated_at TEXT)"
        )
        db.execute("ATTACH DATABASE ? AS lake", (str(lake),))
        db.execute(
            "INSERT INTO ods_policies SELECT policy_id, dt, premium_amt, policy_status, updated_ts, "
            "date(dt, '+1 day') || ' 02:30:00' FROM lake.raw_policies WHERE source_file = ? ORDER BY policy_id",
            (ON_TIME_FILE,),  # the late file landed after the load had read the prefix
        )
        db.execute(
            "INSERT INTO fact_policies (policy_id, policy_date, premium_amount, status, updated_at) "
            "SELECT policy_id, policy_date, premium_amount, status, updated_at FROM ods_policies ORDER BY policy_id"
        )
        db.executemany("UPDATE fact_policies SET premium_amount = NULL WHERE policy_id = ?", [(k,) for k in nulls])
        db.executemany(  # the fan-out: the same policy loaded twice, with a new surrogate key
            "INSERT INTO fact_policies (policy_id, policy_date, premium_amount, status, updated_at) "
            "SELECT policy_id, policy_date, premium_amount, status, updated_at FROM fact_policies WHERE policy_id = ?",
            [(k,) for k in duplicates],
        )
        db.execute("CREATE INDEX ods_policies_policy_date ON ods_policies (policy_date)")
        db.execute("CREATE INDEX fact_policies_policy_date ON fact_policies (policy_date)")


def project_fragment(world: KpiWorld, *, pipeline: str, channel: str) -> dict[str, Any]:
    """The ``connections``, ``kpis`` and ``checks`` of etl-doctor.yml that describe this world.

    Args:
        world: The built world.
        pipeline: The pipeline that loads the KPI (its re-run is the backfill suggestion).
        channel: Where scheduled results go.
    """
    return {
        "connections": {name: {"url": world.url(name)} for name in CONNECTIONS},
        "kpis": {
            KPI_NAME: {
                "description": "Written premium per policy date, Oracle → S3 raw → Redshift",
                "aggregate": "sum",
                "column": "premium_amount",
                "keys": ["policy_id"],
                "types": {"policy_id": "integer"},
                "partition": {"column": "policy_date", "grain": "day"},
                "tolerance": {"relative": "0.001"},
                "change_column": "updated_at",
                "pipeline": pipeline,
                "rerun_input": '{"date": "{partition}"}',
                "channel": channel,
                "layers": [
                    {"name": SOURCE_LAYER, "connection": "oracle", "table": "policies"},
                    {
                        "name": RAW_LAYER,
                        "connection": "athena",
                        "table": "raw_policies",
                        "columns": {"policy_date": "dt", "premium_amount": "premium_amt", "updated_at": "updated_ts"},
                        "glue": {
                            "database": GLUE_DATABASE,
                            "table": GLUE_TABLE,
                            "s3_prefix": f"s3://{RAW_BUCKET}/{RAW_PREFIX}/dt={{partition}}/",
                            "partition_key": "dt",
                        },
                    },
                    {"name": ODS_LAYER, "connection": "redshift", "table": "ods_policies"},
                    {"name": FACT_LAYER, "connection": "redshift", "table": "fact_policies"},
                ],
            }
        },
        "checks": {
            CHECK_NAME: {
                "description": "Premiums are never negative (refunds belong in their own table)",
                "connection": "oracle",
                "sql": "SELECT COUNT(*) FROM policies WHERE premium_amount < 0",
                "threshold": 0,
                "channel": channel,
            }
        },
    }


def _partition_files(world: KpiWorld) -> Iterator[tuple[str, str, bytes]]:
    """(partition, file name, gzipped CSV) for every raw file, as the extract wrote them."""
    header = "policy_id,premium_amt,policy_status,updated_ts\n"
    with closing(sqlite3.connect(f"file:{world.path('athena')}?mode=ro", uri=True)) as lake:
        cursor = lake.execute(  # the CSV text is made by SQLite: a few ms instead of a Python loop per row
            "SELECT dt, source_file, group_concat(line, char(10)) FROM (SELECT dt, source_file, "
            "policy_id || ',' || printf('%.2f', premium_amt) || ',' || policy_status || ',' || updated_ts AS line "
            "FROM raw_policies ORDER BY dt, source_file, policy_id) GROUP BY dt, source_file ORDER BY dt, source_file"
        )
        for partition, file, lines in cursor:
            yield partition, file, gzip.compress(f"{header}{lines}\n".encode(), compresslevel=1, mtime=0)


def seed_kpi_catalog(world: KpiWorld, glue: Any, s3: Any) -> None:
    """Put the raw layer's files in S3 and its table in the Glue Data Catalog, without 2025-02-18's partition.

    Args:
        world: The built world (its lake.db is what the files hold).
        glue: A boto3 ``glue`` client (moto).
        s3: A boto3 ``s3`` client (moto).
    """
    s3.create_bucket(Bucket=RAW_BUCKET)
    for partition, file, body in _partition_files(world):
        key = f"{RAW_PREFIX}/dt={partition}/{file}"
        s3.put_object(Bucket=RAW_BUCKET, Key=key, Body=body, ContentType="application/gzip")
    location = f"s3://{RAW_BUCKET}/{RAW_PREFIX}/"
    storage = {
        "Columns": [
            {"Name": "policy_id", "Type": "bigint"},
            {"Name": "premium_amt", "Type": "decimal(12,2)"},
            {"Name": "policy_status", "Type": "string"},
            {"Name": "updated_ts", "Type": "timestamp"},
        ],
        "Location": location,
        "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
        "OutputFormat": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
        "SerdeInfo": {
            "SerializationLibrary": "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
            "Parameters": {"field.delim": ",", "skip.header.line.count": "1"},
        },
    }
    glue.create_database(DatabaseInput={"Name": GLUE_DATABASE, "Description": "S3 raw layer (sandbox)"})
    glue.create_table(
        DatabaseName=GLUE_DATABASE,
        TableInput={
            "Name": GLUE_TABLE,
            "TableType": "EXTERNAL_TABLE",
            "PartitionKeys": [{"Name": "dt", "Type": "string"}],
            "StorageDescriptor": storage,
            "Parameters": {"classification": "csv", "compressionType": "gzip"},
        },
    )
    registered = [p for p in world.partitions if p not in world.glue_missing_partitions]
    for start in range(0, len(registered), 100):  # BatchCreatePartition takes at most 100
        glue.batch_create_partition(
            DatabaseName=GLUE_DATABASE,
            TableName=GLUE_TABLE,
            PartitionInputList=[
                {"Values": [p], "StorageDescriptor": {**storage, "Location": world.s3_prefix(p)}}
                for p in registered[start : start + 100]
            ],
        )
