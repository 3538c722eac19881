"""Click models that read item texts: metrics against scikit-learn, the text tower against the
encoder's own forward pass, the experiment's outputs, the SCM's ceiling, a world where items do
not matter, cold-start hygiene, save / load and seeded training."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import BertConfig

from recsim_causal import World
from recsim_causal.ctr import (
    CTRConfig,
    CTRModel,
    auc_standard_error,
    catalog_item_features,
    cold_start_split,
    expected_calibration_error,
    fit_predict_ctr,
    log_loss,
    roc_auc,
    roc_curve,
)
from recsim_causal.embeddings import encode_texts, load_encoder
from recsim_causal.experiment.ctr import log_clicks, run_ctr
from recsim_causal.scm import load_scm_config

sklearn_metrics = pytest.importorskip("sklearn.metrics")
ROOT = Path(__file__).resolve().parents[1]
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=64)


def tiny_bert(**kw):
    """CTR settings with a 2-layer, 32-unit random BERT (the MiniLM tokenizer): the real code path, fast."""
    return dict(model="bert", encoder={"bert_config": TINY}, progress=False, threads=1,
                **{"probe_epochs": 2, "n_epochs": 1, "batch_size": 256, **kw})


def logged(scm="default", n_items=20, n_rounds=3000, seed=0, epsilon=0.5):
    world = World(scm, n_items=n_items, seed=0)
    exp = {"logger": {"agent": "linucb", "epsilon": epsilon}, "train_rounds": 500, "n_rounds": n_rounds}
    return world, log_clicks(world, exp, seed)


# ----------------------------------------------------------------------------- metrics
def test_auc_log_loss_and_roc_curve_match_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500).astype(float)
    score = np.round(rng.random(500) + 0.3 * y, 1)  # rounded: many ties
    assert roc_auc(y, score) == pytest.approx(sklearn_metrics.roc_auc_score(y, score), abs=1e-12)
    p = np.clip(score / score.max(), 0.01, 0.99)
    assert log_loss(y, p) == pytest.approx(sklearn_metrics.log_loss(y, p), abs=1e-10)
    fpr, tpr = roc_curve(y, score)
    ref_fpr, ref_tpr, _ = sklearn_metrics.roc_curve(y, score, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    assert np.isnan(roc_auc(np.ones(5), np.arange(5)))


def test_ece_on_a_hand_example():
    """Bins [0, .1) ... [.9, 1]: two rows at .05 (one click), two at .95 (two clicks).
    ECE = 0.5 * |0.5 - 0.05| + 0.5 * |1 - 0.95| = 0.25."""
    assert expected_calibration_error([1, 0, 1, 1], [0.05, 0.05, 0.95, 0.95]) == pytest.approx(0.25)
    assert expected_calibration_error([1, 0], [0.5, 0.5]) == pytest.approx(0.0)
    assert expected_calibration_error([1], [1.0]) == pytest.approx(0.0)  # p = 1 falls in the last bin


def test_auc_standard_error_matches_the_spread_over_replications():
    """Hanley-McNeil's s.e. against the s.d. of 400 AUCs of independent binormal samples (within 15%)."""
    rng = np.random.default_rng(1)
    n1, n0 = 200, 300
    aucs = [roc_auc(np.r_[np.ones(n1), np.zeros(n0)], np.r_[rng.normal(1, 1, n1), rng.normal(0, 1, n0)])
            for _ in range(400)]
    se = auc_standard_error(float(np.mean(aucs)), n1, n0)
    assert np.std(aucs, ddof=1) == pytest.approx(se, rel=0.15)


