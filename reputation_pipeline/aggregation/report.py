"""What a data engineer reads on the published marts in the Dagster UI: the
top risky posts as a table and a brand-risk timeline picture. Pure functions
(rows in, Markdown/SVG out) so they are unit-tested without a warehouse."""
from __future__ import annotations

import base64
from datetime import datetime
from html import escape

PALETTE = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f"]


# every ASCII punctuation character may be backslash-escaped in CommonMark; escaping them all
# leaves no link, image, emphasis, HTML tag, autolink (the ':' of a URL) or cell boundary
_MD_ESCAPES = {c: "\\" + c for c in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"}
_CONTROL = {i: " " for i in [*range(0x00, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]}


def markdown_text(value: str) -> str:
    """Text from a post, shown literally in Markdown (one line, nothing it can format)."""
    return "".join(_MD_ESCAPES.get(c, c) for c in str(value).translate(_CONTROL))


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return markdown_text(value)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    if not rows:
        return "_no rows_"
    head = "| " + " | ".join(columns) + " |\n| " + " | ".join("---" for _ in columns) + " |\n"
    return head + "".join("| " + " | ".join(_cell(r.get(c)) for c in columns) + " |\n" for r in rows)


def timeline_svg(series: dict[str, list[tuple[datetime, float]]], width: int = 640, height: int = 220) -> str:
    """One polyline per brand over time (e.g. weighted risk per hour)."""
    points = [(t, v) for s in series.values() for t, v in s if v is not None]
    pad = 30
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    if not points:
        svg.append(f'<text x="{pad}" y="{height // 2}">no data</text></svg>')
        return "".join(svg)
    t0 = min(t for t, _ in points).timestamp()
    t1 = max(t for t, _ in points).timestamp()
    vmax = max(v for _, v in points) or 1.0
    span = (t1 - t0) or 1.0

    def xy(t: datetime, v: float) -> str:
        x = pad + (t.timestamp() - t0) / span * (width - 2 * pad)
        y = height - pad - v / vmax * (height - 2 * pad)
        return f"{x:.1f},{y:.1f}"

    svg.append(f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#999"/>')
    svg.append(f'<text x="{pad}" y="{pad - 12}">max {vmax:.3f}</text>')
    svg.append(f'<text x="{pad}" y="{height - 8}">{escape(min(t for t, _ in points).strftime("%Y-%m-%d %H:%M"))}</text>')
    svg.append(f'<text x="{width - pad}" y="{height - 8}" text-anchor="end">'
               f'{escape(max(t for t, _ in points).strftime("%Y-%m-%d %H:%M"))} UTC</text>')
    for i, (name, s) in enumerate(sorted(series.items())):
        color = PALETTE[i % len(PALETTE)]
        pts = " ".join(xy(t, v) for t, v in sorted(s) if v is not None)
        svg.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{pts}"/>')
        svg.append(f'<text x="{width - pad}" y="{pad + 14 * i}" text-anchor="end" fill="{color}">{escape(name)}</text>')
    svg.append("</svg>")
    return "".join(svg)


def svg_markdown(svg: str, alt: str) -> str:
    """An inline image the UI's Markdown metadata renders."""
    return f"![{escape(alt)}](data:image/svg+xml;base64,{base64.b64encode(svg.encode()).decode()})"
