"""Dynamic-regret metrics: recovery after change points and new items' cold start, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from recsim_causal.dynamic_regret import DynamicRegret
from recsim_causal.scm import World


def test_recovery_regret_sums_the_window_after_each_change_point():
    world = World("drift", n_items=10, seed=0)
    tracker = DynamicRegret(world, horizon=160_000, recovery_window=1000)
    assert tracker.change_points == [50_000, 100_000, 150_000]
    rng = np.random.default_rng(0)
    t = np.arange(160_000)
    regret = rng.random(160_000)
    for lo in range(0, 160_000, 1024):  # batches of decisions, as the runner gives them
        tracker.add(t[lo:lo + 1024], np.zeros(len(t[lo:lo + 1024]), np.int64), regret[lo:lo + 1024])
    out = tracker.summary()
    for i, cp in enumerate((50_000, 100_000, 150_000)):
        assert out["recovery_regret"][i] == pytest.approx(sum(regret[cp:cp + 1000]), rel=1e-12)
        assert out["recovery_baseline"][i] == pytest.approx(sum(regret[cp - 1000:cp]), rel=1e-12)
    assert "new_item_regret" not in out


def test_default_window_is_the_gap_between_changes_when_shorter():
    world = World("russac_abrupt", n_items=50, seed=0)
    assert DynamicRegret(world, horizon=6000).window == 1000


def test_new_item_regret_counts_each_new_items_first_impressions():
    world = World("churn", n_items=20, seed=0)
    tracker = DynamicRegret(world, horizon=60_000, new_item_impressions=1000)
    cat = world.catalog_at(50_000)
    new_slots = np.flatnonzero(cat.item_id >= 20)
    old_slot = int(np.flatnonzero(cat.item_id < 20)[0])
    assert len(new_slots) == 2
    # before the change no item is new; after it slot new_slots[0] is shown 1500 times, the other 300
    tracker.add(np.full(500, 49_000), np.full(500, new_slots[0]), np.ones(500))
    acts = np.r_[np.full(1500, new_slots[0]), np.full(300, new_slots[1]), np.full(200, old_slot)]
    regret = np.r_[np.full(1500, 0.5), np.full(300, 2.0), np.full(200, 9.0)]
    for lo in range(0, 2000, 256):
        tracker.add(np.full(len(acts[lo:lo + 256]), 50_000 + lo), acts[lo:lo + 256], regret[lo:lo + 256])
    out = tracker.summary()
    assert out["new_item_impressions"] == 1000 + 300
    assert out["new_item_regret"] == 1000 * 0.5 + 300 * 2.0
    assert out["new_items_shown"] == 2


def test_new_item_regret_with_slates_counts_a_decision_once_and_every_shown_item():
    world = World("churn", n_items=20, seed=0)
    tracker = DynamicRegret(world, horizon=60_000, new_item_impressions=3)
    cat = world.catalog_at(50_000)
    (n1, n2), old = np.flatnonzero(cat.item_id >= 20), np.flatnonzero(cat.item_id < 20)[:2]
    slates = np.array([[n1, old[0]], [n1, n2], [old[0], old[1]], [n2, n1], [n1, old[1]], [n2, old[0]]])
    regret = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    # n1's impressions: decisions 0, 1, 3 (its first three), 4 (its fourth); n2's: 1, 3, 5
    tracker.add(np.full(6, 50_000), slates, regret)
    out = tracker.summary()
    assert out["new_item_regret"] == 1 + 2 + 8 + 32 and out["new_item_impressions"] == 4
    assert out["new_items_shown"] == 2 and out["change_points"] == [50_000]
