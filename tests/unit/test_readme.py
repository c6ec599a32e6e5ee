"""The README documents every setting, and only real ones."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.config import ConfigError, env_var_names, load_settings, project_keys

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SETTINGS_SECTION = README.split("## Settings", 1)[1].split("\n## ", 1)[0]
DOCUMENTED = set(re.findall(r"^\| `([^`]+)`(?: / `([^`]+)`)? \|", SETTINGS_SECTION, flags=re.MULTILINE))


def _documented_names() -> set[str]:
    return {name for row in DOCUMENTED for name in row if name}


def test_every_environment_variable_is_in_the_settings_table() -> None:
    missing = {name for names in env_var_names().values() for name in names} - _documented_names()
    assert missing == set(), f"add these to README's settings table: {sorted(missing)}"


def test_every_project_key_is_in_the_settings_table() -> None:
    missing = set(project_keys()) - _documented_names()
    assert missing == set(), f"add these to README's project-file table: {sorted(missing)}"


def test_the_table_lists_no_setting_that_does_not_exist() -> None:
    known = {name for names in env_var_names().values() for name in names} | set(project_keys())
    assert _documented_names() - known == set()


def test_example_project_file_is_valid() -> None:
    example = str(ROOT / "examples" / "etl-doctor.yml")
    settings = load_settings({"ETL_DOCTOR_CONFIG": example, "ORACLE_PASSWORD": "p@ss:w/rd", "REDSHIFT_PASSWORD": "x"})
    assert set(settings.project.pipelines) == {"policies-etl", "claims-etl"}
    assert [layer.name for layer in settings.project.kpis["premium_amount"].layers] == [
        "oracle.policies",
        "s3_raw.policies",
        "ods_policies",
        "fact_policies",
    ]
    oracle = settings.project.connections["oracle"].url.get_secret_value()
    assert "etl_ro:p%40ss%3Aw%2Frd@oracle.internal" in oracle  # a password cannot change the URL's shape
    with pytest.raises(ConfigError, match=r"connections\.oracle\.url: environment variable ORACLE_PASSWORD is not set"):
        load_settings({"ETL_DOCTOR_CONFIG": example})
