"""The UI's report metadata: pure rendering."""
import base64
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings, strategies as st
from markdown_it import MarkdownIt

from reputation_pipeline.aggregation.report import _CONTROL as CONTROL, markdown_table, svg_markdown, timeline_svg

T0 = datetime(2026, 11, 26, tzinfo=timezone.utc)


def test_markdown_table_escapes_message_text():
    md = markdown_table([{"brand": "acme", "text": "a | b\nc", "post_risk": 0.12345}], ["brand", "text", "post_risk"])
    lines = md.strip().splitlines()
    assert lines[0] == "| brand | text | post_risk |" and len(lines) == 3
    assert "a \\| b c" in lines[2] and "0.123" in lines[2]
    assert markdown_table([], ["x"]) == "_no rows_"


HOSTILE = ["[click me](javascript://alert(1))", "![tracker](https://evil.example/p.png)", "<img src=x onerror=y>",
           "**bold** _it_ `code` ~~gone~~", "https://autolink.example/x", "a|b|c", "line\nbreak\r\n# heading",
           "<https://evil.example>", "\\[escaped\\]", "\x1b[31mred\x1b[0m \u2028 sep", "[ref]: https://evil.example",
           "&lt;script&gt; &amp;", "* bullet", "> quote", "| --- |"]


@given(st.lists(st.sampled_from(HOSTILE) | st.text(max_size=60), min_size=1, max_size=4).map(" ".join))
@settings(max_examples=200, deadline=None)
def test_text_from_posts_renders_as_literal_text_in_the_ui(text):
    """Rendered as CommonMark with tables (markdown-it): one table cell, whose
    text is the post's text, with no link, image, HTML, emphasis or extra cell."""
    md = markdown_table([{"brand": "acme", "text": text}], ["brand", "text"])
    tokens = MarkdownIt("commonmark").enable(["table", "strikethrough"]).parse(md)
    cells = [t for t in tokens if t.type == "td_open"]
    assert len(cells) == 2
    inline = [t for t in tokens if t.type == "inline"][-1]
    assert {c.type for c in inline.children} <= {"text", "softbreak"}, [c.type for c in inline.children]
    literal = "".join(c.content for c in inline.children)
    assert literal.strip() == " ".join(text.translate(CONTROL).split()).strip() or literal.strip() == text.translate(CONTROL).strip()


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
