"""The UI's report metadata: pure rendering."""
import base64
from datetime import datetime, timedelta, timezone

from reputation_pipeline.aggregation.report import markdown_table, svg_markdown, timeline_svg

T0 = datetime(2026, 11, 26, tzinfo=timezone.utc)


def test_markdown_table_escapes_message_text():
    md = markdown_table([{"brand": "acme", "text": "a | b\nc", "post_risk": 0.12345}], ["brand", "text", "post_risk"])
    lines = md.strip().splitlines()
    assert lines[0] == "| brand | text | post_risk |" and len(lines) == 3
    assert "a \\| b c" in lines[2] and "0.123" in lines[2]
    assert markdown_table([], ["x"]) == "_no rows_"


def test_timeline_svg_draws_one_line_per_brand():
    series = {"acme": [(T0 + timedelta(hours=h), 0.1 * h) for h in range(5)],
              "globex": [(T0 + timedelta(hours=h), 0.05) for h in range(5)],
              "<script>": [(T0, None)]}
    svg = timeline_svg(series)
    assert svg.count("<polyline") == 3 and "acme" in svg and "globex" in svg
    assert "<script>" not in svg  # names are escaped
    md = svg_markdown(svg, "risk")
    assert base64.b64decode(md.split("base64,")[1].rstrip(")")).decode() == svg
    assert "no data" in timeline_svg({})
