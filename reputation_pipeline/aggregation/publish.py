"""``published_marts``: the marts (brand risk per window, alerts) exported as
Parquet under ``<lake>/published/`` (local folder or S3), one deterministic file
per table and hour, so a re-run overwrites the same objects."""

from datetime import timedelta

import dagster as dg

from reputation_pipeline.aggregation.report import markdown_table, svg_markdown, timeline_svg
from reputation_pipeline.aggregation.warehouse import DUCKDB_POOL, WarehouseResource
from reputation_pipeline.partitions import hourly_partitions
from reputation_pipeline.resources import LakeResource
from reputation_pipeline.lake.parquet import parquet_bytes
from reputation_pipeline.lake.layout import published_key

EXPORTS = {
    "brand_risk_window": "select * exclude (window_hour) from (select *, window_start as window_hour from marts.fct_brand_risk_window) "
                         "where window_hour >= ? and window_hour < ? order by brand, window_start",
    "alerts": "select * exclude (payload), payload::varchar as payload from alerting.alert_history "
              "where window_start >= ? and window_start < ? order by window_start, brand, rule, status",
}


def _table_exists(conn, schema: str, table: str) -> bool:
    return conn.execute("select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
                        [schema, table]).fetchone()[0] > 0


@dg.asset(
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=DUCKDB_POOL,
    deps=[dg.AssetKey("fct_brand_risk_window"), dg.AssetKey("brand_alerts")],
    kinds={"duckdb", "parquet", "s3"},
    group_name="published",
    description="fct_brand_risk_window and the alert history exported as Parquet to <lake>/published/.",
)
def published_marts(context: dg.AssetExecutionContext, warehouse: WarehouseResource, lake: LakeResource) -> dg.MaterializeResult:
    window = context.partition_time_window
    store = lake.open()
    conn = warehouse.connect(lake.uri, read_only=True)
    written: list[str] = []
    rows = {name: 0 for name in EXPORTS}
    try:
        hour = window.start
        while hour < window.end:
            nxt = hour + timedelta(hours=1)
            for name, sql in EXPORTS.items():
                schema, table = ("marts", "fct_brand_risk_window") if name == "brand_risk_window" else ("alerting", "alert_history")
                if not _table_exists(conn, schema, table):
                    continue
                tbl = conn.execute(sql, [hour, nxt]).fetch_arrow_table()
                key = published_key(name, f"{hour:%Y-%m-%d}", f"{hour:%H}")
                if tbl.num_rows == 0:
                    store.delete(key)  # the hour has nothing (any more)
                    continue
                store.put(key, parquet_bytes(tbl))
                written.append(store.url(key))
                rows[name] += tbl.num_rows
            hour = nxt
        report = _report(conn, window.start, window.end)
    finally:
        conn.close()
    return dg.MaterializeResult(metadata={"files": len(written), "rows": dg.MetadataValue.json(rows),
                                          "first_file": written[0] if written else "",
                                          "lake": store.uri, **report})


# the brands as the brands CSV writes them (brand_name is null in rows built before it existed)
TOP_POSTS_SQL = """
    select coalesce(brand_name, brand) as brand, platform, author_handle, followers, toxicity, post_risk, url,
           left(text, 100) as text
    from marts.fct_brand_mentions where window_start >= ? and window_start < ? and is_scored
    order by post_risk desc nulls last, post_id limit 10"""
TIMELINE_SQL = """
    select brand, coalesce(brand_name, brand), window_start, weighted_risk from marts.fct_brand_risk_window
    where window_start >= ? - interval 48 hours and window_start < ? order by brand, window_start"""


def _report(conn, start, end) -> dict:
    """Top risky posts of the range and the brand-risk timeline of the 48 h before its end."""
    if not _table_exists(conn, "marts", "fct_brand_mentions") or not _table_exists(conn, "marts", "fct_brand_risk_window"):
        return {}
    cur = conn.execute(TOP_POSTS_SQL, [start, end])
    cols = [d[0] for d in cur.description]
    top = [dict(zip(cols, r)) for r in cur.fetchall()]
    series: dict[str, list] = {}
    names: dict[str, str] = {}  # one line per brand key, labelled with its latest name
    for brand, name, ts, risk in conn.execute(TIMELINE_SQL, [end, end]).fetchall():
        series.setdefault(brand, []).append((ts, risk))
        names[brand] = name
    timeline = timeline_svg({names[b]: s for b, s in series.items()})
    return {
        "top_risky_posts": dg.MetadataValue.md(markdown_table(top, cols)),
        "brand_risk_timeline": dg.MetadataValue.md(svg_markdown(timeline, "weighted risk per brand and hour")),
    }
