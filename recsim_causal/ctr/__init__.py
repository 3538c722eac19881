"""Text-aware click models (the seed's BERT CTR model): train, evaluate by ROC AUC, serve as q-hat.

- :mod:`recsim_causal.ctr.model`: ``CTRModel`` (``logistic`` / ``mlp`` id baselines, the
  ``features`` reference, the two-tower ``bert`` model over MiniLM), save / load.
- :mod:`recsim_causal.ctr.metrics`: ROC AUC, log loss, ECE, reliability bins.
- :mod:`recsim_causal.ctr.qhat`: the cross-fitted text model as q-hat for DM / DR.
"""

from recsim_causal.ctr.metrics import (
    auc_standard_error,
    click_metrics,
    expected_calibration_error,
    log_loss,
    reliability_bins,
    roc_auc,
    roc_curve,
)
from recsim_causal.ctr.model import FINETUNE, MODELS, CTRConfig, CTRModel, catalog_item_features
from recsim_causal.ctr.qhat import fit_predict_ctr
from recsim_causal.ctr.split import cold_start_split

__all__ = [
    "CTRConfig", "CTRModel", "MODELS", "FINETUNE", "catalog_item_features", "fit_predict_ctr", "cold_start_split",
    "roc_auc", "auc_standard_error", "roc_curve", "log_loss", "expected_calibration_error",
    "reliability_bins", "click_metrics",
]