# ----------------------------------------------------------------------------- the text tower
@pytest.mark.parametrize("finetune,layers", [("frozen", 1), ("last_layers", 1), ("last_layers", 2), ("full", 1)])
def test_text_tower_equals_the_encoders_own_forward_pass(finetune, layers):
    """Cached lower layers + the top layers on a subset of items = encode_texts (mean pooling,
    unit norm) of those texts, whatever the split point."""
    texts = World("default", n_items=12, seed=0).catalog.texts
    model = CTRModel(tiny_bert(finetune=finetune, trainable_layers=layers), 12, 3, item_texts=texts)
    model.text.eval()
    items = torch.tensor([0, 5, 11, 3])
    with torch.no_grad():
        got = model.text.embed(items).numpy()
    ref = encode_texts([texts[i] for i in items], BertConfig(**TINY), use_cache=False, device="cpu")
    np.testing.assert_allclose(got, ref, atol=1e-5)
    trainable = {n.split(".")[2] for n, p in model.text.encoder.named_parameters()
                 if p.requires_grad and n.startswith("encoder.layer")}
    assert trainable == {"frozen": set(), "last_layers": {str(2 - k) for k in range(1, layers + 1)},
                         "full": {"0", "1"}}[finetune]


def test_logistic_baseline_is_the_penalized_optimum_of_scikit_learn():
    """logit = b + x.w + b_a + x.w_a with alpha/2 ||coef||^2 = LogisticRegression(C=1/alpha) on
    [x, onehot(a), x * onehot(a)] (x standardized as the model does)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    n, d, K = 3000, 3, 5
    x = rng.normal(size=(n, d))
    a = rng.integers(K, size=n)
    theta = rng.normal(size=(K, d))
    y = (rng.random(n) < 1 / (1 + np.exp(-(x * theta[a]).sum(1)))).astype(float)
    model = CTRModel(dict(model="logistic", alpha=2.0), K, d).fit(x, a, y)
    z = (x - x.mean(0)) / x.std(0)
    onehot = np.eye(K)[a]
    design = np.c_[z, onehot, (z[:, :, None] * onehot[:, None, :]).reshape(n, -1)]
    ref = LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000).fit(design, y)
    np.testing.assert_allclose(model.predict(x, a), ref.predict_proba(design)[:, 1], atol=2e-4)


# ----------------------------------------------------------------------------- the experiment
@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ctr")
    cfg = {
        "seed": 0,
        "env": {"id": "RecSimCausal/Bandit-v0", "n_items": 30, "slate_size": 1},
        "scm": load_scm_config("default"),
        "experiment": {
            "name": "ctr", "n_rounds": 6000, "train_rounds": 1000, "logger": {"agent": "linucb", "epsilon": 0.5},
            "test_fraction": 0.25, "cold_fraction": 0.2, "models": ["logistic", "mlp", "features", "bert"],
            "device": "cpu", "threads": 1, "ece_bins": 10,
            "settings": {"mlp": {"n_epochs": 3, "progress": False}, "features": {"n_epochs": 5, "progress": False},
                         "bert": {k: v for k, v in tiny_bert(n_epochs=1).items() if k not in ("model", "threads")}},
        },
    }
    summary = run_ctr(cfg, out, resolved=cfg)
    return out, summary


def test_reported_auc_equals_scikit_learn_on_the_saved_predictions(small_run):
    out, summary = small_run
    saved = json.loads((out / "ctr.json").read_text())
    frame = pd.read_parquet(out / "ctr_predictions.parquet")
    assert (out / "ctr.png").stat().st_size > 10_000
    for test_set in ("warm", "cold"):
        rows = frame[frame.test_set == test_set]
        assert len(rows) == saved["rows"][test_set] > 200
        for model in ("logistic", "mlp", "features", "bert"):
            r = saved["results"][test_set]["models"][model]
            assert r["auc"] == pytest.approx(sklearn_metrics.roc_auc_score(rows.label, rows[f"pred_{model}"]), abs=1e-12)
            assert r["log_loss"] == pytest.approx(sklearn_metrics.log_loss(rows.label, rows[f"pred_{model}"]), abs=1e-9)
        ceiling = saved["results"][test_set]["ceiling"]["auc"]
        assert ceiling == pytest.approx(sklearn_metrics.roc_auc_score(rows.label, rows.true_prob), abs=1e-12)
    assert "target cold_bert_minus_logistic" in summary["table"]


def test_true_probability_auc_is_the_ceiling(small_run):
    """No model beats the SCM's own click probability by more than 3 standard errors."""
    _, summary = small_run
    for test_set, r in summary["results"].items():
        c = r["ceiling"]
        for model, m in r["models"].items():
            assert m["auc"] <= c["auc"] + 3 * np.hypot(m["auc_se"], c["auc_se"]), (test_set, model)
    # and the ceiling is far from trivial: the item matters in this world
    assert summary["results"]["cold"]["ceiling"]["auc"] > 0.75


