"""The torch backend computes the same SCM as numpy: same noise in, same numbers out.

Every preset and a world that uses every registered mechanism type, one step and sessions,
float64 to 1e-12 (float32 to 1e-5); determinism per backend; the oracle modes against the
dense (n, K) oracle; Gymnasium's env checker on the torch envs' single views.
"""

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import recsim_causal.envs
from recsim_causal.envs import BANDIT_ID, SESSION_ID
from recsim_causal.scm import MECHANISMS, SCMConfigError, World, load_scm_config
from recsim_causal.scm.backend import NumpyBackend, TorchBackend, get_backend
from recsim_causal.scm.world import CONF_DIR

PRESETS = sorted(p.stem for p in (CONF_DIR / "scm").glob("*.yaml"))
F64, F32 = dict(rtol=0, atol=1e-12), dict(rtol=1e-5, atol=1e-5)


class SharedNoiseTorch(TorchBackend):
    """torch for every computation, numpy's generator for the exogenous noise: a torch world on
    this backend draws exactly the noise the numpy world draws from the same seed."""

    def generator(self, rng):
        return rng

    def standard_normal(self, rng, shape):
        return self.asarray(NumpyBackend(self.np_dtype).standard_normal(rng, shape))

    def random(self, rng, shape):
        return self.asarray(NumpyBackend(self.np_dtype).random(rng, shape))


def every_mechanism_config() -> dict:
    """A world in which every registered mechanism type appears, at every level it supports."""
    return {
        "name": "every-mechanism",
        "catalog": {"n_topics": 4, "topic_dim": 3},
        "nodes": {
            "taste": {"type": "normal", "dim": 3, "loc": 0.1, "scale": 1.2},
            "mood": {"type": "uniform", "low": -1.0, "high": 2.0},
            "budget": {"type": "lognormal", "mean": 0.2, "sigma": 0.4},
            "segment": {"type": "categorical", "probs": [0.5, 0.3, 0.2]},
            "tiredness": {"type": "state", "dim": 1, "init": 0.3},
            "loyal": {"type": "constant", "value": [0.7]},
            "signal": {"type": "linear", "parents": {"taste": 1.0}, "noise": 0.3, "dim": 3},
            "seg_score": {"type": "linear", "parents": {"segment": [0.3, -0.2, 0.1], "mood": 0.5}, "bias": 0.1},
            "hidden": {"type": "mlp", "parents": ["taste", "mood"], "hidden": [5, 4], "dim": 2},
            "thrift": {"type": "product", "parents": ["budget", "mood"], "scale": 0.5},
            "style": {"type": "catalog", "field": "topic_vec"},
            "price": {"type": "catalog", "field": "price"},
            "quality": {"type": "catalog", "field": "quality"},
            "glow": {"type": "normal", "level": "item", "dim": 1},
            "shine": {"type": "uniform", "level": "item"},
            "heft": {"type": "lognormal", "level": "item", "sigma": 0.3},
            "kind": {"type": "categorical", "level": "item", "probs": [0.6, 0.4]},
            "appeal": {"type": "mlp", "parents": ["quality", "glow"], "hidden": 4},
            "item_score": {"type": "linear", "parents": {"appeal": 1.0, "kind": [0.2, -0.3], "shine": 0.4}},
            "affinity": {"type": "bilinear", "parents": ["taste", "style"], "scale": 1.3},
            "price_effect": {"type": "product", "parents": ["budget", "price"], "scale": -0.7},
            "combined": {"type": "linear", "parents": {"affinity": 0.5, "price_effect": 1.0, "mood": 0.2,
                                                       "item_score": 0.3, "heft": -0.1}, "bias": -0.5},
            "click": {"type": "bernoulli", "bias": -1.0,
                      "parents": {"combined": 1.0, "seg_score": 1.0, "thrift": 0.3, "tiredness": -0.5,
                                  "loyal": 0.2, "quality": 0.3}},
            "purchase": {"type": "bernoulli", "gate": "click", "bias": -0.5, "parents": {"price_effect": 1.0}},
            "dwell": {"type": "lognormal_response", "gate": "click", "sigma": 0.6,
                      "parents": {"affinity": 0.4, "quality": 0.2}},
            "offers": {"type": "action_set", "n_actions": 60, "action_dim": 2},
            "lean": {"type": "normal", "dim": 2},
            "offer_value": {"type": "action_dot", "parents": ["offers", "lean"], "scale": 0.5},
            "rating": {"type": "gaussian_response", "gate": "click", "sigma": 0.5,
                       "parents": {"offer_value": 1.0, "quality": 0.1}},
        },
        "observed": ["signal", "mood", "budget", "segment", "hidden"],
        "reward": {"click": 1.0, "purchase": 2.0, "dwell": 0.1, "rating": 0.2},
        "slate": {"model": "cascade", "examination": [1.0, 0.8, 0.6]},
    }


