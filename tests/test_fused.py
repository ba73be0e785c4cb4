"""The fused CPU tower kernel (movierec._tower) against the torch path it replaces.

The kernel's own tests skip where it is not loaded (not built, no AVX2, or ``MOVIEREC_NO_C``
set: ``.ci/run`` runs them so a second time); the rest hold on either path.
"""

import json
import os
import platform
import subprocess
import sys

import numpy as np
import pytest
import torch
from _close import assert_scores_close

from movierec import fused
from movierec.models import ModelConfig, build_model

NO_KERNEL = f"{fused.NO_C_ENV} is set" if fused.DISABLED else "no fused kernel on this CPU"
needs_kernel = pytest.mark.skipif(not fused.available(), reason=NO_KERNEL)


def _cpu_has(flag: str) -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return flag in f.read().split()
    except OSError:
        return False


@pytest.mark.skipif(
    not (sys.platform == "linux" and platform.machine() == "x86_64" and _cpu_has("avx2")),
    reason="the kernel is only promised on x86-64 Linux with AVX2",
)
@pytest.mark.skipif(fused.DISABLED, reason=f"{fused.NO_C_ENV} is set")
def test_kernel_is_built_where_promised():
    # the extension is optional at install time: this catches a build that silently failed
    assert fused.available()
    assert fused.LANES in (8, 16)


def _reference(hu, hi, weight, bias, w):
    h = torch.relu(hu[:, None, :] + hi[None, :, :])
    return torch.relu(h @ weight.T + bias) @ w


def _lane_widths():
    return [x for x in (8, 16) if x <= fused.LANES]


@needs_kernel
@pytest.mark.parametrize("lanes", _lane_widths())
@pytest.mark.parametrize(
    "n_users,n_items,h1,h2,threads",
    [
        (1, 1, 1, 1, 1),
        (1, 37, 5, 3, 3),
        (7, 100, 16, 17, 2),
        (40, 1029, 64, 32, 3),
        (2, 16, 9, 8, 4),
    ],
)
def test_kernel_matches_torch(lanes, n_users, n_items, h1, h2, threads):
    g = torch.Generator().manual_seed(n_items)
    hu, hi = torch.randn(n_users, h1, generator=g), torch.randn(n_items, h1, generator=g)
    weight, bias = torch.randn(h2, h1, generator=g), torch.randn(h2, generator=g)
    w = torch.randn(h2, generator=g)
    start = torch.randn(n_users, n_items, generator=g)
    out = fused.tower2_into(start.clone(), hu, hi, weight, bias, w, threads=threads, lanes=lanes)
    expected = start + _reference(hu, hi, weight, bias, w)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    "kind,layers",
    [("tutorial", (64, 32)), ("neumf", (64, 32)), ("mlp", (12, 5)), ("mlp", (8, 4, 2))],
)
def test_models_score_the_same_with_and_without_kernel(kind, layers, monkeypatch):
    # without the kernel (MOVIEREC_NO_C) both scorings are torch's: still checked on pairs
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind, 9, 203, factors=8, layers=layers)).eval()
    for p in model.parameters():  # far from init, so that relu cuts matter
        torch.nn.init.normal_(p, 0.0, 0.5)
    users = torch.tensor([0, 3, 8])
    with torch.inference_mode():
        with_kernel = model.score_all(users)
        monkeypatch.setattr(fused, "LANES", 0)
        without = model.score_all(users)
        pairs = model(users[:, None], torch.arange(203)[None, :].expand(3, -1))
    assert_scores_close(with_kernel, without)
    assert_scores_close(with_kernel, pairs)


@needs_kernel
def test_bad_shapes_are_refused():
    hu, hi = torch.zeros(2, 4), torch.zeros(5, 4)
    weight, bias, w = torch.zeros(3, 4), torch.zeros(3), torch.zeros(3)
    with pytest.raises(ValueError, match="shape"):
        fused.tower2_into(torch.zeros(2, 6), hu, hi, weight, bias, w)
    with pytest.raises(ValueError, match="contiguous float32"):
        fused.tower2_into(torch.zeros(5, 2).T, hu, hi, weight, bias, w)
    with pytest.raises(ValueError, match="lanes"):
        fused.tower2_into(torch.zeros(2, 5), hu, hi, weight, bias, w, lanes=4)
    lanes = fused.LANES
    a, small = np.zeros((2, lanes), np.float32), np.zeros(2 * lanes, np.float32)
    dims = (lanes, 0, 2, 0, 5, 5, lanes, 2 * lanes)  # lanes, users 0-2, items 0-5 of 5, h1, h2
    with pytest.raises(ValueError, match="b holds"):  # a buffer too short is never read past
        fused._tower.tower2(*dims, a, small, small, small, small, np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="bad ranges"):
        fused._tower.tower2(*dims[:6], 3, *dims[7:], a, a, a, a, a, np.zeros((2, 5), np.float32))


