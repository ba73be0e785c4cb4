"""The report's plots: a section's data -> a matplotlib ``Figure`` -> PNG bytes.

Figures are built with matplotlib's object API (``Figure`` drawn by the Agg canvas), never
through ``pyplot``: nothing global changes (no backend switch, no open figures), so a
program that imports this module keeps its own matplotlib settings. PNGs carry no
software or time stamp: the same data gives the same bytes.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from movierec.compare import Row, summarize
from movierec.report import stats
from movierec.report.gather import Curves, EmbeddingMap, Popularity, Shape

DPI = 100
WIDE = (10.0, 3.6)  # inches: two or three panels side by side
COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
)
GREY = "#b0b0b0"


def png(fig: Figure) -> bytes:
    """``fig`` rendered as PNG (no metadata)."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    with warnings.catch_warnings():  # a title in a script the font lacks: drawn as boxes
        warnings.filterwarnings("ignore", message="Glyph .* missing from")
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def training_curves(c: Curves) -> Figure:
    """Loss, and validation HR@10 / NDCG@10, per epoch; the epoch kept marked."""
    fig = Figure(figsize=WIDE, layout="constrained")
    loss, val = fig.subplots(1, 2)
    loss.plot(c.epochs, c.loss, marker="o", color=COLOURS[0])
    loss.set(title="training loss", xlabel="epoch", ylabel="mean loss")
    val.plot(c.epochs, c.val_hr10, marker="o", color=COLOURS[1], label="HR@10")
    val.plot(c.epochs, c.val_ndcg10, marker="s", color=COLOURS[2], label="NDCG@10")
    val.set(title="validation (sampled, 99 negatives)", xlabel="epoch")
    for ax in (loss, val):
        if c.best_epoch is not None:
            ax.axvline(c.best_epoch, color=GREY, linestyle="--", label=f"kept: {c.best_epoch}")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    val.legend(loc="best")
    return fig


BOARD_KEYS = (
    ("sampled", "test.sampled.hr@10", "test.sampled.ndcg@10"),
    ("full ranking", "test.full.hr@10", "test.full.ndcg@10"),
)


def leaderboard(rows: Sequence[Row]) -> Figure:
    """Test HR@10 and NDCG@10 per contender, both protocols; error bars: std over seeds."""
    summary = summarize(rows)
    models = sorted(summary, key=lambda m: -summary[m]["test.sampled.hr@10"][0])[::-1]
    seeds = max(s["seeds"] for s in summary.values())
    fig = Figure(figsize=(10.0, 0.45 * len(models) + 1.6), layout="constrained")
    y = np.arange(len(models))
    for ax, (protocol, hr, ndcg) in zip(fig.subplots(1, 2, sharey=True), BOARD_KEYS, strict=True):
        for shift, key, label, colour in ((0.2, hr, "HR@10", 0), (-0.2, ndcg, "NDCG@10", 1)):
            mean, std = np.array([summary[m].get(key, (np.nan, np.nan)) for m in models]).T
            ax.barh(
                y + shift,
                mean,
                height=0.38,
                color=COLOURS[colour],
                label=label,
                xerr=std if seeds > 1 else None,
                capsize=3,
            )
        ax.set(title=f"test, {protocol}", yticks=y, yticklabels=models)
        ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right")
    if seeds > 1:
        fig.suptitle(f"mean over {seeds} seeds, bars: ± one standard deviation")
    return fig


def popularity(p: Popularity) -> Figure:
    """How many interactions a recommended movie has, against a watched one and a movie of
    the catalogue; and how concentrated each is on the most popular movies."""
    fig = Figure(figsize=WIDE, layout="constrained")
    hist, conc = fig.subplots(1, 2)
    edges = stats.log_bins(p.catalogue, per_decade=5)
    for values, label, colour in (
        (p.recommended, "a top-10 slot", COLOURS[3]),
        (p.watched, "an interaction", COLOURS[0]),
        (p.catalogue, "a catalogue movie", GREY),
    ):
        weights = np.full(len(values), 1.0 / max(len(values), 1))
        hist.hist(
            values,
            bins=edges,
            weights=weights,
            histtype="step",
            linewidth=2,
            color=colour,
            label=label,
        )
    hist.set(
        title="how popular the movies are",
        xlabel="the movie's interactions (log)",
        ylabel="share",
        xscale="log",
    )
    hist.legend(loc="upper center", title="movie of")
    n = np.arange(1, len(p.catalogue) + 1)
    conc.plot(n, p.concentration_recommended, color=COLOURS[3], label="top-10 lists")
    conc.plot(n, p.concentration_watched, color=COLOURS[0], label="watched")
    conc.plot(n, n / max(len(n), 1), color=GREY, label="even spread")
    conc.set(
        title="share going to the N most popular movies",
        xlabel="N (log)",
        xscale="log",
        ylim=(0, 1.02),
    )
    conc.legend(loc="upper left")
    for ax in (hist, conc):
        ax.grid(alpha=0.3)
    return fig


def embedding(e: EmbeddingMap) -> Figure:
    """Item vectors on two principal components, coloured by main genre, a few labelled."""
    fig = Figure(figsize=(10.0, 7.0), layout="constrained")
    ax = fig.subplots()
    for n, name in enumerate(e.genres):
        at = e.genre == name
        colour = GREY if name == stats.OTHER else COLOURS[n % len(COLOURS)]
        ax.scatter(e.xy[at, 0], e.xy[at, 1], s=6, alpha=0.6, color=colour, label=name, linewidths=0)
    for row, title in e.labels:
        ax.annotate(title, e.xy[row], fontsize=8, xytext=(3, 3), textcoords="offset points")
        ax.plot(*e.xy[row], marker="o", color="black", markersize=3)
    ax.set(
        title=f"{len(e.xy):,} most watched movies' item vectors, first two principal components",
        xlabel=f"PC 1 ({e.variance[0]:.0%} of the variance)",
        ylabel=f"PC 2 ({e.variance[1]:.0%})",
    )
    ax.legend(loc="best", markerscale=3, fontsize=8, title="first genre")
    ax.grid(alpha=0.3)
    return fig


def data_shape(s: Shape) -> Figure:
    """Interactions per user and per movie (log-log histograms) and per year."""
    fig = Figure(figsize=(12.0, 3.6), layout="constrained")
    per_user, per_movie, per_year = fig.subplots(1, 3)
    for ax, values, what, colour in (
        (per_user, s.per_user, "user", COLOURS[0]),
        (per_movie, s.per_movie, "movie", COLOURS[1]),
    ):
        values = values[values > 0]
        ax.hist(values, bins=stats.log_bins(values), color=colour)
        ax.set(
            title=f"interactions per {what}",
            xlabel=f"interactions of a {what} (log)",
            ylabel=f"{what}s (log)",
            xscale="log",
            yscale="log",
        )
        ax.yaxis.set_minor_formatter(NullFormatter())
    per_year.bar(s.years, s.per_year, color=COLOURS[2])
    per_year.set(title="interactions per year", xlabel="year rated", ylabel="interactions")
    for ax in (per_user, per_movie, per_year):
        ax.grid(alpha=0.3)
    return fig