WORLDS = [*PRESETS, "every-mechanism"]


def config(name):
    return every_mechanism_config() if name == "every-mechanism" else name


def pair(name, dtype="float64", slate_size=1, n_items=40):
    kw = dict(n_items=n_items, seed=3, slate_size=slate_size, dtype=dtype)
    return World(config(name), **kw), World(config(name), backend="torch", device="cpu", **kw)


def close(a, b, tol):
    np.testing.assert_allclose(np.asarray(b.detach().cpu().numpy() if torch.is_tensor(b) else b, dtype=np.float64),
                               np.asarray(a, dtype=np.float64), **tol)


def test_every_mechanism_type_is_exercised():
    used = {spec["type"] for spec in every_mechanism_config()["nodes"].values()}
    assert used == set(MECHANISMS)


@pytest.mark.parametrize("dtype, tol", [("float64", F64), ("float32", F32)])
@pytest.mark.parametrize("slate_size", [1, 3])
@pytest.mark.parametrize("name", WORLDS)
def test_torch_world_equals_numpy_world_on_the_same_users(name, slate_size, dtype, tol):
    wn, wt = pair(name, dtype, slate_size)
    users = wn.sample_users(500, np.random.default_rng(7))
    ut = wt.adopt(users)
    assert all(torch.is_tensor(v) for v in ut.values.values())
    for node, v in wn.item_values.items():
        close(v, wt.item_values[node], F64)  # item values are the same world's whatever the backend
    close(wn.observe(users), wt.observe(ut), tol)
    cond_n, cond_t = wn.conditional_means(users), wt.conditional_means(ut)
    for r in cond_n:
        close(cond_n[r], cond_t[r], tol)
    q = wn.expected_reward(users)
    close(q, wt.expected_reward(ut), tol)
    rng = np.random.default_rng(1)
    for _ in range(2):  # the counterfactual: same users, same noise, other actions
        shape = (500,) if slate_size == 1 else (500, slate_size)
        a = rng.integers(0, 40, shape)
        on, ot = wn.respond(users, a), wt.respond(ut, torch.as_tensor(a))
        close(on.reward, ot.reward, tol)
        for r in on.responses:
            close(on.responses[r], ot.responses[r], tol)
        close(wn.expected_reward_at(users, a), wt.expected_reward_at(ut, torch.as_tensor(a)), tol)
        if slate_size > 1:
            close(on.slot_reward, ot.slot_reward, tol)
            close(wn.expected_slate_reward(users, a), wt.expected_slate_reward(ut, torch.as_tensor(a)), tol)
        else:
            close(on.expected_reward, ot.expected_reward, tol)
    v_n, i_n = wn.top_items(users, 2, block_size=7)
    v_t, i_t = wt.top_items(ut, 2, block_size=7)
    close(v_n, v_t, tol)
    if dtype == "float64":
        np.testing.assert_array_equal(i_n, i_t.numpy())


@pytest.mark.parametrize("name", WORLDS)
def test_interventions_agree_across_backends(name):
    wn, wt = pair(name)
    users = wn.sample_users(300, np.random.default_rng(2))
    node = "quality" if "quality" in wn.mech else wn.user_nodes[0]
    dn, dt = wn.do({node: 0.5}, action=3), wt.do({node: 0.5}, action=3)
    assert dt.backend == "torch"
    close(dn.expected_reward(users), dt.expected_reward(dt.adopt(users)), F64)
    close(dn.respond(users, np.zeros(300, int)).reward, dt.respond(dt.adopt(users), torch.zeros(300, dtype=torch.long)).reward, F64)


