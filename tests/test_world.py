"""The SCM engine: exact expectations, interventions, counterfactuals, validation."""

import copy

import numpy as np
import pytest

from recsim_causal import World
from recsim_causal.scm import SCMConfigError, load_scm_config
from recsim_causal.scm.mechanisms import Mechanism, USER


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


@pytest.fixture(scope="module")
def world():
    return World("default", n_items=50, seed=3)


def test_expected_reward_matches_hand_written_formula(world):
    """The factored engine and a direct numpy transcription of conf/scm/default.yaml agree."""
    u = world.sample_users(500, np.random.default_rng(0))
    v, it = u.values, world.item_values
    logit = (
        -2.0
        + 1.5 * v["taste"] @ it["style"].T
        - 1.0 * v["fatigue"] @ it["topic"].T
        - 0.8 * v["price_sensitivity"] * it["price"].T
        + 0.4 * it["quality"].T
        + 0.5 * it["popularity"].T
        - 0.4 * v["age"] * it["popularity"].T
        + v["activity"]
        + v["segment"] @ np.array([[0.2, 0.0, -0.2, 0.3, -0.1]]).T
    )
    np.testing.assert_allclose(world.expected_reward(u), sigmoid(logit), rtol=1e-12, atol=1e-14)
    # noisy taste view: taste + 0.5 * kept noise
    np.testing.assert_allclose(v["taste_signal"], v["taste"] + 0.5 * u.noise["taste_signal"])


def test_purchase_reward_is_gated_by_click():
    cfg = load_scm_config("default")
    cfg["reward"] = "purchase"
    w = World(cfg, n_items=20, seed=0)
    u = w.sample_users(300, np.random.default_rng(1))
    cond = w.conditional_means(u)
    np.testing.assert_allclose(w.expected_reward(u), cond["click"] * cond["purchase"])
    out = w.respond(u, np.zeros(300, dtype=int))
    assert np.all(out.responses["purchase"] <= out.responses["click"])


def test_float32_world_agrees_with_float64():
    w64 = World("default", n_items=30, seed=1)
    w32 = World("default", n_items=30, seed=1, dtype="float32")
    u = w64.sample_users(200, np.random.default_rng(5))
    a = w64.expected_reward(u)
    u.values = {k: v.astype(np.float32) for k, v in u.values.items()}
    b = w32.expected_reward(u)
    assert b.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=5e-4)


def test_random_policy_click_rate_within_3_se_of_exact_value():
    """200k users, uniformly random items: the empirical click rate vs the exact V(random)."""
    w = World("default", n_items=100, seed=0)
    rng = np.random.default_rng(42)
    n = 200_000
    u = w.sample_users(n, rng)
    actions = rng.integers(0, w.n_items, n)
    clicks = w.respond(u, actions).reward
    exact = w.expected_reward(u).mean()  # V(random) = E_x mean_a q(x, a)
    se = clicks.std(ddof=1) / np.sqrt(n)
    assert abs(clicks.mean() - exact) < 3 * se


def test_forcing_an_action_gives_that_actions_expected_reward():
    w = World("default", n_items=40, seed=2)
    forced = w.do(action=7)
    rng = np.random.default_rng(0)
    u = forced.sample_users(100_000, rng)
    r = forced.respond(u, rng.integers(0, 40, u.n)).reward  # the policy's choice is overridden
    q7 = forced.expected_reward(u)[:, 7]
    assert abs(r.mean() - q7.mean()) < 3 * r.std() / np.sqrt(u.n)
    # same users, the unforced world with action 7 everywhere: the very same outcomes
    np.testing.assert_array_equal(w.respond(u, np.full(u.n, 7)).reward, r)


def test_do_fixes_a_variable(world):
    rng = np.random.default_rng(0)
    all_click = world.do(click=1.0)
    u = all_click.sample_users(1000, rng)
    assert np.all(all_click.respond(u, rng.integers(0, 50, 1000)).reward == 1)
    assert np.all(all_click.expected_reward(u) == 1)
    # price sensitivity fixed to 0 removes the price term, exactly as the SCM says
    no_price = world.do(price_sensitivity=0.0)
    u = no_price.sample_users(200, np.random.default_rng(1))
    q = no_price.expected_reward(u)
    u.values["price_sensitivity"][:] = 2.0
    assert not np.allclose(world.expected_reward(u), q)
    np.testing.assert_allclose(world.do(price_sensitivity=2.0).expected_reward(u), world.expected_reward(u))
    # the original world is unchanged and the catalog is shared
    assert world.forced_action is None and no_price.catalog is world.catalog


def test_do_replaces_a_mechanism(world):
    flat = world.do(mechanisms={"affinity": {"type": "constant", "level": "user_item", "value": 0.0}})
    u = flat.sample_users(100, np.random.default_rng(0))
    q_flat = flat.expected_reward(u)
    u.values["taste"] = -u.values["taste"]
    np.testing.assert_allclose(flat.expected_reward(u), q_flat)  # taste no longer matters
    assert not np.allclose(world.expected_reward(u), q_flat)