def test_first_layer_wider_than_the_kernel_takes_uses_torch():
    wide = fused.MAX_H1 + 1
    torch.manual_seed(0)
    model = build_model(ModelConfig("mlp", 2, 40, factors=4, layers=(wide, 3))).eval()
    with torch.inference_mode():
        scores = model.score_all(torch.tensor([0, 1]))
        pairs = model(torch.tensor([[0], [1]]), torch.arange(40)[None, :].expand(2, -1))
    assert_scores_close(scores, pairs)
    hu, hi = torch.zeros(1, wide), torch.zeros(3, wide)
    with pytest.raises(RuntimeError, match="first layer"):
        fused.tower2_into(
            torch.zeros(1, 3), hu, hi, torch.zeros(2, wide), torch.zeros(2), torch.zeros(2)
        )


def _quantized(hu, hi, weight, bias, w, lanes):
    arrays = [x.numpy() for x in (hu.abs().amax(0), hi, weight, bias, w)]
    return fused.quantize_tower2(*arrays, lanes=lanes)


@needs_kernel
@pytest.mark.parametrize("lanes", _lane_widths())
@pytest.mark.parametrize("vnni", [True, False])
@pytest.mark.parametrize(
    "n_users,n_items,h1,h2,scale",
    [(1, 1, 1, 1, 1.0), (5, 37, 20, 10, 1.0), (13, 300, 64, 32, 1.0), (3, 50, 256, 16, 50.0)],
)
def test_integer_kernel_stays_within_its_bound(lanes, vnni, n_users, n_items, h1, h2, scale):
    g = torch.Generator().manual_seed(h1 + n_items)
    hu, hi = scale * torch.randn(n_users, h1, generator=g), torch.randn(n_items, h1, generator=g)
    weight, bias = scale * torch.randn(h2, h1, generator=g), torch.randn(h2, generator=g)
    w = torch.randn(h2, generator=g)
    q = _quantized(hu, hi, weight, bias, w, lanes)
    out = torch.full((n_users, n_items), 2.0)
    err_users = fused.tower2q_into(out, q, hu, threads=2, vnni=vnni)
    exact = 2.0 + _reference(*(x.double() for x in (hu, hi, weight, bias, w)))
    bound = err_users[:, None] + q.err_items[None, :]
    assert (np.abs(out.double().numpy() - exact.numpy()) <= bound).all()
    # and the bound is a useful one: a small fraction of the scores
    assert bound.max() < 0.05 * (exact.abs().max().item() + 1.0)


@needs_kernel
def test_integer_kernel_saturates_nothing_at_its_extremes():
    # every first activation at its largest, every weight at its largest: no 32-bit overflow
    h1, h2 = 256, 32
    hu, hi = torch.ones(2, h1), torch.ones(3, h1)
    weight, bias, w = torch.ones(h2, h1), torch.zeros(h2), torch.ones(h2)
    q = _quantized(hu, hi, weight, bias, w, fused.LANES)
    out = torch.zeros(2, 3)
    err_users = fused.tower2q_into(out, q, hu)
    assert np.allclose(out.numpy(), 2.0 * h1 * h2, rtol=0, atol=err_users.max() + q.err_items.max())


@needs_kernel
def test_integer_kernel_refuses_users_beyond_its_range():
    hu, hi = torch.ones(2, 8), torch.ones(3, 8)
    q = _quantized(hu, hi, torch.ones(4, 8), torch.zeros(4), torch.ones(4), fused.LANES)
    with pytest.raises(ValueError, match="exceeds the range"):
        fused.tower2q_into(torch.zeros(2, 3), q, 2 * hu)


@needs_kernel
def test_embedding_rows_match_torch_with_repeats_and_any_shape():
    g = torch.Generator().manual_seed(0)
    table = torch.randn(50, 6, generator=g)
    idx = torch.randint(0, 50, (7, 9), generator=g, dtype=torch.int32)
    idx[0, :4] = 3  # a repeated row: its gradients add up
    a = table.clone().requires_grad_()
    b = table.clone().requires_grad_()
    upstream = torch.randn(7, 9, 6, generator=g)
    got = fused.embedding(a, idx)
    want = torch.nn.functional.embedding(idx.long(), b)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    (got * upstream).sum().backward()
    (want * upstream).sum().backward()
    assert_scores_close(a.grad, b.grad)  # sums of repeated rows, in another order