@pytest.mark.parametrize("name", WORLDS)
def test_one_step_env_equal_on_shared_noise(name):
    kw = dict(num_envs=256, vectorization_mode="vector_entry_point", n_items=30, scm=config(name), dtype="float64")
    en = gym.make_vec(BANDIT_ID, **kw)
    et = gym.make_vec(BANDIT_ID, world=World(config(name), n_items=30, dtype="float64",
                                             backend=SharedNoiseTorch("float64", "cpu")), **kw)
    on, _ = en.reset(seed=11)
    ot, _ = et.reset(seed=11)
    close(on, ot, F64)
    rng = np.random.default_rng(0)
    for _ in range(3):
        a = rng.integers(0, 30, 256)
        sn, st = en.step(a), et.step(torch.as_tensor(a))
        for x, y in zip(sn[:4], st[:4]):
            close(x, y, F64)
        for k in ("expected_reward", "chosen_expected_reward", "optimal_expected_reward", "optimal_action"):
            close(sn[4][k], st[4][k], F64)


@pytest.mark.parametrize("oracle", ["full", "best", "chosen"])
def test_slate_env_equal_on_shared_noise(oracle):
    kw = dict(num_envs=128, vectorization_mode="vector_entry_point", n_items=30, slate_size=3, scm="position_bias",
              dtype="float64", oracle=oracle)
    en = gym.make_vec(BANDIT_ID, **kw)
    et = gym.make_vec(BANDIT_ID, world=World("position_bias", n_items=30, slate_size=3, dtype="float64",
                                             backend=SharedNoiseTorch("float64", "cpu")), **kw)
    en.reset(seed=2)
    et.reset(seed=2)
    slates = np.argsort(np.random.default_rng(0).random((128, 30)), axis=1)[:, :3]
    sn, st = en.step(slates), et.step(torch.as_tensor(slates))
    for x, y in zip(sn[:4], st[:4]):
        close(x, y, F64)
    assert set(sn[4]) == set(st[4])
    for k, v in sn[4].items():
        close(v, st[4][k], F64)


@pytest.mark.parametrize("oracle", ["full", "chosen"])
def test_session_equal_on_shared_noise(oracle):
    kw = dict(num_envs=64, vectorization_mode="vector_entry_point", n_items=25, dtype="float64", max_steps=6,
              oracle=oracle)
    en = gym.make_vec(SESSION_ID, **kw)
    et = gym.make_vec(SESSION_ID, world=World("default", n_items=25, dtype="float64",
                                              backend=SharedNoiseTorch("float64", "cpu")), **kw)
    on, _ = en.reset(seed=5)
    ot, _ = et.reset(seed=5)
    close(on, ot, F64)
    rng = np.random.default_rng(3)
    ended = 0
    for _ in range(15):  # long enough for users to leave, time out and be replaced
        a = rng.integers(0, 25, 64)
        (on, rn, tn, un, info_n), (ot, rt, tt, ut, info_t) = en.step(a), et.step(torch.as_tensor(a))
        close(on, ot, F64)
        close(rn, rt, F64)
        np.testing.assert_array_equal(tn, tt.numpy())
        np.testing.assert_array_equal(un, ut.numpy())
        close(info_n["chosen_expected_reward"], info_t["chosen_expected_reward"], F64)
        ended += int(tn.sum() + un.sum())
    assert ended > 20


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("env_id", [BANDIT_ID, SESSION_ID])
def test_each_backend_is_deterministic(backend, env_id):
    def run():
        env = gym.make_vec(env_id, num_envs=128, vectorization_mode="vector_entry_point", n_items=20, backend=backend)
        obs, _ = env.reset(seed=4)
        out = [obs]
        for t in range(4):
            obs, r, term, trunc, _ = env.step(np.full(128, t % 20))
            out += [obs, r, term]
        return [np.asarray(x.numpy() if torch.is_tensor(x) else x, dtype=np.float64) for x in out]

    for x, y in zip(run(), run()):
        np.testing.assert_array_equal(x, y)


def test_torch_sampling_is_seeded_by_a_torch_generator():
    w = World("default", n_items=20, backend="torch", device="cpu")
    a = w.sample_users(100, torch.Generator().manual_seed(0))
    b = w.sample_users(100, torch.Generator().manual_seed(0))
    c = w.sample_users(100, torch.Generator().manual_seed(1))
    assert torch.equal(a.values["taste"], b.values["taste"])
    assert not torch.equal(a.values["taste"], c.values["taste"])
    with pytest.raises(TypeError, match="rng: expected a numpy.random.Generator or a torch.Generator"):
        w.sample_users(3, 0)