def test_cold_start_items_are_absent_from_training_rows(small_run):
    out, summary = small_run
    cold = set(summary["cold_items"].tolist())
    assert len(cold) == 6
    for model in ("logistic", "mlp", "features", "bert"):
        seen = set(summary["training"][model]["train_items"])
        assert seen and not seen & cold
        assert len(seen) == 30 - 6  # every warm item was shown (epsilon-uniform logging)
    frame = pd.read_parquet(out / "ctr_predictions.parquet")
    assert set(frame[frame.test_set == "cold"].action) <= cold
    assert not set(frame[frame.test_set == "warm"].action) & cold
    assert sum(summary["rows"].values()) == summary["n_rounds"]


def test_cold_start_split_partitions_rounds():
    rng = np.random.default_rng(0)
    action = rng.integers(10, size=1000)
    split = cold_start_split(action, 10, test_fraction=0.3, cold_fraction=0.2, rng=rng)
    assert len(split["cold_items"]) == 2
    assert not np.isin(action[split["train"]], split["cold_items"]).any()
    assert np.isin(action[split["cold"]], split["cold_items"]).all()
    assert split["train"].max() < split["warm"].min() and split["warm"].min() >= 700
    assert np.array_equal(np.sort(np.r_[split["train"], split["warm"], split["cold"]]), np.arange(1000))
    with pytest.raises(ValueError, match="experiment.test_fraction: expected a number in"):
        cold_start_split(action, 10, test_fraction=1.5, cold_fraction=0.2, rng=rng)


def _item_auc(world, model, n=4000, seed=7):
    """AUC over items for one fixed user: the user is repeated n times with fresh click noise and
    a random item each time, so only the item can make a click likelier."""
    rng = np.random.default_rng(seed)
    users = world.sample_users(1, rng)
    users = users.take(np.zeros(n, dtype=np.int64))
    world.redraw_response_noise(users, rng)
    items = rng.integers(world.n_items, size=n)
    labels = world.respond(users, items).reward
    return roc_auc(labels, model.predict(world.observe(users), items)), labels


def _fixed_user_auc_and_se(scm):
    world, fb = logged(scm, n_rounds=4000)
    model = CTRModel(tiny_bert(finetune="frozen", n_epochs=4), world.n_items, fb.context.shape[1],
                     item_texts=world.catalog.texts).fit(fb.context, fb.action, fb.reward)
    auc, labels = _item_auc(world, model)
    n1 = int(labels.sum())
    return auc, np.sqrt((len(labels) + 1) / (12 * n1 * (len(labels) - n1)))  # the s.e. of an AUC of 0.5


def test_world_where_items_do_not_matter_gives_auc_one_half_on_items():
    """Clicks depend on the user only: the text model, trained on logs where the logger's item
    choice depends on the user, ranks items for a fixed user no better than chance."""
    scm = load_scm_config("default")
    scm["nodes"]["click"]["parents"] = {"activity": 2.0, "segment_bias": 1.0}
    auc, se = _fixed_user_auc_and_se(scm)
    assert abs(auc - 0.5) < 3 * se, (auc, se)
    # the same check in the default world, where items matter, is far from one half
    auc_default, se_default = _fixed_user_auc_and_se("default")
    assert auc_default > 0.5 + 5 * se_default, auc_default


# ----------------------------------------------------------------------------- save, load, seeds
@pytest.mark.parametrize("settings", [tiny_bert(finetune="last_layers"), tiny_bert(finetune="full", probe_epochs=0),
                                      dict(model="features", n_epochs=2, progress=False),
                                      dict(model="logistic"), dict(model="mlp", n_epochs=2, progress=False)],
                         ids=["bert-last_layers", "bert-full", "features", "logistic", "mlp"])
