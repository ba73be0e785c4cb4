"""The main job returns what the CLI prints: data set, leaderboard, run, a typical user; it
keeps the leaderboard and the report in the run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import planted_release

from movierec.artifacts import REPORT, load_run
from movierec.errors import ParameterError
from movierec.pipeline import NCF_FAMILY, check_peers, main_job, our_others, sample_user
from movierec.recommend import Recommender
from movierec.report import read_board

torch.set_num_threads(1)


def test_check_peers_keeps_order_drops_repeats_and_names_the_unknown() -> None:
    assert check_peers(["ease", "popularity", "ease"]) == ("ease", "popularity")
    with pytest.raises(ParameterError, match="unknown peer.*svd.*known: popularity"):
        check_peers(["popularity", "svd"])


def test_our_others_drop_the_trained_model_and_name_the_unknown() -> None:
    assert NCF_FAMILY == ("tutorial", "neumf")  # the NCF family on `movierec run`'s board
    assert list(our_others("neumf", NCF_FAMILY)) == ["tutorial"]
    assert list(our_others("history", ["neumf", "tutorial", "neumf"])) == ["neumf", "tutorial"]
    with pytest.raises(ParameterError, match="unknown model.*svd.*known: .*tutorial"):
        our_others("history", ["svd"])


def test_main_job_on_planted_data(tmp_path: Path) -> None:
    data, out = planted_release(tmp_path / "data"), tmp_path / "latest"
    said: list[str] = []
    result = main_job(
        str(data),
        out,
        "gmf",
        peers=("popularity",),
        others=("tutorial", "gmf"),
        device="cpu",
        progress=False,
        say=said.append,
    )
    assert result.run_dir == out and load_run(out).config.model == "gmf"
    assert result.model == "gmf" and result.seed == 0
    assert [r.model for r in result.leaderboard] == ["popularity", "gmf", "tutorial"]
    assert result.test_users == result.report.users and result.users == result.report.users
    assert result.train_interactions == result.report.interactions - 2 * result.test_users
    assert said[0].startswith(f"{result.dataset}: {result.report.interactions:,} interactions")
    assert "training gmf" in said[1] and said[-2] == "tuning and evaluating tutorial (seed 0)"
    assert said[-1] == "writing the report"
    assert result.sample == sample_user(Recommender.load(out))
    saved = read_board(out)  # the board as printed, kept in the run
    assert saved is not None
    assert [(r.model, r.seed, r.params) for r in saved] == [
        (r.model, r.seed, r.params) for r in result.leaderboard
    ]
    assert [r.test.to_dict() for r in saved] == [r.test.to_dict() for r in result.leaderboard]
    page = result.report_file
    assert page.path == out / REPORT and page.bytes == page.path.stat().st_size > 0
    assert 'id="leaderboard"' in page.path.read_text(encoding="utf-8")
    load_run(out)  # the files beside the manifest leave the run verifiable


def test_sample_user_is_the_median_user_latest_first(tmp_path: Path) -> None:
    from _service_fixtures import tiny_run

    rec = Recommender.load(tiny_run(tmp_path / "run"))
    user = sample_user(rec)
    counts = np.diff(rec.timeline.indptr)
    idx = int(rec.users.index(user.user_id)[0])
    assert counts[idx] == np.sort(counts)[len(counts) // 2]
    stamps = [m["timestamp"] for m in user.history]
    assert stamps == sorted(stamps, reverse=True) and len(stamps) == min(10, counts[idx])
    assert len(user.top) == 10 and all(m["score"] is not None for m in user.top)
    seen = {m["movie_id"] for m in user.history}
    assert not seen & {m["movie_id"] for m in user.top}
    watched = set(rec.items.raw[rec.history(idx)[0]].tolist())  # reasons: their own movies
    assert all("because" in m for m in user.top)
    assert all({b["movie_id"] for b in m["because"]} <= watched for m in user.top)
    assert any(m["because"] for m in user.top)
