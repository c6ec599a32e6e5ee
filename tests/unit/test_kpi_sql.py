"""The KPI funnel's pure parts: dialect SQL (Redshift, Oracle, Athena text), partition specs, values, verdicts."""

from __future__ import annotations

import hashlib
import sqlite3
from decimal import Decimal

import pytest
from sqlalchemy import bindparam, text
from sqlalchemy.dialects import mysql, oracle, postgresql
from sqlalchemy_redshift.dialect import RedshiftDialect_redshift_connector

from bot.config import ProjectConfig
from bot.kpi.databases import Databases, _connect_args, _prepare_sqlite, _sqlite_decimal
from bot.kpi.definitions import ConnectionConfig
from bot.kpi.dialects import dialect_for
from bot.kpi.engine import _verdict, to_decimal
from bot.kpi.keys import _next_size
from bot.kpi.model import KpiError
from bot.kpi.partitions import bounds, parse_range
from bot.kpi.queries import LayerSql, map_identifiers

INJECTIONS = [
    "2025-02-18'; DROP TABLE policies;--",
    "2025-02-18..2025-02-19 OR 1=1",
    "2025-02-18' OR '1'='1",
    "1; SELECT pg_sleep(10)",
    "2025-02-30",
    "2025-13-01",
    "../../etc/passwd",
    "",
]


def _project(**kpi: object) -> ProjectConfig:
    definition = {
        "aggregate": "sum",
        "column": "premium",
        "keys": ["policy_id"],
        "partition": {"column": "policy_date"},
        "layers": [
            {
                "name": "oracle.policies",
                "connection": "src",
                "table": "etl.policies",
                "columns": {"premium": "PREMIUM_AMT"},
            },
            {"name": "fact_policies", "connection": "dst", "table": "dw.fact_policies"},
        ],
        **kpi,
    }
    return ProjectConfig.model_validate(
        {
            "connections": {"src": {"url": "sqlite://"}, "dst": {"url": "sqlite://"}},
            "kpis": {"premium": definition},
        }
    )


def _sql(dialect: str, **kpi: object) -> LayerSql:
    config = _project(**kpi).kpis["premium"]
    preparers = {
        "oracle": oracle.dialect(),
        "redshift": RedshiftDialect_redshift_connector(),
        "postgresql": postgresql.dialect(),
        "mysql": mysql.dialect(),
    }
    quote = preparers.get(dialect, postgresql.dialect()).identifier_preparer.quote
    return LayerSql(config, config.layers[0], dialect_for(dialect), quote)


def test_redshift_sql_uses_redshift_functions_and_no_postgresql_only_syntax() -> None:
    layer = _sql("redshift", keys=["policy_id", "branch"])
    statement = layer.buckets(256, 16)
    assert "STRTOL(SUBSTR(MD5(" in statement
    assert "::" not in statement and "BIT(" not in statement
    assert "VARCHAR(65535)" in statement  # TEXT is VARCHAR(256) on Redshift: values would be cut
    assert "t.policy_date IN :part_days" in statement  # whole days: the column itself, so zone maps prune
    monthly = _sql("redshift", partition={"column": "policy_date", "grain": "month"}).buckets(256, None)
    assert "TO_CHAR(t.policy_date, 'YYYY-MM') IN :parts" in monthly
    assert "MOD(x.kh, 16) IN :parents" in statement and "GROUP BY MOD(x.kh, 256)" in statement


def test_oracle_sql_compiles_with_expanding_binds_and_oracle_functions() -> None:
    layer = _sql("oracle", types={"policy_id": "integer"})
    statement = layer.leaves(1024)
    assert "STANDARD_HASH(" in statement and "NVL2(" in statement
    assert "TRUNC(t.policy_id)" in statement  # Oracle has no BIGINT
    assert "BIGINT" not in statement and "LIMIT" not in statement and " AS t" not in statement
    assert "TO_CHAR(ROUND(t.\"PREMIUM_AMT\", 6), 'FM99999999999999999999999990.000000')" in statement
    clause = text(statement).bindparams(
        bindparam("parts", ["2025-02-18", "2025-02-19"], expanding=True),
        bindparam("buckets", [3, 7], expanding=True),
        lo="2025-02-18",
        hi="2025-02-20",
    )
    compiled = str(clause.compile(dialect=oracle.dialect(), compile_kwargs={"render_postcompile": True}))
    assert "IN (:parts_1, :parts_2)" in compiled and "IN (:buckets_1, :buckets_2)" in compiled
    assert ":lo" in compiled and ":hi" in compiled and "etl.policies t" in compiled


def test_athena_sql_uses_trino_functions() -> None:
    statement = _sql("awsathena").partition_breakdown(checksum=True)
    assert "FROM_BASE(SUBSTR(LOWER(TO_HEX(MD5(TO_UTF8(" in statement
    assert "DATE_FORMAT(t.policy_date, '%Y-%m-%d')" in statement


def test_logical_names_map_to_layer_names_outside_string_literals() -> None:
    layer = _project().kpis["premium"].layers[0]
    mapped = map_identifiers("premium > 0 AND note <> 'premium'", layer, lambda name: f'"{name}"')
    assert mapped == "\"PREMIUM_AMT\" > 0 AND note <> 'premium'"