def test_save_load_round_trip_gives_identical_predictions(tmp_path, settings):
    world, fb = logged(n_rounds=1500)
    model = CTRModel(settings, world.n_items, fb.context.shape[1], item_texts=world.catalog.texts,
                     item_features=catalog_item_features(world.catalog)).fit(fb.context, fb.action, fb.reward)
    model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["ctr.json", "model.safetensors"]
    meta = json.loads((tmp_path / "m" / "ctr.json").read_text())
    assert meta["config"]["model"] == settings["model"] and meta["n_actions"] == world.n_items
    loaded = CTRModel.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(fb.context, fb.action), model.predict(fb.context, fb.action))
    np.testing.assert_array_equal(loaded.predict_all(fb.context[:50]), model.predict_all(fb.context[:50]))
    # predict_all is predict at every item
    np.testing.assert_allclose(model.predict_all(fb.context[:50])[np.arange(50), fb.action[:50]],
                               model.predict(fb.context[:50], fb.action[:50]), atol=1e-6)


def test_weights_load_without_pickle(tmp_path):
    from safetensors.torch import load_file

    world, fb = logged(n_rounds=500)
    CTRModel(dict(model="logistic"), world.n_items, fb.context.shape[1]).fit(fb.context, fb.action, fb.reward).save(tmp_path)
    weights = load_file(str(tmp_path / "model.safetensors"))
    assert set(weights) == {"net.w", "net.b", "net.item_bias", "net.item_w", "x_mean", "x_sd"}


def test_seeded_training_is_reproducible_on_cpu():
    world, fb = logged(n_rounds=1500)
    state = torch.random.get_rng_state()

    def fit(seed):
        m = CTRModel({**tiny_bert(finetune="last_layers"), "seed": seed}, world.n_items, fb.context.shape[1],
                     item_texts=world.catalog.texts)
        return m.fit(fb.context, fb.action, fb.reward).predict(fb.context, fb.action)

    a, b, c = fit(0), fit(0), fit(1)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3
    assert torch.equal(torch.random.get_rng_state(), state)  # the global torch RNG is untouched


# ----------------------------------------------------------------------------- q-hat, config, GPU script
def test_cross_fitted_q_hat_shape_and_fold_hygiene():
    """With 2 folds each round's q-hat comes from the model of the other fold: changing the
    labels of fold A leaves fold A's q-hat unchanged."""
    from recsim_causal.ope.reward_models import kfold_indices

    world, fb = logged(n_rounds=800)
    settings = dict(model="logistic")
    q = fit_predict_ctr(fb.context, fb.action, fb.reward, world.n_items, n_folds=2, random_state=3, config=settings)
    assert q.shape == (800, world.n_items, 1) and ((q > 0) & (q < 1)).all()
    train, test = next(kfold_indices(800, 2, 3))
    flipped = fb.reward.copy()
    flipped[test] = 1 - flipped[test]
    q2 = fit_predict_ctr(fb.context, fb.action, flipped, world.n_items, n_folds=2, random_state=3, config=settings)
    np.testing.assert_array_equal(q2[test], q[test])
    assert np.abs(q2[train] - q[train]).max() > 1e-3


def test_ope_with_the_bert_reward_model(tmp_path):
    from hydra import compose, initialize_config_dir

    from recsim_causal.experiment.runner import run_job

    bert = tiny_bert(finetune="frozen", n_epochs=20, batch_size=128)
    overrides = ["experiment=ope", "wandb.mode=disabled", "env.n_items=15", "experiment.n_rounds=1500",
                 "experiment.train_rounds=500", "experiment.truth_users=2000", "experiment.ci.n_bootstrap_samples=50",
                 "experiment.targets=[random,softmax]", "experiment.use=[dm,ipw,dr]", "experiment.reward_model=bert",
                 "+experiment.bert.encoder.bert_config.hidden_size=32",
                 *[f"+experiment.bert.encoder.bert_config.{k}={v}" for k, v in TINY.items() if k != "hidden_size"],
                 *[f"+experiment.bert.{k}={v}" for k, v in bert.items() if k not in ("model", "encoder")]]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    summary = run_job(cfg, tmp_path)
    assert summary["reward_model"] == "bert"
    for target in ("random", "softmax"):
        r = summary["targets"][target]
        assert abs(r["estimators"]["dm"]["estimate"] - r["truth"]) < 0.15  # a click model (tiny, random BERT), not noise
    assert abs(summary["targets"]["random"]["estimators"]["dr"]["error"]) < 0.05


