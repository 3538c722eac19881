"""do() on user-level nodes acts on users sampled before the intervention
(abduction-action-prediction), checked against the YAML coefficients."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from recsim_causal.scm import World
from recsim_causal.scm.world import CONF_DIR


@pytest.fixture(scope="module")
def world():
    return World("default", n_items=30, seed=0, dtype="float64")


def _logit(q):
    return np.log(q) - np.log1p(-q)


def test_do_activity_on_existing_users_shifts_the_logit_by_its_coefficient(world):
    coef = yaml.safe_load((CONF_DIR / "scm" / "default.yaml").read_text())["nodes"]["click"]["parents"]["activity"]
    users = world.sample_users(500, np.random.default_rng(0))
    factual = world.expected_reward(users)
    q1 = world.do(activity=1.0).expected_reward(users)
    q0 = world.do(activity=0.0).expected_reward(users)
    np.testing.assert_allclose(_logit(q1) - _logit(q0), coef, rtol=0, atol=1e-9)  # every user x item cell
    # the same users: at their own activity, the factual logit sits in between, shifted by coef * activity
    np.testing.assert_allclose(_logit(factual) - _logit(q0), np.broadcast_to(coef * users.values["activity"], factual.shape), atol=1e-9)
    assert users.values["activity"].std() > 0.1  # the users themselves are unchanged


def test_do_on_a_parent_recomputes_descendants_with_the_kept_noise(world):
    users = world.sample_users(200, np.random.default_rng(1))
    w = world.do(taste=0.0)
    x = w.observe(users)
    # taste_signal = taste + 0.5 * noise (default.yaml): with taste fixed to 0 only the kept noise is left
    np.testing.assert_allclose(x[:, :8], 0.5 * users.noise["taste_signal"], atol=1e-6)
    # affinity = 1.5 * taste . style is 0 everywhere: the click logit no longer depends on the item's style
    q = w.expected_reward(users)
    flat = world.do(mechanisms={"affinity": {"type": "constant", "level": "user_item", "value": 0.0}})
    np.testing.assert_allclose(q, flat.expected_reward(users), atol=1e-12)
    # users drawn in the intervened world agree with existing users carried into it
    fresh = w.sample_users(200, np.random.default_rng(1))
    np.testing.assert_allclose(w.expected_reward(fresh), w.expected_reward(fresh.take(slice(None))))


def test_interventions_compose_and_respond_uses_them(world):
    users = world.sample_users(300, np.random.default_rng(2))
    both = world.do(activity=1.0).do(price_sensitivity=0.0)
    assert set(both.intervened_user_nodes) == {"activity", "price_sensitivity"}
    direct = world.do(activity=1.0, price_sensitivity=0.0)
    np.testing.assert_allclose(both.expected_reward(users), direct.expected_reward(users))
    a = np.zeros(users.n, dtype=np.int64)
    out = both.respond(users, a).reward
    # respond draws with the kept uniform noise against the intervened click probability
    np.testing.assert_array_equal(out, (users.noise["click"][:, 0] < both.expected_reward(users)[:, 0]).astype(float))
