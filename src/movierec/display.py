"""What a movie and a leaderboard look like, for every reader: one movie object (the HTTP
API's ``Movie``, the CLI's ``--json`` rows), and the Rich tables the CLI prints.

A movie object is ``{"movie_id", "title", "year", "genres", "imdb_url", "tmdb_url"}`` (year
``None`` when the title has none, genres a list, a URL ``None`` when the catalogue has no
IMDb / TMDB id), plus ``"score"`` (``None`` when not finite) in a ranked list or
``"timestamp"`` (seconds since the epoch) in a history. A recommendation asked with its
reasons also has ``"because"``: ``[{"movie_id", "title"}]``, the user's own movies behind
it, most first (``movierec.explain``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from rich import box
from rich.columns import Columns
from rich.console import Group
from rich.table import Table
from rich.text import Text

from movierec.data import Catalog

if TYPE_CHECKING:
    from movierec.compare import Row
    from movierec.movielens import LoadReport
    from movierec.prepare import PrepareReport

NO_GENRES = "(no genres listed)"


IMDB_URL = "https://www.imdb.com/title/tt{:07d}/"
TMDB_URL = "https://www.themoviedb.org/movie/{}"


def movie(
    movie_id: int, title: str, year: int, genres: str, imdb_id: int = -1, tmdb_id: int = -1
) -> dict[str, Any]:
    """One movie object from catalogue fields (``year`` 0: none; genres ``"A|B"``; an IMDb
    or TMDB id -1: unknown, its URL ``None``)."""
    return {
        "movie_id": int(movie_id),
        "title": str(title),
        "year": int(year) or None,
        "genres": [g for g in str(genres).split("|") if g and g != NO_GENRES],
        "imdb_url": IMDB_URL.format(int(imdb_id)) if imdb_id >= 0 else None,
        "tmdb_url": TMDB_URL.format(int(tmdb_id)) if tmdb_id >= 0 else None,
    }


def reason(movie: dict[str, Any]) -> dict[str, Any]:
    """A movie object named as a reason: ``{"movie_id", "title"}`` (title with its year)."""
    year = f" ({movie['year']})" if movie["year"] else ""
    return {"movie_id": movie["movie_id"], "title": f"{movie['title']}{year}"}


def finite(x: float) -> float | None:
    """A score as JSON can carry it: NaN and infinities become ``None``."""
    return float(x) if math.isfinite(x) else None


class MovieRows:
    """Item indices of one catalogue -> movie objects.

    Each movie object is built once and then shared (read-only): serving the same movies
    over and over, this is most of the per-request work that is ours.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._movies: dict[int, dict[str, Any]] = {}  # item index -> movie object

    def movie(self, idx: int) -> dict[str, Any]:
        found = self._movies.get(idx)
        if found is None:
            c = self.catalog
            found = self._movies[idx] = movie(
                c.movie_ids[idx],
                c.titles[idx],
                c.years[idx],
                c.genres[idx],
                c.imdb_ids[idx],
                c.tmdb_ids[idx],
            )
        return found

    def movies(self, items: Sequence[int] | np.ndarray) -> list[dict[str, Any]]:
        return [self.movie(int(i)) for i in items]

    def scored(
        self, items: np.ndarray, scores: np.ndarray, because: np.ndarray | None = None
    ) -> list[dict[str, Any]]:
        """One row of a ``Recommendations`` (index space), padding (-1) dropped; with its
        ``because`` row (k, n), each movie carries its reasons."""
        rows = [
            {**self.movie(i), "score": finite(s)}
            for i, s in zip(np.asarray(items).tolist(), np.asarray(scores).tolist(), strict=True)
            if i >= 0
        ]
        if because is not None:
            kept = np.asarray(because)[np.asarray(items) >= 0].tolist()
            for row, reasons in zip(rows, kept, strict=True):
                row["because"] = [self.reason(j) for j in reasons if j >= 0]
        return rows

    def reason(self, idx: int) -> dict[str, Any]:
        """A movie named as a reason: ``{"movie_id", "title"}`` (title with its year)."""
        return reason(self.movie(idx))

    def watched(self, items: np.ndarray, timestamps: np.ndarray) -> list[dict[str, Any]]:
        """A user's history (index space) with when each movie was rated."""
        return [
            {**self.movie(i), "timestamp": int(t)}
            for i, t in zip(
                np.asarray(items).tolist(), np.asarray(timestamps).tolist(), strict=True
            )
        ]


# --------------------------------------------------------------------------- tables

Column = Literal["score", "date", "year"]
BECAUSE_MAX = 24  # characters of the reasons' column: one line, cut with "…" (80 columns)


def movie_table(
    title: str, rows: Sequence[dict[str, Any]], column: Column, because: str | None = None
) -> Table:
    """Numbered movie objects with their genres and one more column: the score, the date
    watched (from ``timestamp``) or the year; with ``because`` (its heading, e.g. "because
    you watched"), a last column of each row's reasons, cut to one line ("…") so that the
    table stays readable in 80 columns."""
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("movie")
    table.add_column("genres")
    table.add_column(column, justify="right")
    if because:
        table.add_column(because, no_wrap=True)
    for n, row in enumerate(rows, 1):
        year = f" ({row['year']})" if row["year"] else ""
        cells = [str(n), f"{row['title']}{year}", ", ".join(row["genres"]), _cell(row, column)]
        if because:
            cells.append(shortened("; ".join(_no_year(r["title"]) for r in row.get("because", ()))))
        table.add_row(*cells)
    return table


