"""The run's report: one HTML file with every section, its plots inside, nothing fetched;
the same run gives the same bytes; a bad run is one line and exit 2."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from _train_fixtures import fast_config, planted_dataset
from typer.testing import CliRunner

from movierec.artifacts import REPORT, WEIGHTS, ArtifactError, save_run
from movierec.cli import app
from movierec.compare import QUICK_GRIDS, leaderboard
from movierec.recommend import Recommender
from movierec.report import LEADERBOARD, build_report, read_board, stats, write_board, write_report
from movierec.report.build import DATA, EMBEDDING, POPULARITY, TRAINING
from movierec.report.build import LEADERBOARD as BOARD_SECTION
from movierec.split import leave_last_out
from movierec.train import fit

torch.set_num_threads(1)
runner = CliRunner()
PLOTS = (TRAINING, BOARD_SECTION, POPULARITY, EMBEDDING, DATA)
NAME = "<planted & co>"  # the data set's name, shown in the page: must arrive escaped


@pytest.fixture(scope="module")
def bare_run(tmp_path_factory) -> Path:
    """A real run (GMF, 2 epochs on the planted data) without a leaderboard."""
    ds = planted_dataset()
    split = leave_last_out(ds.interactions)
    result = fit(split, fast_config("gmf", epochs=2), progress=False)
    return save_run(tmp_path_factory.mktemp("bare") / "run", result, ds, split, data={"name": NAME})


@pytest.fixture(scope="module")
def boarded_run(bare_run: Path, tmp_path_factory) -> Path:
    """The same run with a leaderboard of two peers over two seeds (error bars)."""
    run = Path(shutil.copytree(bare_run, tmp_path_factory.mktemp("boarded") / "run"))
    split = Recommender.load(run).run.split
    rows = leaderboard(split, ("popularity", "ease"), seeds=(0, 1), grids=QUICK_GRIDS)
    write_board(run, rows, NAME)
    return run


class Page(HTMLParser):
    """Sections by id, the images inside each, every src/href, the script tags."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, list[str]] = {}
        self.links: list[str] = []
        self.scripts = 0
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self._in = a["id"]
            self.sections[self._in] = []
        if tag == "img" and self._in is not None:
            self.sections[self._in].append(a["src"] or "")
        self.links += [v or "" for k, v in attrs if k in ("src", "href")]
        self.scripts += tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._in = None


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    return page


@pytest.fixture(scope="module")
def report_text(boarded_run: Path) -> str:
    written = write_report(Recommender.load(boarded_run))
    assert written.path == boarded_run / REPORT and written.bytes == written.path.stat().st_size
    return written.path.read_text(encoding="utf-8")


def test_the_report_has_every_section_with_its_plots_inline(report_text: str) -> None:
    page = parse(report_text)
    assert list(page.sections) == list(PLOTS)
    prefix = "data:image/png;base64,"
    for section, images in page.sections.items():
        assert images, f"no plot in section {section}"
        for src in images:
            assert src.startswith(prefix)
            assert base64.b64decode(src[len(prefix) :]).startswith(b"\x89PNG\r\n\x1a\n")
    assert page.scripts == 0
    assert not [u for u in page.links if u.startswith(("http://", "https://", "//"))]
    assert all(u.startswith(("#", prefix)) for u in page.links)
    assert "&lt;planted &amp; co&gt;" in report_text and NAME not in report_text
    assert "mean over seeds 0, 1" in report_text and "ease" in report_text


def test_the_same_run_gives_the_same_report(boarded_run: Path, report_text: str) -> None:
    assert build_report(Recommender.load(boarded_run)) == report_text


