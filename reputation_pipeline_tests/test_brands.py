"""The brand list's check before a dbt build (aggregation/brands.py): pure, no dbt."""
import pytest

from reputation_pipeline.aggregation.brands import BrandListError, brand_key, brands_csv, check_brand_list

HEADER = "brand,keywords,handles,hashtags,exclusions\n"


def test_brand_key_ignores_case_and_spacing_only():
    assert brand_key("  Northwind \t Air ") == brand_key("northwind air") == "northwind air"
    assert brand_key("NorthwindAir") != brand_key("Northwind Air")


def test_rows_that_differ_only_by_case_or_spaces_are_refused_by_line(tmp_path):
    path = tmp_path / "brands.csv"
    path.write_text(HEADER + "Northwind Air,northwind,,,\nglobex,globex,,,\n"
                    "northwind  air ,northwind air,,,\nGlobex,globex corp,,,\n")
    with pytest.raises(BrandListError) as err:
        check_brand_list(path)
    message = str(err.value)
    assert str(path) in message
    assert "line 2 'Northwind Air' and line 4 'northwind  air ' are both brand 'northwind air'" in message
    assert "line 3 'globex' and line 5 'Globex' are both brand 'globex'" in message


def test_distinct_brands_and_empty_rows_pass(tmp_path):
    path = tmp_path / "brands.csv"
    path.write_text(HEADER + "Northwind Air,northwind,,,\nNorthwind Cargo,northwind cargo,,,\n ,ignored,,,\n,,,,\n")
    check_brand_list(path)  # raises on a problem


def test_a_file_without_a_brand_column_is_refused(tmp_path):
    path = tmp_path / "brands.csv"
    path.write_text("name,keywords\nAcme,acme\n")
    with pytest.raises(BrandListError, match="no `brand` column"):
        check_brand_list(path)


def test_the_override_replaces_the_seed(tmp_path, monkeypatch):
    monkeypatch.delenv("REPUTATION_BRANDS_CSV", raising=False)
    assert brands_csv(tmp_path) == tmp_path / "seeds" / "brands.csv"
    monkeypatch.setenv("REPUTATION_BRANDS_CSV", str(tmp_path / "mine.csv"))
    assert brands_csv(tmp_path) == tmp_path / "mine.csv"


def test_the_project_seed_passes():
    from pathlib import Path

    seed = Path(__file__).resolve().parents[1] / "dbt_project" / "seeds" / "brands.csv"
    assert seed.is_file()
    check_brand_list(seed)
