"""The main job returns what the CLI prints: data set, leaderboard, run, a typical user."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import planted_release

from movierec.artifacts import load_run
from movierec.errors import ParameterError
from movierec.pipeline import check_peers, main_job, sample_user
from movierec.recommend import Recommender

torch.set_num_threads(1)


def test_check_peers_keeps_order_drops_repeats_and_names_the_unknown() -> None:
    assert check_peers(["ease", "popularity", "ease"]) == ("ease", "popularity")
    with pytest.raises(ParameterError, match="unknown peer.*svd.*known: popularity"):
        check_peers(["popularity", "svd"])


def test_main_job_on_planted_data(tmp_path: Path) -> None:
    data, out = planted_release(tmp_path / "data"), tmp_path / "latest"
    said: list[str] = []
    result = main_job(
        str(data), out, "gmf", peers=("popularity",), device="cpu", progress=False, say=said.append
    )
    assert result.run_dir == out and load_run(out).config.model == "gmf"
    assert result.model == "gmf" and result.seed == 0
    assert [r.model for r in result.leaderboard] == ["popularity", "gmf"]
    assert result.test_users == result.report.users and result.users == result.report.users
    assert result.train_interactions == result.report.interactions - 2 * result.test_users
    assert said[0].startswith(f"{result.dataset}: {result.report.interactions:,} interactions")
    assert "training gmf" in said[1] and said[-1] == "tuning and evaluating gmf (seed 0)"
    assert result.sample == sample_user(Recommender.load(out))


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
