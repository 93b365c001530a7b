"""An alert as one terminal line. Every value comes from posts and brand names that
anyone can write, so the line is built as rich ``Text`` (never parsed as markup) with
control characters replaced: no terminal escape sequence from a message reaches the
operator's terminal."""
from __future__ import annotations

import re
from typing import Any

from rich.text import Text

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
STATUS_STYLE = {"firing": "bold red", "resolved": "green"}


def plain(value: Any, limit: int = 200) -> str:
    """A message value made safe to print: control and bidi characters become '?'."""
    text = _CONTROL.sub("?", "" if value is None else str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def alert_line(alert: dict) -> Text:
    status = plain(alert.get("status") or "?", 16)
    line = Text()
    line.append(f"ALERT {status:<8} ", style=STATUS_STYLE.get(status, "bold"))
    line.append(f"[{plain(alert.get('severity') or '-', 16)}] ")
    line.append(plain(alert.get("brand_name") or alert.get("brand"), 80), style="bold")
    line.append(f" · {plain(alert.get('rule'), 40)} · {plain(alert.get('window_start'), 40)}")
    summary = plain(alert.get("summary"))
    if summary:
        line.append(f" — {summary}")
    return line
