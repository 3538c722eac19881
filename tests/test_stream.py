"""evaluate() on a Parquet file or directory: one streamed pass, the same numbers as in memory,
memory flat in the number of rows."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from recsim_causal.agents import RandomPolicy
from recsim_causal.data import save_parquet
from recsim_causal.ope import evaluate, p_e_a_from_clusters, simulate_log
from recsim_causal.ope.stream import PoissonBootstrap, StreamedTerms

BENCH = Path(__file__).resolve().parents[1] / "scripts" / "bench.py"


@pytest.fixture(scope="module")
def split_log(tmp_path_factory):
    """A simulated log written as a directory of three Parquet files, and the log itself."""
    log = simulate_log("default", "linucb", 9_000, epsilon=0.3, seed=2, train_rounds=1_000, n_items=8)
    folder = tmp_path_factory.mktemp("log")
    for i, part in enumerate(np.array_split(np.arange(9_000), 3)):
        save_parquet(log.feedback.subset(part), folder / f"part-{i}.parquet")
    return log, folder


def _q(x: np.ndarray) -> np.ndarray:
    """A fixed reward model (not fitted on the log): a squashed linear score per item."""
    w = np.linspace(-1, 1, x.shape[1] * 8).reshape(x.shape[1], 8)
    return 1 / (1 + np.exp(-(x @ w) / 4))


def test_streamed_estimates_and_analytic_intervals_equal_the_in_memory_ones(split_log):
    log, folder = split_log
    targets = {"uniform": RandomPolicy(n_actions=8), "soft": log.policy({"_target_": "recsim_causal.agents.Softmax",
                                                                        "tau": 0.3})}
    ests = ["ipw", "snipw", "dr", "sndr", "dm", "mipw", "snmipw"]
    methods = ["normal", "bernstein", "hoeffding"]
    # MIPS streamed: marginal weights row by row from the logged action_dist and the item clusters;
    # in memory: OBP's dense route (action_embed, p_e_a) on the SimulatedLog's catalog topics
    streamed = evaluate(folder, targets, ests, ci=methods, reward_model=_q, batch_rows=1_000,
                        p_e_a=p_e_a_from_clusters(log.world.catalog.topic))
    in_memory = evaluate(log, targets, ests, ci=methods, reward_model=_q(log.feedback.context))
    assert len(streamed.records) == len(in_memory.records) == 14
    for s, m in zip(streamed.records, in_memory.records):
        assert (s.target, s.estimator) == (m.target, m.estimator)
        assert s.estimate == pytest.approx(m.estimate, rel=1e-9, abs=1e-12)
        assert s.truth == pytest.approx(m.truth, rel=1e-12)
        for method in methods:
            si = streamed.targets[s.target]["estimators"][s.estimator]["intervals"][method]
            mi = in_memory.targets[m.target]["estimators"][m.estimator]["intervals"][method]
            assert si["ci_low"] == pytest.approx(mi["ci_low"], rel=1e-7, abs=1e-9), (s.target, s.estimator, method)
            assert si["ci_high"] == pytest.approx(mi["ci_high"], rel=1e-7, abs=1e-9), (s.target, s.estimator, method)
            assert si["interval_valid"] == mi["interval_valid"]
    sd, md = streamed.targets["soft"]["diagnostics"], in_memory.targets["soft"]["diagnostics"]
    for key in ("n_rounds", "ess", "max_weight", "low_support_share", "pscore_one_share"):
        assert sd[key] == pytest.approx(md[key], rel=1e-9)


def test_poisson_bootstrap_matches_the_delta_method_spread(split_log):
    """The Poisson-multiplier replicates' spread is the estimate's standard error (checked
    against the delta-method s.e. of the same sums), for a plain mean and for a ratio."""
    log, folder = split_log
    res = evaluate(folder, {"uniform": RandomPolicy(n_actions=8)}, ["ipw", "snipw"], ci=["bootstrap", "normal"],
                   n_bootstrap_samples=2_000, batch_rows=1_000, seed=3)
    for est in ("ipw", "snipw"):
        rec = res.targets["uniform"]["estimators"][est]
        boot, normal = rec["intervals"]["bootstrap"], rec["intervals"]["normal"]
        w_boot, w_norm = boot["ci_high"] - boot["ci_low"], normal["ci_high"] - normal["ci_low"]
        assert abs(w_boot / w_norm - 1) < 0.1  # 2,000 replicates: the width's s.e. is about 3%
        assert abs((boot["ci_high"] + boot["ci_low"]) / 2 - rec["estimate"]) < 0.1 * w_norm
        assert boot["covers"] and normal["covers"]


def test_streamed_terms_against_brute_force():
    rng = np.random.default_rng(0)
    from recsim_causal.ope.inputs import RoundTerms

    b, nu, d = rng.random(500), rng.random(500) * 3, rng.random(500) + 0.5
    st = StreamedTerms()
    for part in np.array_split(np.arange(500), 7):
        st.add(RoundTerms(base=b[part], num=nu[part], den=d[part]))
    R = nu.mean() / d.mean()
    psi = b + (nu - R * d) / d.mean() + R  # the delta-method terms, written out
    assert st.value() == pytest.approx(b.mean() + R, rel=1e-12)
    assert st.influence_var() == pytest.approx(psi.var(ddof=1), rel=1e-9)
    boot = PoissonBootstrap(3, 1, 0)
    boot.sums[:] = 0
    assert boot.replicates(0, (True, True, True)).shape == (3,)


def test_streaming_refuses_what_it_cannot_do(split_log, tmp_path):
    _, folder = split_log
    with pytest.raises(ValueError, match=r"^estimators: mipw need the items' embeddings"):
        evaluate(folder, {"u": RandomPolicy(n_actions=8)}, ["mipw"])
    with pytest.raises(ValueError, match=r"no \.parquet files"):
        evaluate(tmp_path, {"u": RandomPolicy(n_actions=8)}, ["ipw"])


def test_dr_fitted_on_the_first_rows_covers_the_truth(split_log):
    log, folder = split_log
    res = evaluate(folder, {"uniform": RandomPolicy(n_actions=8)}, ["dr", "ipw"], ci="normal", reward_model="logistic",
                   fit_rows=2_000, batch_rows=1_500)
    for r in res.records:
        half = (r.ci_high - r.ci_low) / 2
        assert abs(r.estimate - r.truth) <= 1.5 * half
    assert res.targets["uniform"]["diagnostics"]["n_rounds"] == 7_000  # the first 2,000 fitted the model


def _bench():
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_peak_memory_is_flat_in_the_number_of_rows(tmp_path):
    """Peak RSS of a streamed evaluation (IPS, SNIPS, DR; normal and bootstrap intervals) of a
    10x larger log stays within 1.3x (measured in fresh processes)."""
    bench = _bench()
    small, large = tmp_path / "small", tmp_path / "large"
    bench.write_stream_log(small, 60_000)
    bench.write_stream_log(large, 600_000)
    rss_small, _ = bench.stream_peak_rss(small)
    rss_large, _ = bench.stream_peak_rss(large)
    assert rss_large / rss_small <= 1.3, (rss_small, rss_large)
    assert math.isfinite(rss_small) and rss_small > 0


def test_reading_one_long_file_holds_one_row_group_at_a_time(tmp_path):
    """A long single-file log (the OPE experiment's logged.parquet, written row group by row
    group) is read in memory flat in its length: arrow's allocations after the last batch are
    those after the first (pyarrow's pre-buffering kept every row group read until the file closed)."""
    import pyarrow as pa

    from recsim_causal.data import LoggedFeedback, ParquetLogWriter
    from recsim_causal.data.parquet import iter_batches

    rng = np.random.default_rng(0)
    with ParquetLogWriter(tmp_path / "long.parquet") as writer:
        for _ in range(8):  # 8 row groups of 20,000 rows x 2 dense (rows, 50) columns: 16 MB each
            n, k = 20_000, 50
            pi = rng.dirichlet(np.ones(k), n)
            a = rng.integers(0, k, n)
            writer.write(LoggedFeedback(context=rng.normal(size=(n, 2)), action=a, reward=rng.random(n),
                                        pscore=pi[np.arange(n), a], action_dist=pi, expected_reward=rng.random((n, k)),
                                        n_actions=k))
    held = [pa.total_allocated_bytes() for _ in iter_batches(tmp_path / "long.parquet", batch_rows=20_000)]
    assert len(held) == 8 and max(held) < 1.5 * held[0], [h // 1_000_000 for h in held]


def test_a_log_marked_confounded_gets_no_valid_interval(split_log, tmp_path):
    """write_simulated_log records whether the world is confounded; a streamed pass over such a
    log calls no interval valid (as the in-memory path does on a confounded world)."""
    log, _ = split_log
    part = log.feedback.subset(slice(0, 3_000))
    part.metadata = {**part.metadata, "confounded": True}
    save_parquet(part, tmp_path / "confounded.parquet")
    res = evaluate(tmp_path / "confounded.parquet", {"uniform": RandomPolicy(n_actions=8)}, ["ipw", "snipw"], ci="normal")
    for rec in res.targets["uniform"]["estimators"].values():
        assert rec["interval_valid"] is False and rec["invalid_reason"].startswith("confounded log")
