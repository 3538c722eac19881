"""experiment=ops: every estimator's ranking of >= 10 candidates, scored against the exact truth."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from scipy import stats

from recsim_causal.experiment.runner import run_job
from recsim_causal.scm.world import CONF_DIR


def compose_ops(overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return compose(config_name="config", overrides=["experiment=ops", "wandb.mode=disabled", *overrides])


@pytest.fixture(scope="module")
def ops_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ops")
    cfg = compose_ops(["experiment.n_rounds=3000", "experiment.train_rounds=3000",
                       "experiment.use=[dm,ipw,dr,switch-dr-auto]"])
    return run_job(cfg, out), out


def test_ops_writes_strict_json_and_a_figure(ops_run):
    summary, out = ops_run
    data = json.loads((out / "ops.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    assert (out / "ops.png").stat().st_size > 10_000
    assert len(data["truth"]) >= 10
    assert set(data["estimators"]) == {"dm", "ipw", "dr", "switch-dr-auto"}
    assert set(data["estimators"]["switch-dr-auto"]["lambda"]) == set(data["truth"])  # the chosen lambda per candidate


def test_ops_metrics_agree_with_scipy_and_the_exact_values(ops_run):
    summary, _ = ops_run
    names = list(summary["truth"])
    tv = np.array([summary["truth"][n] for n in names])
    for e, res in summary["estimators"].items():
        ev = np.array([res["estimates"][n] for n in names])
        m = res["metrics"]
        assert m["spearman"] == pytest.approx(stats.spearmanr(ev, tv).statistic, abs=1e-12)
        assert m["kendall"] == pytest.approx(stats.kendalltau(ev, tv).statistic, abs=1e-12)
        picked = names[int(np.argmax(ev))]
        assert res["selected"] == picked
        assert m["regret@1"] == pytest.approx(tv.max() - summary["truth"][picked], abs=1e-15)
        assert all(math.isfinite(v) for k, v in m.items() if v is not None)


def test_ops_needs_named_candidates(tmp_path):
    with pytest.raises(ValueError, match="experiment.candidates.bad: expected a mapping with 'agent'"):
        run_job(compose_ops(["+experiment.candidates.bad=3"]), tmp_path)
