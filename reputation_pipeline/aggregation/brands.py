"""The brand list dbt reads (the ``brands`` seed, or the CSV named in
``REPUTATION_BRANDS_CSV``), checked before every dbt build.

stg_brands identifies a brand by its name lower-cased with runs of whitespace as one
space (macros/brands.sql ``brand_key``), so two rows such as ``Acme`` and ``acme `` are
one brand listed twice: every mention and all of its risk would count twice. The dbt
test on stg_brands fails the full build on them, but the live path runs no dbt test,
so the build refuses them here first, naming the rows."""
from __future__ import annotations

import csv
from pathlib import Path
from reputation_pipeline import settings


class BrandListError(ValueError):
    """The brand list cannot be used as it is; the message says which rows and why."""


def brand_key(name: str) -> str:
    """A brand's identity, as stg_brands computes it: lower-cased, runs of whitespace as one
    space, none at the ends. Python's whitespace includes the Unicode spaces that the SQL
    collapses only at the ends, so this refuses at least every pair that dbt would merge."""
    return " ".join(name.split()).lower()


def brands_csv(project_dir: Path) -> Path:
    """The file stg_brands reads: the override, else the dbt project's seed."""
    override = settings.BRANDS_CSV.get()
    return Path(override) if override else project_dir / "seeds" / "brands.csv"


def check_brand_list(path: Path) -> None:
    """Raise ``BrandListError`` when two rows name one brand (or there is no ``brand``
    column). A file that is not there is left to dbt, which reports it itself (a relative
    override is read from dbt's working directory, not necessarily this one)."""
    path = Path(path)
    if not path.is_file():
        return
    first: dict[str, tuple[int, str]] = {}
    clashes: list[str] = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if "brand" not in (reader.fieldnames or []):
            raise BrandListError(f"brand list {path}: no `brand` column in its header "
                                 "(expected brand,keywords,handles,hashtags,exclusions)")
        for row in reader:
            name = row.get("brand") or ""
            key = brand_key(name)
            if not key:
                continue  # stg_brands skips rows without a brand
            if key in first:
                line, seen = first[key]
                clashes.append(f"line {line} {seen!r} and line {reader.line_num} {name!r} are both brand {key!r}")
            else:
                first[key] = (reader.line_num, name)
    if clashes:
        raise BrandListError(
            f"brand list {path}: rows whose brand differs only by case or spaces name the same brand, whose "
            f"mentions and risk would count twice: {'; '.join(clashes)}. Keep one row per brand "
            "(its keywords, handles and hashtags can be merged into that row).")