@pytest.mark.parametrize("spec", INJECTIONS)
def test_partition_specs_are_parsed_strictly(spec: str) -> None:
    with pytest.raises(KpiError) as caught:
        parse_range(spec, "day")
    assert "2025-02-18" in str(caught.value)  # the answer shows what a valid one looks like


def test_partition_ranges_and_bounds_per_grain() -> None:
    assert parse_range("2025-02-01..2025-02-28", "day").label == "2025-02-01..2025-02-28"
    assert bounds(parse_range("2025-12", "month"))[1].isoformat() == "2026-01-01T00:00:00"
    assert bounds(parse_range("2025-02-18 23", "hour"))[1].isoformat() == "2025-02-19T00:00:00"
    with pytest.raises(KpiError, match="ends before it starts"):
        parse_range("2025-02-02..2025-02-01", "day")
    with pytest.raises(KpiError, match="more than 5,000 partitions"):
        parse_range("2000-01-01..2025-01-01", "day")


def test_sqlite_decimal_matches_what_numeric_casts_give_elsewhere() -> None:
    assert _sqlite_decimal(-0.0, 2) == "0.00"
    assert _sqlite_decimal(10.5, 2) == "10.50"
    assert _sqlite_decimal(0.1 + 0.2, 6) == "0.300000"
    assert _sqlite_decimal(2.675, 2) == "2.68"  # half away from zero, from the shortest repr as PostgreSQL does
    assert _sqlite_decimal("12", 0) == "12"
    assert _sqlite_decimal(None, 2) is None


def test_sqlite_functions_hash_the_same_bytes_as_md5_elsewhere() -> None:
    connection = sqlite3.connect(":memory:")
    _prepare_sqlite(connection, None, read_only=True)
    digest, number = connection.execute("SELECT etl_doctor_md5('é'), etl_doctor_hash('a', 15)").fetchone()
    assert digest == hashlib.md5("é".encode(), usedforsecurity=False).hexdigest()
    assert number == 57446577476672362  # PostgreSQL: ('x' || substr(md5('a'), 1, 15))::bit(60)::bigint
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        connection.execute("CREATE TABLE t (x)")


def test_kpi_values_compare_at_the_kpi_scale() -> None:
    assert to_decimal(0.1 + 0.2, 2) == Decimal("0.30")
    assert to_decimal(-0.0, 2) == Decimal(0) and str(to_decimal(-0.0, 2)) == "0.00"
    assert to_decimal(685, 2) == Decimal(685)
    with pytest.raises(KpiError, match="not a number"):
        to_decimal("2025-02-18", 2)


def test_verdict_uses_either_tolerance_bound() -> None:
    kpi = _project(tolerance={"relative": "0.001"}).kpis["premium"]
    diff, relative, within = _verdict(kpi, Decimal("1204331.50"), Decimal("1190002.10"))
    assert diff == Decimal("-14329.40") and relative == Decimal("-0.011898") and not within
    assert _verdict(kpi, Decimal(1000), Decimal("999.5"))[2]
    exact = _project().kpis["premium"]
    assert not _verdict(exact, Decimal(1000), Decimal("999.99"))[2]
    assert _verdict(exact, Decimal(0), Decimal(0)) == (Decimal(0), Decimal(0), True)


def test_next_pass_refines_sparse_differences_and_fetches_keys_when_dense() -> None:
    # 100 of 1,000 buckets of 1,000 rows differ: few differences, so refine before fetching 100,000 rows.
    assert _next_size(100_000, 1000, 0.1, 1_000_000 // 4) < 1000
    # The same, but another pass would re-hash 10 million rows: fetching the keys now is cheaper.
    assert _next_size(100_000, 1000, 0.1, 10_000_000) == 1000
    # Nearly every bucket differs and the buckets are small: fetching the keys now is cheapest.
    assert _next_size(4_000, 4, 0.9, 1_000_000) == 4


def test_config_names_unknown_connections_and_reserved_names() -> None:
    with pytest.raises(ValueError, match="unknown connection 'nope'; known: dst, src"):
        _project(
            layers=[{"name": "a", "connection": "nope", "table": "t"}, {"name": "b", "connection": "dst", "table": "t"}]
        )
    with pytest.raises(ValueError, match="reserved"):
        ProjectConfig.model_validate({"checks": {"list": {"connection": "x", "sql": "select 1"}}})


@pytest.mark.parametrize(("query", "expected"), [("true", True), ("false", False), ("0", False), ("1", True)])
def test_redshift_ssl_in_the_url_becomes_a_real_bool(query: str, expected: bool) -> None:
    # redshift-connector turns TLS on only for ssl=True: the text "true" from a URL would silently turn it off
    connection = ConnectionConfig(url=f"redshift+redshift_connector://etl@cluster:5439/dev?ssl={query}")
    assert _connect_args("redshift", connection.url.get_secret_value(), connection) == {"ssl": expected, "timeout": 15}
    engine = Databases({"warehouse": connection}).engine("warehouse")
    assert "ssl" not in engine.url.query  # passed as a bool, not as text