def test_counterfactual_same_noise_same_action_same_outcome(world):
    rng = np.random.default_rng(9)
    u = world.sample_users(5000, rng)
    a = rng.integers(0, 50, 5000)
    first = world.respond(u, a)
    np.testing.assert_array_equal(world.counterfactual(u, a).reward, first.reward)
    # monotone coupling: under the same uniform, a likelier item clicks whenever the other did
    b = rng.integers(0, 50, 5000)
    q = world.expected_reward(u)
    other = world.counterfactual(u, b).reward
    likelier = q[np.arange(5000), b] >= q[np.arange(5000), a]
    assert np.all(other[likelier] >= first.reward[likelier])


def test_same_generator_same_users(world):
    a = world.sample_users(10, np.random.default_rng(4))
    b = world.sample_users(10, np.random.default_rng(4))
    for k in a.values:
        np.testing.assert_array_equal(a.values[k], b.values[k])


@pytest.mark.parametrize("model", ["pbm", "cascade"])
def test_slate_click_models_match_their_exact_expectation(model):
    cfg = load_scm_config("position_bias")
    cfg["slate"]["model"] = model
    w = World(cfg, n_items=30, seed=0, slate_size=4)
    rng = np.random.default_rng(0)
    n = 100_000
    u = w.sample_users(n, rng)
    slates = np.argsort(rng.random((n, 30)), axis=1)[:, :4]
    clicks = w.respond(u, slates).responses["click"]
    exact = w.expected_slate_reward(u, slates)
    se = clicks.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(clicks.mean(axis=0) - exact.mean(axis=0)) < 3 * se + 1e-12)
    if model == "cascade":
        assert np.all(clicks.sum(axis=1) <= 1)  # the user stops at the first click
    else:
        assert clicks[:, 3].mean() < clicks[:, 0].mean()  # examination falls with position


def test_confounded_world_flags_itself():
    w = World("confounded", n_items=20)
    assert w.is_confounded and w.confounders == ["intent"]
    u = w.sample_users(4, np.random.default_rng(0))
    assert w.observe(u, privileged=True).shape[1] == w.obs_dim + 1
    assert not World("default", n_items=20).is_confounded


class Doubling(Mechanism):
    """A user's own mechanism: twice its parent."""

    def __init__(self, name, spec, where, rng):
        super().__init__(name, spec, where, rng)
        self.parents = self._parent_list(spec, exact=1)

    def resolve(self, graph):
        self.level, self.dim = USER, graph[self.parents[0]].dim

    def compute(self, parents, noise, n, n_items, dtype):
        return 2 * parents[self.parents[0]]


def test_custom_mechanism_through_target():
    cfg = load_scm_config("default")
    cfg["nodes"]["double_activity"] = {"_target_": "tests.test_world.Doubling", "parents": ["activity"]}
    cfg["observed"].append("double_activity")
    w = World(cfg, n_items=10)
    u = w.sample_users(5, np.random.default_rng(0))
    np.testing.assert_allclose(u.values["double_activity"], 2 * u.values["activity"])
    assert w.obs_dim == 17


def _broken(edit):
    cfg = copy.deepcopy(load_scm_config("default"))
    edit(cfg)
    return cfg


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["nodes"]["click"]["parents"].update(afinity=1.0),
         "scm.nodes.click.parents: unknown node 'afinity' (known: activity, affinity, age,"),
        (lambda c: c["nodes"].update(taste={"type": "linear", "parents": {"taste_signal": 1.0}, "dim": 8}),
         "scm.nodes: cycle taste -> taste_signal -> taste"),
        (lambda c: c["nodes"]["click"].update(biass=3.0),
         "scm.nodes.click.biass: unknown key (did you mean 'bias'? known: bias, gate, parents, type)"),
        (lambda c: c["nodes"]["price_sensitivity"].update(sigm=5),
         "scm.nodes.price_sensitivity.sigm: unknown key (did you mean 'sigma'? known: dim, level, mean, parents, sigma, type)"),
        (lambda c: c.update(observd=[]),
         "scm.observd: unknown key (did you mean 'observed'? known: catalog, confounding_strength, description, dynamics, name, nodes, observed,"),
        (lambda c: c["nodes"]["affinity"].update(parents=["taste", "price"]),
         "scm.nodes.affinity.parents: shape mismatch, taste has dim 8 and price has dim 1"),
        (lambda c: c["nodes"]["taste"].update(scale=-1.0),
         "scm.nodes.taste.scale: expected a number > 0, got -1.0"),
        (lambda c: c["nodes"]["segment"].update(probs=[1.2, -0.2]),
         "scm.nodes.segment.probs: every probability must be in [0, 1], got [1.2, -0.2]"),
        (lambda c: c["nodes"]["segment"].update(probs=[0.5, 0.2]),
         "scm.nodes.segment.probs: must sum to 1, got 0.7"),
        (lambda c: c["observed"].append("mood"),
         "scm.observed: unknown node 'mood' (user nodes: taste,"),
        (lambda c: c["observed"].append("price"),
         "scm.observed: 'price' is a item node; only user nodes can be observed"),
        (lambda c: c["nodes"]["click"].update(type="logit"),
         "scm.nodes.click.type: unknown mechanism 'logit' (known: action_dot, action_set, bernoulli,"),
        (lambda c: c.update(reward="clicks"),
         "scm.reward: 'clicks' is not a response node (responses: click, purchase)"),
        (lambda c: c["nodes"]["price_sensitivity"].update(sigma=0),
         "scm.nodes.price_sensitivity.sigma: expected a number > 0, got 0"),
        (lambda c: c["nodes"]["style"].update(field="colour"),
         "scm.nodes.style.field: unknown catalog field 'colour' (known: popularity, price, quality, topic_onehot, topic_vec)"),
    ],
)
def test_invalid_configs_give_one_line_errors(edit, message):
    with pytest.raises(SCMConfigError) as e:
        World(_broken(edit), n_items=10)
    assert str(e.value).startswith(message), str(e.value)
    assert "\n" not in str(e.value)