def shortened(text: str, width: int = BECAUSE_MAX) -> str:
    """``text`` cut to ``width`` characters, the last one "…" where anything was cut."""
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _no_year(title: str) -> str:
    """A reason's title without its " (1995)": the row's own movie carries the year."""
    return title[:-7] if len(title) > 7 and title[-7:-5] == " (" and title[-1] == ")" else title


def _cell(row: dict[str, Any], column: Column) -> str:
    if column == "date":
        return dt.datetime.fromtimestamp(row["timestamp"], dt.UTC).date().isoformat()
    value = row[column]
    if value is None:
        return ""
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def side_by_side(*tables: Table) -> Columns:
    """Tables in one row, four spaces apart, where the terminal is wide enough; one below
    the other where it is not (an 80-column terminal)."""
    return Columns(tables, padding=(0, 4))


LEADERBOARD_COLUMNS = (
    "sampled\nHR@10",
    "sampled\nNDCG@10",
    "full\nHR@10",
    "full\nNDCG@10",
    "cov@10",
    "train s",
)


def leaderboard(rows: Sequence[Row], title: str) -> Group:
    """The leaderboard table, then the settings each contender chose on validation (below
    it, one line each, so that the table fits in 80 columns)."""
    return Group(leaderboard_table(rows, title), leaderboard_settings(rows))


def _by_model(rows: Sequence[Row]) -> list[list[Row]]:
    """Rows grouped by model (one per seed), best mean sampled HR@10 first."""
    groups: dict[str, list[Row]] = {}
    for r in rows:
        groups.setdefault(r.model, []).append(r)
    return sorted(groups.values(), key=lambda g: -np.mean([r.test.sampled["hr@10"] for r in g]))


def _figure(values: Sequence[float]) -> str:
    """``0.742``, or ``0.742±0.006`` (mean ± std over seeds) when there are several."""
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f}±{np.std(values):.3f}"


def leaderboard_table(rows: Sequence[Row], title: str) -> Table:
    """The leaderboard's test figures, best sampled HR@10 first and in bold; with several
    seeds, each figure is the mean ± std over them."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("model")
    for column in LEADERBOARD_COLUMNS:
        table.add_column(column, justify="right")
    for n, group in enumerate(_by_model(rows)):
        model = group[0].model
        figures = [
            [r.test.sampled["hr@10"] for r in group],
            [r.test.sampled["ndcg@10"] for r in group],
            [(r.test.full or {}).get("hr@10", np.nan) for r in group],
            [(r.test.full or {}).get("ndcg@10", np.nan) for r in group],
            [r.test.coverage_at_10 or 0.0 for r in group],
        ]
        table.add_row(
            f"[bold]{model}[/]" if n == 0 else model,
            *(_figure(f) for f in figures),
            f"{np.mean([r.train_seconds for r in group]):.1f}",
        )
    return table


def leaderboard_settings(rows: Sequence[Row]) -> Text:
    """``settings chosen on validation:`` and one ``model: k=v, ...`` line per contender
    (per seed where the seeds chose differently)."""
    lines = ["settings chosen on validation:"]
    for group in _by_model(rows):
        chosen = {", ".join(f"{k}={_setting(v)}" for k, v in r.params.items()) for r in group}
        lines.append(f"  {group[0].model}: {' | '.join(sorted(chosen)) or '(none)'}")
    return Text("\n".join(lines))


def _setting(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:g}"
    return str(value)


def prepare_table(name: str, load: LoadReport, report: PrepareReport) -> Table:
    """Users, movies and interactions loaded, dropped (on load and by each filter), kept."""
    table = Table(title=name)
    table.add_column("", justify="left")
    for column in ("users", "movies", "interactions"):
        table.add_column(column, justify="right")
    rows = [("loaded", report.users_in, report.movies_in, report.interactions_in)]
    rows += [(f"dropped on load: {why}", None, None, n) for why, n in load.dropped.items()]
    rows += [(f"dropped: {s.reason}", s.users, s.movies, s.interactions) for s in report.steps]
    rows += [("kept", report.users, report.movies, report.interactions)]
    for label, *counts in rows:
        table.add_row(label, *("" if n is None else f"{n:,}" for n in counts))
    return table


def metrics_lines(metrics: dict[str, Any]) -> list[str]:
    """``evaluate``'s figures: one line per protocol, then coverage."""
    lines = []
    for protocol in ("sampled", "full"):
        figures = ", ".join(f"{k} {v:.4f}" for k, v in metrics[protocol].items() if "@" in k)
        lines.append(f"{protocol:>7}: {figures} ({metrics[protocol]['users']:,} users)")
    lines.append(f"coverage@10: {metrics['coverage@10']:.4f}")
    return lines
