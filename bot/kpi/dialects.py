"""SQL fragments per database so equal values hash equal everywhere: normalisation, md5 to integer, labels."""

from __future__ import annotations

from dataclasses import dataclass

from bot.kpi.definitions import ColumnType

# Partition labels by grain: what a partition is called in answers and how each engine formats it.
_LABEL_FORMATS = {
    "strftime": {"hour": "%Y-%m-%d %H", "day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"},
    "to_char": {"hour": "YYYY-MM-DD HH24", "day": "YYYY-MM-DD", "month": "YYYY-MM", "year": "YYYY"},
    "mysql": {"hour": "%Y-%m-%d %H", "day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"},
}
_TIMESTAMP_FORMATS = {"strftime": "%Y-%m-%d %H:%M:%S", "to_char": "YYYY-MM-DD HH24:MI:SS", "mysql": "%Y-%m-%d %H:%i:%s"}
_DATE_FORMATS = {"strftime": "%Y-%m-%d", "to_char": "YYYY-MM-DD", "mysql": "%Y-%m-%d"}
KEY_HASH_DIGITS = 15  # 60 bits: a bigint everywhere, collisions negligible for billions of keys
ROW_HASH_DIGITS = 8  # 32 bits: sums over 2^31 rows still fit a bigint


@dataclass(frozen=True)
class SqlDialect:
    """How one engine spells the few operations the funnel needs.

    Attributes:
        name: SQLAlchemy dialect name (``sqlite``, ``postgresql``, ``mysql``, ``redshift``, ``oracle``, ``awsathena``).
        formatting: Which date formatting family the engine uses (``strftime``, ``to_char``, ``mysql``).
        text_type: The type a value is cast to for text.
    """

    name: str
    formatting: str
    text_type: str

    def concat(self, *parts: str) -> str:
        """String concatenation of non-null parts."""
        if self.name == "mysql":
            return f"CONCAT({', '.join(parts)})"
        return " || ".join(parts)

    def as_text(self, expression: str) -> str:
        """Cast to text."""
        if self.name == "oracle":
            return f"TO_CHAR({expression})"
        return f"CAST({expression} AS {self.text_type})"

    def length(self, expression: str) -> str:
        """Length in characters, as text."""
        function = "CHAR_LENGTH" if self.name == "mysql" else "LENGTH"
        return self.as_text(f"{function}({expression})")

    def as_bigint(self, expression: str) -> str:
        """An integer column as a 64-bit integer."""
        if self.name == "oracle":
            return f"TRUNC({expression})"
        return f"CAST({expression} AS {'SIGNED' if self.name == 'mysql' else 'BIGINT'})"

    def modulo(self, expression: str, modulus: int) -> str:
        """``expression mod modulus`` for a non-negative integer expression."""
        if self.name == "sqlite":
            return f"({expression} % {int(modulus)})"
        return f"MOD({expression}, {int(modulus)})"

    def format_time(self, expression: str, pattern_family: dict[str, str], key: str) -> str:
        """Format a date/timestamp with the engine's formatting function."""
        pattern = pattern_family[self.formatting] if key == "" else _LABEL_FORMATS[self.formatting][key]
        if self.formatting == "strftime":
            return f"strftime('{pattern}', {expression})"
        if self.formatting == "mysql":
            return f"DATE_FORMAT({expression}, '{pattern}')"
        return f"TO_CHAR({expression}, '{pattern}')"

    def partition_label(self, expression: str, grain: str) -> str:
        """The partition label (`2025-02-18`, `2025-02`, ...) of a date or timestamp."""
        return self.format_time(expression, {}, grain)

    def normalise(self, expression: str, column_type: ColumnType, scale: int) -> str:
        """Text form of a value that is identical across engines for equal values (NULL stays NULL).

        Decimals at ``scale`` places (so 10.5 = 10.50 and -0 = 0), integers without decimals, dates as
        YYYY-MM-DD, timestamps at whole seconds, text unchanged.
        """
        if column_type == "decimal":
            if self.name == "sqlite":
                return f"etl_doctor_decimal({expression}, {int(scale)})"
            if self.name == "oracle":
                digits = "0" * scale
                pattern = f"FM99999999999999999999999990{'.' + digits if scale else ''}"
                return f"TO_CHAR(ROUND({expression}, {int(scale)}), '{pattern}')"
            return self.as_text(f"CAST({expression} AS DECIMAL(38, {int(scale)}))")
        if column_type == "integer":
            if self.name == "sqlite":
                return f"CAST(CAST({expression} AS INTEGER) AS TEXT)"
            if self.name == "mysql":
                return f"CAST(CAST({expression} AS SIGNED) AS CHAR)"
            if self.name == "oracle":
                return f"TO_CHAR(TRUNC({expression}))"
            return self.as_text(f"CAST({expression} AS BIGINT)")
        if column_type == "date":
            return self.format_time(expression, _DATE_FORMATS, "")
        if column_type == "timestamp":
            return self.format_time(expression, _TIMESTAMP_FORMATS, "")
        return self.as_text(expression)

    def encode(self, normalised: str) -> str:
        """Self-delimiting encoding: `<length>:<text>`, or `N` for NULL (so NULL differs from '')."""
        encoded = self.concat(self.length(normalised), "':'", normalised)
        if self.name == "oracle":
            return f"NVL2({normalised}, {encoded}, 'N')"
        return f"COALESCE({encoded}, 'N')"

    def md5_hex(self, expression: str) -> str:
        """Lower-case hex md5 of a text expression (UTF-8)."""
        if self.name == "sqlite":
            return f"etl_doctor_md5({expression})"
        if self.name == "oracle":
            return f"LOWER(RAWTOHEX(STANDARD_HASH({expression}, 'MD5')))"
        if self.name == "awsathena":
            return f"LOWER(TO_HEX(MD5(TO_UTF8({expression}))))"
        return f"MD5({expression})"

    def hash_int(self, expression: str, digits: int) -> str:
        """A non-negative integer from the first ``digits`` hex digits of the md5 of a text expression."""
        if self.name == "sqlite":
            return f"etl_doctor_hash({expression}, {int(digits)})"
        if self.name == "oracle":
            hexadecimal = f"SUBSTR(RAWTOHEX(STANDARD_HASH({expression}, 'MD5')), 1, {int(digits)})"
            return f"TO_NUMBER({hexadecimal}, '{'X' * int(digits)}')"
        prefix = f"SUBSTR({self.md5_hex(expression)}, 1, {int(digits)})"
        if self.name == "postgresql":
            return f"CAST(CAST('x' || {prefix} AS BIT({4 * int(digits)})) AS BIGINT)"
        if self.name == "redshift":
            return f"STRTOL({prefix}, 16)"
        if self.name == "mysql":
            return f"CAST(CONV({prefix}, 16, 10) AS UNSIGNED)"
        return f"FROM_BASE({prefix}, 16)"

    def count_if_null(self, expression: str) -> str:
        """Number of rows where the expression is NULL."""
        return f"SUM(CASE WHEN {expression} IS NULL THEN 1 ELSE 0 END)"


_DIALECTS = {
    "sqlite": SqlDialect("sqlite", "strftime", "TEXT"),
    "postgresql": SqlDialect("postgresql", "to_char", "TEXT"),
    "redshift": SqlDialect("redshift", "to_char", "VARCHAR(65535)"),
    "mysql": SqlDialect("mysql", "mysql", "CHAR"),
    "mariadb": SqlDialect("mysql", "mysql", "CHAR"),
    "oracle": SqlDialect("oracle", "to_char", "VARCHAR2(4000)"),
    "awsathena": SqlDialect("awsathena", "mysql", "VARCHAR"),
    "trino": SqlDialect("awsathena", "mysql", "VARCHAR"),
}


def dialect_for(name: str) -> SqlDialect:
    """The SQL dialect for a SQLAlchemy dialect name.

    Raises:
        ValueError: The engine is not supported (the message lists those that are).
    """
    try:
        return _DIALECTS[name]
    except KeyError:
        known = ", ".join(sorted(_DIALECTS))
        raise ValueError(f"database {name!r} is not supported for KPIs; supported: {known}") from None