def test_torch_vector_env_returns_tensors_like_numpy_to_torch():
    env = gym.make_vec(BANDIT_ID, num_envs=32, vectorization_mode="vector_entry_point", n_items=10,
                       backend="torch", device="cpu")
    obs, _ = env.reset(seed=0)
    assert torch.is_tensor(obs) and obs.dtype == torch.float32 and obs.shape == (32, env.single_observation_space.shape[0])
    obs, r, term, trunc, info = env.step(torch.zeros(32, dtype=torch.int64))
    assert r.dtype == torch.float32 and term.dtype == torch.bool and bool(term.all()) and not bool(trunc.any())
    assert all(torch.is_tensor(v) for v in info.values())
    assert info["expected_reward"].shape == (32, 10)
    env.step(np.arange(32) % 10)  # numpy actions are taken too
    with pytest.raises(ValueError, match=r"actions: expected integer item indices \(an int or an integer array\), got a tensor of torch.float32"):
        env.step(torch.zeros(32))
    with pytest.raises(ValueError, match=r"actions: expected item indices in \[0, 10\), got \[0, 10\]"):
        env.step(torch.arange(32) % 11)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("env_id, kw", [(BANDIT_ID, {}), (BANDIT_ID, {"oracle": "chosen"}), (SESSION_ID, {}),
                                        (BANDIT_ID, {"slate_size": 3, "scm": "position_bias", "n_items": 4})])
def test_env_checker_on_single_views(backend, env_id, kw):
    """(Slates: the action space samples L distinct items, so the checker's actions are valid ones.)"""
    env = gym.make(env_id, backend=backend, device="cpu" if backend == "torch" else None, **{"n_items": 12, **kw})
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert isinstance(obs, np.ndarray) and obs.dtype == np.float32


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("name", ["default", "every-mechanism"])
def test_oracle_modes_against_the_dense_oracle(backend, name):
    """'chosen' and 'best' give exactly what the (N, K) oracle gives, without computing it."""
    out = {}
    for oracle in ("full", "chosen", "best"):
        env = gym.make_vec(BANDIT_ID, num_envs=200, vectorization_mode="vector_entry_point", n_items=60,
                           scm=config(name), dtype="float64", backend=backend, oracle=oracle)
        env.reset(seed=9)
        a = np.random.default_rng(0).integers(0, 60, 200)
        *_, info = env.step(a)
        out[oracle] = {k: np.asarray(v.numpy() if torch.is_tensor(v) else v) for k, v in info.items()}
    q = out["full"]["expected_reward"]
    assert "expected_reward" not in out["chosen"] and "optimal_expected_reward" not in out["chosen"]
    for mode in ("full", "chosen", "best"):
        close(q[np.arange(200), a], out[mode]["chosen_expected_reward"], F64)
    close(q.max(axis=1), out["best"]["optimal_expected_reward"], F64)
    np.testing.assert_array_equal(q.argmax(axis=1), out["best"]["optimal_action"])


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_top_items_by_brute_force_for_every_block_size(backend):
    w = World(every_mechanism_config(), n_items=37, dtype="float64", backend=backend)  # gated, weighted: not monotone
    users = w.sample_users(50, np.random.default_rng(0))
    q = np.asarray(w.xp.to_numpy(w.expected_reward(users)))
    order = np.argsort(-q, axis=1, kind="stable")[:, :4]
    for block in (1, 5, 36, 37, 1000):
        v, i = w.top_items(users, 4, block_size=block)
        np.testing.assert_array_equal(w.xp.to_numpy(i), order)
        close(np.take_along_axis(q, order, 1), v, F64)
    default = World("default", n_items=37, dtype="float64", backend=backend)  # one monotone response: MIPS path
    u2 = default.sample_users(50, np.random.default_rng(1))
    q2 = default.xp.to_numpy(default.expected_reward(u2))
    v, i = default.top_items(u2, 1, block_size=6)
    close(q2.max(axis=1), v[:, 0], F64)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_max_argmax_takes_the_first_of_tied_maxima(backend):
    xp = get_backend(backend, dtype="float32")
    x = np.array([[0.1, 0.7, 0.7, 0.2], [0.5, 0.5, 0.5, 0.5], [0.0, 0.0, 0.0, 0.9]], np.float32)
    best, idx = xp.max_argmax(xp.asarray(x))  # as numpy's argmax: the first index of the maximum
    np.testing.assert_array_equal(xp.to_numpy(idx), [1, 0, 3])
    np.testing.assert_array_equal(xp.to_numpy(best), np.float32([0.7, 0.5, 0.9]))