def test_the_command_writes_where_asked_and_says_when_the_run_has_no_board(
    bare_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "elsewhere.html"
    result = runner.invoke(app, ["report", str(bare_run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"report: {out} (")
    assert not (bare_run / REPORT).exists()  # --out elsewhere leaves the run alone
    text = out.read_text(encoding="utf-8")
    page = parse(text)
    assert list(page.sections) == list(PLOTS) and page.sections[BOARD_SECTION] == []
    assert all(page.sections[s] for s in PLOTS if s != BOARD_SECTION)
    assert "no leaderboard in this run (train it with <code>movierec run</code>" in text


def test_the_leaderboard_file_reads_back_as_rows(boarded_run: Path) -> None:
    rows = read_board(boarded_run)
    assert rows is not None and [(r.model, r.seed) for r in rows] == [
        ("popularity", 0),
        ("popularity", 1),
        ("ease", 0),
        ("ease", 1),
    ]
    again = json.loads((boarded_run / LEADERBOARD).read_text())
    assert [r.test.to_dict() for r in rows] == [
        {k: d[k] for k in ("sampled", "full", "coverage@10")} for d in again["rows"]
    ]
    assert read_board(boarded_run.parent) is None


def test_a_bad_run_or_leaderboard_is_one_line_and_exit_2(bare_run: Path, tmp_path: Path) -> None:
    for run, message in (
        (tmp_path / "nowhere", "no such run directory"),
        (shutil.copytree(bare_run, tmp_path / "truncated"), f"{WEIGHTS}: truncated"),
        (shutil.copytree(bare_run, tmp_path / "bad-board"), f"{LEADERBOARD}: unreadable"),
    ):
        if run.name == "truncated":
            (run / WEIGHTS).write_bytes((run / WEIGHTS).read_bytes()[:-100])
        if run.name == "bad-board":
            (run / LEADERBOARD).write_text('{"format": "movierec-leaderboard", "rows": [')
        result = runner.invoke(app, ["report", str(run)])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    with pytest.raises(ArtifactError, match="unreadable"):
        read_board(tmp_path / "bad-board")


def test_neither_movierec_nor_the_service_loads_matplotlib() -> None:
    code = (
        "import sys, movierec, movierec.service, movierec.cli; "
        "print(sorted(m for m in ('matplotlib', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- the arithmetic


def test_users_are_all_taken_or_spread_evenly() -> None:
    assert stats.spread_users(5, 10).tolist() == [0, 1, 2, 3, 4]
    spread = stats.spread_users(10_000, 2000)
    assert len(spread) == 2000 and spread[0] == 0 and spread[-1] == 9999
    assert np.all(np.diff(spread) > 0)


def test_head_share_and_concentration() -> None:
    counts = np.array([1, 50, 3, 100, 2, 0, 0, 0, 0, 0])  # the head (10%): item 3
    assert stats.head_share(np.array([3, 3, 1, -1]), counts) == pytest.approx(2 / 3)
    assert np.isnan(stats.head_share(np.array([-1]), counts))
    conc = stats.concentration(np.array([3, 3, 1, 0, -1]), counts)
    assert conc[:5].tolist() == [0.5, 0.75, 0.75, 0.75, 1.0] and conc[-1] == 1.0


def test_log_bins_hold_every_count_once() -> None:
    for values in (np.array([1]), np.array([1, 2, 3, 7, 10, 999, 1000, 4321])):
        edges = stats.log_bins(values)
        assert np.all(np.diff(edges) > 0) and edges[0] == 0.5 and edges[-1] > values.max()
        assert np.histogram(values, edges)[0].sum() == len(values)
        assert np.all(edges % 1 == 0.5)  # half-way between integers


def test_main_genres_keep_the_most_common_first_genres() -> None:
    genres = np.array(["Drama|Comedy", "Drama", "Comedy|Drama", "", "(no genres listed)", "War"])
    labels, kept = stats.main_genres(genres, groups=2)
    assert kept == ["Drama", "Comedy", stats.OTHER]
    assert labels.tolist() == ["Drama", "Drama", "Comedy", "other", "other", "other"]


def test_projection_is_deterministic_and_labels_keep_apart() -> None:
    v = np.random.default_rng(0).normal(size=(50, 8))
    xy, var = stats.project_2d(v)
    assert xy.shape == (50, 2) and 0 < var[1] <= var[0] < 1
    assert np.array_equal(xy, stats.project_2d(v.copy())[0])
    taken = stats.spread_labels(xy, np.arange(50), 5, 0.2)
    extent = np.ptp(xy, axis=0).max()
    assert taken[0] == 0 and len(taken) <= 5
    assert all(np.hypot(*(xy[a] - xy[b])) >= 0.2 * extent for a in taken for b in taken if a != b)
    assert stats.years_of(np.array([0, 1_500_000_000])).tolist() == [1970, 2017]
