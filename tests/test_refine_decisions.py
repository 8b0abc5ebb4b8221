"""The refinement loop's decisions, each pinned by its own test (the golden record compares floats with a tolerance,
so a small change of a decision could hide in it): which checked latents an image keeps, when a rate target counts
as met, when early stopping stops. The unit tests feed the deciding classes made-up checks (no float arithmetic
from convolutions: they hold on any machine); the refiner tests check that the loop follows them."""
import pytest
import torch
from helpers import bundled_codec, sample_crop

import sgaplus
from sgaplus.refine.best import BestLatents
from sgaplus.refine.results import Check, Metrics
from sgaplus.refine.target import RateTarget


def check(losses, bpps=None, mses=None, mark=0.0):
    """A made-up check of len(losses) rows whose latents are filled with `mark`, so a test can see which were kept."""
    n = len(losses)
    bpps, mses = bpps or [0.5] * n, mses or [1e-3] * n
    metrics = Metrics(list(losses), list(bpps), [30.0] * n, list(mses), list(mses))
    return Check(metrics, torch.full((n, 3, 4, 4), mark), torch.full((n, 2, 1, 1), mark),
                 torch.full((n, 2, 1, 1), mark), 0)


def test_an_image_keeps_its_best_check_not_its_last():
    best = BestLatents(check([3.0, 3.0], mark=0))
    for step, (losses, mark) in enumerate([([2.5, 3.5], 1), ([1.0, 2.9], 2), ([1.5, 2.95], 3)], start=1):
        for row in range(2):
            best.offer(row, row, check(losses, mark=mark), step)
    assert best.metrics.loss == [1.0, 2.9] and best.step == [2, 2]
    assert best.y_hat[0].unique().tolist() == [2.0] and best.x_hat[1].unique().tolist() == [2.0]


def test_an_equal_loss_does_not_replace_the_best():
    best = BestLatents(check([2.0], mark=0))
    best.offer(0, 0, check([2.0], mark=1), 5)
    assert best.step == [0] and best.y_hat.unique().tolist() == [0.0]


def test_rows_of_a_shrunk_batch_update_their_own_image():
    best = BestLatents(check([3.0, 3.0, 3.0]))
    best.offer(2, 0, check([1.0], mark=7), 10)  # image 2 is now row 0
    assert best.metrics.loss == [3.0, 3.0, 1.0] and best.step == [0, 0, 10]
    assert best.y_hat[2].unique().tolist() == [7.0] and best.y_hat[0].unique().tolist() == [0.0]


@pytest.mark.parametrize("factor,met", [(1.0, True), (1.0199, True), (0.9801, True), (1.0201, False),
                                        (0.9799, False)])
def test_a_rate_target_is_met_within_its_tolerance_and_not_outside(factor, met):
    [goal] = RateTarget(0.4, tolerance=0.02).per_image(1)
    assert goal.within(0.4 * factor) is met


def test_within_tolerance_the_lower_distortion_wins_and_outside_it_the_closer_rate():
    [goal] = RateTarget(0.4, tolerance=0.02).per_image(1)
    best = BestLatents(check([9.0], bpps=[0.6], mses=[1e-4]), [goal])
    best.offer(0, 0, check([9.0], bpps=[0.5], mses=[5e-3], mark=1), 5)  # closer rate, worse distortion: kept
    assert best.step == [5]
    best.offer(0, 0, check([9.0], bpps=[0.4079], mses=[4e-3], mark=2), 10)  # just inside: kept
    assert best.step == [10]
    best.offer(0, 0, check([1.0], bpps=[0.4081], mses=[1e-4], mark=3), 15)  # just outside: not kept, loss aside
    assert best.step == [10]
    best.offer(0, 0, check([9.0], bpps=[0.3921], mses=[3e-3], mark=4), 20)  # inside, less distortion: kept
    assert best.step == [20] and best.y_hat.unique().tolist() == [4.0]


@pytest.mark.parametrize("patience", [1, 2, 3])
def test_early_stopping_stops_at_the_patience_not_one_later(patience):
    tracker = sgaplus.EarlyStopping(patience=patience, min_delta=0.1).tracker([1.0])
    assert not tracker.plateaued(0, 0.85)  # an improvement by more than min_delta resets the count
    stalls = [tracker.plateaued(0, 0.85 - 0.01 * k) for k in range(1, patience + 1)]  # less than min_delta each
    assert stalls == [False] * (patience - 1) + [True]


def test_an_improvement_just_above_min_delta_counts_and_just_below_does_not():
    tracker = sgaplus.EarlyStopping(patience=1, min_delta=0.1).tracker([1.0])
    assert not tracker.plateaued(0, 0.8999)
    assert tracker.plateaued(0, 0.8999 * 0.9001)


@pytest.fixture(scope="module")
def refined():
    """A run whose last check is not its best (lr too high for straight-through rounding: the loss rises again)."""
    refiner = sgaplus.LatentRefiner(bundled_codec(), "ste", iterations=40, check_every=5, lr=0.08, seed=3)
    return refiner.refine(sample_crop(32, top=100, left=180))


def test_the_refiner_keeps_the_best_checked_latents(refined):
    losses = [entry["loss"][0] for entry in refined.history]
    steps = [entry["step"] for entry in refined.history]
    best = min(range(len(losses)), key=losses.__getitem__)
    assert 0 < best < len(losses) - 1 and losses[-1] > losses[best], losses  # negative control: the run turns
    assert refined.best_step == [steps[best]] and refined.best.loss == [losses[best]]


def test_the_kept_latents_are_the_ones_that_scored_the_kept_loss(refined):
    codec = bundled_codec()
    with torch.no_grad():
        x_hat = codec.synthesis(refined.y_hat)[..., :32, :32].clamp(0, 1)
    mse = ((x_hat - sample_crop(32, top=100, left=180)) ** 2).mean().item()
    assert mse == pytest.approx(refined.best.mse[0], rel=1e-4)


@pytest.mark.parametrize("patience", [1, 3])
def test_the_refiner_stops_an_image_at_the_patience(patience):
    """min_delta 0.9: no check improves by 90%, so every check is a stall and the image stops at check `patience`."""
    refiner = sgaplus.LatentRefiner(bundled_codec(), "ssl", iterations=30, check_every=4, seed=1,
                                    early_stopping=sgaplus.EarlyStopping(patience=patience, min_delta=0.9))
    result = refiner.refine(sample_crop(32))
    assert result.stopped_step == [4 * patience]
    assert result.history[-1]["step"] == 4 * patience
