"""The settings module is the one place REPUTATION_* variables are declared and read,
and the README's configuration table lists exactly the ones an operator sets."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from reputation_pipeline import settings

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "reputation_pipeline"
NAME = re.compile(r"REPUTATION_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_])")  # a whole name, not a prefix


def _readme_configuration() -> set[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    return {n for line in section.splitlines() if line.startswith("| `") for n in NAME.findall(line.split(" | ")[0])}


def test_the_readme_table_lists_every_operator_setting_and_nothing_else():
    declared = {s.name for s in settings.ALL if not s.internal}
    listed = _readme_configuration()
    assert listed - declared == set(), "README lists variables settings.py does not declare"
    assert declared - listed == set(), "settings.py declares variables the README's table does not list"


def test_every_variable_the_package_names_is_declared_and_read_only_through_settings():
    declared = {s.name for s in settings.ALL}
    # a read of the environment by name, or a name kept in a constant of its own
    direct = re.compile(r"""(?:environ(?:\.get)?\s*[\(\[]|getenv\s*\(|setdefault\s*\()\s*["']REPUTATION_"""
                        r"""|["']REPUTATION_[A-Z0-9_]+["']""")
    undeclared, readers = {}, []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "settings.py":
            continue
        text = path.read_text()
        names = set(NAME.findall(text)) - declared
        if names:
            undeclared[str(path.relative_to(PACKAGE))] = sorted(names)
        if direct.search(text):
            readers.append(str(path.relative_to(PACKAGE)))
    assert undeclared == {}, "REPUTATION_* names missing from settings.py"
    assert readers == [], "read REPUTATION_* variables through reputation_pipeline.settings"
    macros = "\n".join(p.read_text() for p in (ROOT / "dbt_project").rglob("*.sql") if "target" not in p.parts)
    assert set(NAME.findall(macros)) - declared == set(), "the dbt project reads an undeclared variable"


def test_values_are_typed_and_a_bad_one_names_its_variable(monkeypatch):
    monkeypatch.delenv(settings.INGEST_PART_BYTES.name, raising=False)
    assert settings.INGEST_PART_BYTES.get() == 16 * 1024 * 1024
    monkeypatch.setenv(settings.INGEST_PART_BYTES.name, " 4096 ")
    assert settings.INGEST_PART_BYTES.get() == 4096
    monkeypatch.setenv(settings.INGEST_PART_BYTES.name, "")  # empty is unset
    assert settings.INGEST_PART_BYTES.get() == 16 * 1024 * 1024
    monkeypatch.setenv(settings.INGEST_PART_BYTES.name, "16MiB")
    with pytest.raises(ValueError, match="REPUTATION_INGEST_PART_BYTES must be an integer, got '16MiB'"):
        settings.INGEST_PART_BYTES.get()
    monkeypatch.setenv(settings.INGEST_PART_BYTES.name, "100")
    with pytest.raises(ValueError, match="at least 1024"):
        settings.INGEST_PART_BYTES.get()
    for raw, value in (("0", False), ("off", False), ("TRUE", True), ("1", True)):
        monkeypatch.setenv(settings.DETECT_LANGUAGE.name, raw)
        assert settings.DETECT_LANGUAGE.get() is value
    monkeypatch.setenv(settings.DETECT_LANGUAGE.name, "maybe")
    with pytest.raises(ValueError, match="REPUTATION_DETECT_LANGUAGE must be 0/1"):
        settings.DETECT_LANGUAGE.get()
    monkeypatch.setenv(settings.PLATFORM_MODELS.name, '{"reddit": {"hate": "x"}}')
    assert settings.PLATFORM_MODELS.get() == {"reddit": {"hate": "x"}}


def test_defaults_agree_with_the_modules_that_also_name_them():
    from reputation_pipeline.alerts.publisher import ALERTS_TOPIC
    from reputation_pipeline.scoring.language import DEFAULT_MIN_CONFIDENCE
    from reputation_pipeline.scoring.models import DEFAULT_REF

    assert settings.LANGUAGE_MIN_CONFIDENCE.default == DEFAULT_MIN_CONFIDENCE
    assert {settings.SENTIMENT_MODEL.default, settings.OFFENSIVE_MODEL.default, settings.HATE_MODEL.default} == {
        DEFAULT_REF}
    assert settings.ALERTS_TOPIC.default == ALERTS_TOPIC
    assert len({s.name for s in settings.ALL}) == len(settings.ALL)


def test_no_function_shadows_the_settings_module_it_reads():
    """A local or parameter named ``settings`` (a KafkaSettings, a DrainSettings) hides the
    module, and ruff then drops the module's import as unused: ``settings.LAKE`` fails only
    when that function runs."""
    import ast

    found = []
    for path in PACKAGE.rglob("*.py"):
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            names = {a.arg for a in fn.args.args + fn.args.kwonlyargs}
            names |= {t.id for n in ast.walk(fn) if isinstance(n, ast.Assign) for t in n.targets
                      if isinstance(t, ast.Name)}
            if "settings" in names and any(
                    isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "settings"
                    and n.attr.isupper() for n in ast.walk(fn)):
                found.append(f"{path.relative_to(PACKAGE)}:{fn.lineno} {fn.name}")
    assert found == []