@needs_kernel
def test_embedding_rows_refuse_bad_indices():
    table = torch.zeros(5, 3)
    with pytest.raises(IndexError, match="out of range"):
        fused.embedding(table, torch.tensor([0, 5]))
    with pytest.raises(IndexError, match="out of range"):
        fused.embedding(table, torch.tensor([-1]))
    assert not fused.rows_available(table.double())
    assert not fused.rows_available(torch.zeros(3, 5).T)


@needs_kernel
@pytest.mark.parametrize("threads", [1, 3])
def test_screen_matches_a_reference(threads):
    rng = np.random.default_rng(0)
    b, n, k = 9, 400, 10
    s = rng.standard_normal((b, n)).astype(np.float32)
    s[0, :395] = -np.inf  # fewer than k finite scores
    s[1, 7] = np.nan
    ei = rng.uniform(0, 0.05, n).astype(np.float32)
    eu = rng.uniform(0, 0.05, b).astype(np.float32)
    targets = rng.integers(0, n, b)
    t = s[np.arange(b), targets] + rng.normal(0, 0.01, b).astype(np.float32)
    t[2] = np.nan
    got = fused.screen(s, ei, t, eu, targets, k, threads=threads)
    band, cand = set(got.band.tolist()), set(got.candidates.tolist())
    for r in range(b):
        x = s[r]
        other = np.arange(n) != targets[r]
        below = (x + ei < t[r] - eu[r]) & other
        in_band = ~(x + ei < t[r] - eu[r]) & (x - ei <= t[r] + eu[r]) & other
        assert got.below[r] == below.sum()
        assert {c for c in range(n) if r * n + c in band} == set(np.flatnonzero(in_band))
        finite = np.isfinite(x)
        lower = np.sort((x - ei)[finite])[::-1]
        floor = lower[k - 1] - 2 * eu[r] if lower.size >= k else -np.inf
        want = np.flatnonzero(finite & (x + ei >= floor))
        assert {c for c in range(n) if r * n + c in cand} == set(want)
    assert got.band.size == len(band)  # no item listed twice


@pytest.mark.skipif(fused.available(), reason="the kernel is loaded here")
def test_kernel_entry_points_refuse_clearly_without_it():
    q = _quantized(
        torch.ones(1, 4), torch.ones(2, 4), torch.ones(3, 4), torch.zeros(3), torch.ones(3), lanes=8
    )
    with pytest.raises(RuntimeError, match="needs the C kernels"):
        fused.tower2q_into(torch.zeros(1, 2), q, torch.ones(1, 4))
    s = np.zeros((1, 2), np.float32)
    with pytest.raises(RuntimeError, match="needs the C kernels"):
        fused.screen(s, np.zeros(2), np.zeros(1), np.zeros(1), np.zeros(1, np.int64), 1)
    with pytest.raises(RuntimeError, match="first layer"):
        fused.tower2_into(
            torch.zeros(1, 2), *(torch.ones(n, 4) for n in (1, 2, 3)), torch.zeros(3), torch.ones(3)
        )
    with pytest.raises(RuntimeError, match="no row kernels"):
        fused.embedding(torch.zeros(3, 2), torch.tensor([0]))


def _fused_in_a_process(value: str | None) -> dict:
    """What ``movierec.fused`` loads in a fresh process with ``MOVIEREC_NO_C`` at ``value``
    (None: unset)."""
    env = {k: v for k, v in os.environ.items() if k != fused.NO_C_ENV}
    if value is not None:
        env[fused.NO_C_ENV] = value
    probe = (
        "import json, sys, torch; from movierec import fused; print(json.dumps(dict("
        "loaded=fused._tower is not None, lanes=fused.LANES, available=fused.available(), "
        "rows=fused.rows_available(torch.zeros(2, 3)), imported='movierec._tower' in sys.modules"
        ")))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_no_c_switch_leaves_the_extension_unloaded():
    off = dict(loaded=False, lanes=0, available=False, rows=False, imported=False)
    assert _fused_in_a_process("1") == off
    on = _fused_in_a_process(None)
    if not on["loaded"]:
        pytest.skip("the extension is not built here: nothing to switch off")
    assert on == dict(loaded=True, lanes=on["lanes"], available=True, rows=True, imported=True)
    assert on["lanes"] in (8, 16)
    assert _fused_in_a_process("0") == on  # 0 (or empty) leaves the kernel on