def test_slate_oracle_best_matches_full():
    infos = {}
    for oracle in ("full", "best", "chosen"):
        env = gym.make_vec(BANDIT_ID, num_envs=100, vectorization_mode="vector_entry_point", n_items=30,
                           slate_size=3, scm="position_bias", dtype="float64", oracle=oracle)
        env.reset(seed=1)
        *_, infos[oracle] = env.step(np.tile([0, 1, 2], (100, 1)))
    np.testing.assert_array_equal(infos["full"]["optimal_slate"], infos["best"]["optimal_slate"])
    close(infos["full"]["optimal_slate_reward"], infos["best"]["optimal_slate_reward"], F64)
    close(infos["full"]["slate_expected_reward"], infos["chosen"]["slate_expected_reward"], F64)
    assert "optimal_slate" not in infos["chosen"]


def test_million_item_catalog_fits_with_the_chosen_oracle():
    env = gym.make_vec(BANDIT_ID, num_envs=64, vectorization_mode="vector_entry_point", n_items=1_000_000,
                       oracle="chosen")
    world = env.unwrapped.world
    assert len(world.catalog.texts) == 1_000_000 and isinstance(world.catalog.texts[999_999], str)
    env.reset(seed=0)
    a = np.arange(64) * 15_000
    *_, info = env.step(a)
    users = world.sample_users(8, np.random.default_rng(0))
    exact = world.expected_reward_at(users, a[:8])
    assert info["chosen_expected_reward"].shape == (64,) and exact.shape == (8,)


def test_bad_backend_device_and_oracle_are_one_line_errors():
    with pytest.raises(SCMConfigError, match="env.backend: expected 'numpy' or 'torch', got 'jax'"):
        gym.make_vec(BANDIT_ID, num_envs=2, vectorization_mode="vector_entry_point", backend="jax")
    with pytest.raises(SCMConfigError, match="env.oracle: expected one of full, chosen, best, got 'all'"):
        gym.make_vec(BANDIT_ID, num_envs=2, vectorization_mode="vector_entry_point", oracle="all")
    with pytest.raises(SCMConfigError, match="env.device: the numpy backend computes on the CPU"):
        gym.make_vec(BANDIT_ID, num_envs=2, vectorization_mode="vector_entry_point", device="cuda")
    if not torch.cuda.is_available():
        with pytest.raises(SCMConfigError, match="env.device: 'cuda' was asked for, but torch .* sees no CUDA device"):
            gym.make_vec(BANDIT_ID, num_envs=2, vectorization_mode="vector_entry_point", backend="torch", device="cuda")
    assert get_backend("torch", "auto").device.type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_world_equals_numpy_and_envs_stay_on_the_device():
    for name in WORLDS:
        wn = World(config(name), n_items=40, seed=3, dtype="float64")
        wc = World(config(name), n_items=40, seed=3, dtype="float64", backend="torch", device="cuda")
        users = wn.sample_users(500, np.random.default_rng(7))
        uc = wc.adopt(users)
        close(wn.expected_reward(users), wc.expected_reward(uc), F64)
        a = np.random.default_rng(1).integers(0, 40, 500)
        close(wn.respond(users, a).reward, wc.respond(uc, torch.as_tensor(a, device="cuda")).reward, F64)
    env = gym.make_vec(BANDIT_ID, num_envs=4096, vectorization_mode="vector_entry_point", backend="torch", device="cuda")
    obs, _ = env.reset(seed=0)
    obs, r, term, trunc, info = env.step(torch.zeros(4096, dtype=torch.int64, device="cuda"))
    assert obs.is_cuda and r.is_cuda and term.is_cuda and info["expected_reward"].is_cuda
    g1, g2 = torch.Generator("cuda").manual_seed(0), torch.Generator("cuda").manual_seed(0)
    assert torch.equal(wc.sample_users(64, g1).values[wc.user_nodes[0]], wc.sample_users(64, g2).values[wc.user_nodes[0]])