@pytest.mark.parametrize("settings,message", [
    (dict(model="transformer"), "ctr.model: expected one of logistic, mlp, features, bert, got 'transformer'"),
    (dict(model="bert", finetune="some"), "ctr.finetune: expected one of full, last_layers, frozen, got 'some'"),
    (dict(model="bert", batch_sz=3), "ctr.batch_sz: unknown key (did you mean 'batch_size'? known: alpha,"),
    (dict(model="mlp", n_epochs=0), "ctr.n_epochs: expected an integer >= 1, got 0"),
    (dict(model="mlp", learning_rate=-1.0), "ctr: learning_rate must be >= 0, got -1.0"),
])
def test_bad_settings_are_one_line_errors(settings, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        CTRModel(settings, 5, 3, item_texts=["a"] * 5)


def test_experiment_config_errors_name_the_field(tmp_path):
    cfg = {"seed": 0, "env": {"id": "RecSimCausal/Bandit-v0", "n_items": 10}, "scm": "default",
           "experiment": {"name": "ctr", "n_rounds": 100, "train_rounds": 100, "logger": {"agent": "random"},
                          "models": ["bert"], "settings": {"bert": {"finetune": "half"}}}}
    with pytest.raises(ValueError, match="experiment.settings.bert: finetune: expected one of"):
        run_ctr(cfg, tmp_path, resolved=cfg)
    cfg["experiment"]["models"] = ["logistic", "gpt"]
    with pytest.raises(ValueError, match="experiment.models: unknown model 'gpt' "):
        run_ctr(cfg, tmp_path, resolved=cfg)


@pytest.mark.slow
def test_gpu_script_dry_run_on_cpu(tmp_path):
    """scripts/gpu_ctr.py's CPU dry run: the full fine-tune path at tiny sizes, rows/s and AUCs printed."""
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_ctr.py"), "--cpu-dry-run",
                          "--json", str(tmp_path / "ctr_gpu.json")],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads((tmp_path / "ctr_gpu.json").read_text())
    assert result["device"].startswith("cpu") and result["finetune"] == "full"
    assert result["rows_per_s"] > 0 and 0 <= result["auc"]["cold"] <= 1
    assert "rows/s" in out.stdout


def test_bert_q_hat_needs_a_simulated_world_and_valid_settings():
    from recsim_causal.build import reward_model_q_hat

    with pytest.raises(ValueError, match="experiment.reward_model: 'bert' reads the item texts of a simulated world"):
        reward_model_q_hat(None, {"reward_model": "bert", "n_folds": 2}, 0)
    world = World("default", n_items=5, seed=0)
    with pytest.raises(ValueError, match="experiment.bert: finetune: expected one of full, last_layers, frozen"):
        reward_model_q_hat(None, {"reward_model": "bert", "n_folds": 2, "bert": {"finetune": "all"}}, 0, world)


def test_ctr_through_the_hydra_app(tmp_path):
    """experiment=ctr composes from conf/, passes the runner's key checks and writes its files."""
    from hydra import compose, initialize_config_dir

    from recsim_causal.experiment.runner import run_job

    bert = {k: v for k, v in tiny_bert(n_epochs=1).items() if k not in ("model", "encoder", "threads")}
    overrides = ["experiment=ctr", "wandb.mode=disabled", "env.n_items=12", "experiment.n_rounds=1500",
                 "experiment.train_rounds=300", "experiment.models=[logistic,bert]", "~experiment.settings.mlp",
                 "~experiment.settings.features",
                 *[f"+experiment.settings.bert.encoder.bert_config.{k}={v}" for k, v in TINY.items()],
                 *[f"experiment.settings.bert.{k}={v}" for k, v in bert.items()
                   if k in ("probe_epochs", "n_epochs", "batch_size")],
                 "+experiment.settings.bert.progress=false"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    summary = run_job(cfg, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} >= {"ctr.json", "ctr_predictions.parquet", "ctr.png"}
    assert set(summary["results"]["cold"]["models"]) == {"logistic", "bert"}
    assert summary["training"]["bert"]["config"]["encoder"]["bert_config"]["hidden_size"] == 32
