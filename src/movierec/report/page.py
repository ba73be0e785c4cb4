"""The report as one HTML document: sections with an id and a heading, PNGs inline as
``data:`` URLs, inline CSS, no script and nothing fetched. Every text from the run (titles,
names, settings) is escaped here (``html.escape``)."""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console

from movierec import display
from movierec.compare import Row

CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 64rem;
       padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ddd; }
nav a { margin-right: 1rem; } img { max-width: 100%; height: auto; }
table.facts td { padding: 0.1rem 1rem 0.1rem 0; } table.facts td:first-child { color: #666; }
pre.table { font-size: 0.8rem; background: #f7f7f7; padding: 0.6rem; overflow-x: auto; }
.note { color: #666; font-style: italic; }
code { background: #f0f0f0; padding: 0 0.2rem; border-radius: 3px; }
"""


@dataclass(frozen=True)
class Section:
    """One section: ``id`` (its anchor), a heading, paragraphs of plain text, PNG plots,
    and trusted HTML fragments made here (``facts_table``, ``board_table``)."""

    id: str
    heading: str
    text: Sequence[str] = ()
    images: Sequence[tuple[bytes, str]] = ()  # (PNG, alt text)
    fragments: Sequence[str] = ()
    notes: Sequence[str] = ()  # plain text, set apart (what the run lacks)


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def prose(text: str) -> str:
    """Plain text escaped, with `backquoted` parts (commands) set as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(text))


def image(data: bytes, alt: str) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{encoded}">'


def facts_table(facts: Sequence[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in facts)
    return f'<table class="facts">{rows}</table>'


def board_table(rows: Sequence[Row], title: str) -> str:
    """The leaderboard table the CLI prints (``display.leaderboard``) as preformatted text:
    no inline style, so a strict content security policy leaves it as it is."""
    console = Console(record=True, file=io.StringIO(), width=200)
    console.print(display.leaderboard(rows, title))
    return f'<pre class="table">{esc(console.export_text())}</pre>'


def section(s: Section) -> str:
    parts = [f'<section id="{esc(s.id)}">', f"<h2>{esc(s.heading)}</h2>"]
    parts += [f"<p>{prose(t)}</p>" for t in s.text]
    parts += [f'<p class="note">{prose(t)}</p>' for t in s.notes]
    parts += [f"<figure>{image(data, alt)}</figure>" for data, alt in s.images]
    parts += list(s.fragments)
    parts.append("</section>")
    return "\n".join(parts)


def document(title: str, intro: str, sections: Sequence[Section]) -> str:
    """The whole page: title, a line of links to the sections, ``intro`` (trusted HTML),
    then each section."""
    links = " ".join(f'<a href="#{esc(s.id)}">{esc(s.heading)}</a>' for s in sections)
    body = "\n".join(section(s) for s in sections)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{esc(title)}</title>\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<style>{CSS}</style>\n</head>\n<body>\n<h1>{esc(title)}</h1>\n"
        f"<nav>{links}</nav>\n{intro}\n{body}\n</body>\n</html>\n"
    )
