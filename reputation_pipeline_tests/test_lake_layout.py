"""lake/layout.py is the one place lake keys are built; the dbt project's globs (the
``lake_glob`` macro and the sources' ``external_location``) read exactly those files."""
from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest

from reputation_pipeline.lake import layout

DBT = Path(__file__).resolve().parents[1] / "dbt_project"


def test_the_dbt_projects_globs_are_the_layouts():
    macro = (DBT / "macros" / "lake.sql").read_text()
    in_macro = dict(re.findall(r"'(\w+)': '/([^']+)'", macro.split("macro lake_glob", 1)[1].split("endmacro", 1)[0]))
    assert in_macro == layout.LAKE_GLOBS
    sources = (DBT / "models" / "staging" / "_sources.yml").read_text()
    in_sources = re.findall(r"\}\}/([^']+\.parquet)'", sources)
    assert sorted(in_sources) == sorted(layout.LAKE_GLOBS.values())


def test_every_key_the_layout_builds_is_read_by_its_table_and_no_other():
    raw = [layout.drain_file_key("x", "2026-12-01", "07", "social.posts.x", 3, 10, 25),
           layout.drain_file_key("x", "2026-12-01", "07", "social.posts.x", 3, 10, 25, part=2),
           layout.import_file_key("reddit", "2026-12-01", "07", "ab" * 32, 4)]
    scores = [layout.scores_hour_prefix("minilm6-lora-2b83857167", "2026-12-01", "07") + "x__f.parquet"]
    others = [layout.drain_quarantine_key("social.posts.x", 3, 10, 25), layout.import_quarantine_key("ab" * 32, 4),
              layout.published_key("fct_brand_risk_window", "2026-12-01", "07"),
              layout.ingest_log_key("commits", "social.posts.x", 3, 10), layout.import_manifest_key("ab" * 32)]
    for table, keys in (("raw_posts", raw), ("post_scores", scores)):
        glob = layout.LAKE_GLOBS[table]
        assert all(fnmatch.fnmatchcase(k, glob) for k in keys), (table, keys)
        assert not any(fnmatch.fnmatchcase(k, glob) for k in others + (scores if table == "raw_posts" else raw))


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "v 1"])
def test_names_from_outside_never_make_a_folder(bad):
    with pytest.raises(ValueError, match="not path-safe"):
        layout.scores_hour_prefix(bad, "2026-12-01", "07")
    with pytest.raises(ValueError, match="not path-safe"):
        layout.published_key(bad, "2026-12-01", "07")