def test_invalid_world_arguments():
    with pytest.raises(SCMConfigError, match=r"^scm: unknown preset 'defualt' \(known: [a-z_, ]*\bdefault\b"):
        World("defualt")
    with pytest.raises(SCMConfigError, match=r"^env.slate_size: expected an integer in \[1, n_items=5\], got 6"):
        World("position_bias", n_items=5, slate_size=6)
    with pytest.raises(SCMConfigError, match=r"^do: unknown node 'clik'"):
        World("default", n_items=5).do(clik=1)
    with pytest.raises(SCMConfigError, match=r"^scm.nodes.click.value: a response fixed by do\(\) takes a probability"):
        World("default", n_items=5).do(click=2.0)


def test_mlp_node_and_dwell_time_response():
    """A fixed random MLP feature and a lognormal dwell time gated by click: E[dwell] is
    P(click) * exp(mu + sigma^2 / 2), checked against 200k draws."""
    cfg = load_scm_config("default")
    cfg["nodes"]["mood"] = {"type": "mlp", "parents": ["taste", "activity"], "hidden": [8], "dim": 1}
    cfg["nodes"]["click"]["parents"]["mood"] = 0.5
    cfg["nodes"]["dwell"] = {"type": "lognormal_response", "gate": "click", "sigma": 0.4, "bias": 1.0,
                             "parents": {"quality": 0.3, "mood": 0.2}}
    cfg["reward"] = "dwell"
    w = World(cfg, n_items=10, seed=0)
    again = World(cfg, n_items=10, seed=0)
    u = w.sample_users(200_000, np.random.default_rng(0))
    np.testing.assert_array_equal(u.values["mood"],  # fixed weights: same world seed, same MLP
                                  again.sample_users(200_000, np.random.default_rng(0)).values["mood"])
    cond = w.conditional_means(u)
    mu = 1.0 + 0.3 * w.item_values["quality"].T + 0.2 * u.values["mood"]
    np.testing.assert_allclose(cond["dwell"], np.exp(mu + 0.5 * 0.4**2))
    np.testing.assert_allclose(w.expected_reward(u), cond["click"] * cond["dwell"])
    a = np.random.default_rng(1).integers(0, 10, u.n)
    r = w.respond(u, a).reward
    exact = w.expected_reward(u)[np.arange(u.n), a]
    assert abs(r.mean() - exact.mean()) < 3 * r.std() / np.sqrt(u.n)


def test_categorical_frequencies():
    u = World("default", n_items=5).sample_users(100_000, np.random.default_rng(0))
    freq = u.values["segment"].mean(axis=0)
    p = np.array([0.3, 0.25, 0.2, 0.15, 0.1])
    assert np.all(np.abs(freq - p) < 3 * np.sqrt(p * (1 - p) / 100_000))
    assert np.all(u.values["segment"].sum(axis=1) == 1)


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(preset=st.sampled_from(["default", "confounded", "position_bias"]), n_items=st.integers(2, 40),
       world_seed=st.integers(0, 2**16), n=st.integers(1, 64), dtype=st.sampled_from(["float32", "float64"]))
def test_any_world_gives_valid_probabilities_and_deterministic_outcomes(preset, n_items, world_seed, n, dtype):
    w = World(preset, n_items=n_items, seed=world_seed, dtype=dtype)
    u = w.sample_users(n, np.random.default_rng(world_seed))
    q = w.expected_reward(u)
    assert q.shape == (n, n_items) and np.all((q >= 0) & (q <= 1))
    low, high = w.observation_bounds()
    x = w.observe(u)
    assert np.all((x >= low) & (x <= high))
    a = np.random.default_rng(0).integers(0, n_items, n)
    np.testing.assert_array_equal(w.respond(u, a).reward, w.counterfactual(u, a).reward)
