"""Off-policy evaluation: estimators (OBP 0.5.7 semantics), confidence intervals, reward
models, and the exact ground truth they are checked against."""

from .estimators import (
    DM,
    DR,
    IPS,
    IPW,
    MIPS,
    SGDR,
    SNMIPS,
    SGIPW,
    SNDR,
    SNIPS,
    SNIPW,
    BaseOffPolicyEstimator,
    DirectMethod,
    DoublyRobust,
    DoublyRobustWithShrinkage,
    DRos,
    InverseProbabilityWeighting,
    MarginalizedInverseProbabilityWeighting,
    SelfNormalizedDoublyRobust,
    SelfNormalizedInverseProbabilityWeighting,
    SelfNormalizedMarginalizedInverseProbabilityWeighting,
    SubGaussianDoublyRobust,
    SubGaussianInverseProbabilityWeighting,
    SubGaussianIPS,
    SwitchDoublyRobust,
    SwitchDR,
    estimate_all,
    estimate_all_intervals,
    estimate_all_light,
    p_e_a_from_clusters,
    slope,
    tuned_lambdas,
)
from .inputs import LightInputs, RoundTerms, SupportViolationWarning, reduce_dense
from .intervals import bootstrap_estimates, estimate_interval_from_terms
from .reward_models import RegressionModel, fit_predict
from .truth import ope_table, policy_value

__all__ = [
    "BaseOffPolicyEstimator",
    "DirectMethod",
    "InverseProbabilityWeighting",
    "SelfNormalizedInverseProbabilityWeighting",
    "DoublyRobust",
    "SelfNormalizedDoublyRobust",
    "SwitchDoublyRobust",
    "DoublyRobustWithShrinkage",
    "SubGaussianInverseProbabilityWeighting",
    "SubGaussianDoublyRobust",
    "MarginalizedInverseProbabilityWeighting",
    "DM",
    "IPS",
    "IPW",
    "SNIPS",
    "SNIPW",
    "DR",
    "SNDR",
    "SwitchDR",
    "DRos",
    "SubGaussianIPS",
    "SGIPW",
    "SGDR",
    "MIPS",
    "SelfNormalizedMarginalizedInverseProbabilityWeighting",
    "SNMIPS",
    "estimate_all",
    "estimate_all_light",
    "estimate_all_intervals",
    "p_e_a_from_clusters",
    "slope",
    "tuned_lambdas",
    "LightInputs",
    "RoundTerms",
    "SupportViolationWarning",
    "reduce_dense",
    "bootstrap_estimates",
    "estimate_interval_from_terms",
    "RegressionModel",
    "fit_predict",
    "policy_value",
    "ope_table",
]

# Slates (OBP 0.5.7's slate estimators) and sessions (SCOPE-RL's sequential estimators)
from .sequential import (  # noqa: E402
    FQE,
    PDIS,
    SNPDIS,
    SNSeqDR,
    SNTIS,
    TIS,
    MDR,
    MIS,
    FittedQEvaluation,
    MarginalDoublyRobust,
    MarginalImportanceSampling,
    PerDecisionImportanceSampling,
    SelfNormalizedPDIS,
    SelfNormalizedSequentialDoublyRobust,
    SelfNormalizedTIS,
    SeqDM,
    SeqDR,
    SequentialDirectMethod,
    SequentialDoublyRobust,
    Trajectories,
    TrajectoryWiseImportanceSampling,
    estimate_all_sequential,
    refit_intervals,
)
from .slate import (  # noqa: E402
    SelfNormalizedSlateIndependentIPS,
    SelfNormalizedSlateRewardInteractionIPS,
    SelfNormalizedSlateStandardIPS,
    SlateCascadeDoublyRobust,
    SlateIndependentIPS,
    SlateRewardInteractionIPS,
    SlateStandardIPS,
    estimate_all_slate,
    slate_long_format,
)

from .session_models import FeatureFQE, StateMarginalWeights, session_state_features  # noqa: E402

from . import sequential as _sequential, slate as _slate  # noqa: E402

# their public names, as imported above (slate's SlateRows, an internal grouping, is not)
__all__ += [name for name in (*_slate.__all__, *_sequential.__all__) if name in globals()]

# The Python API: simulate a log in a World, evaluate targets on it
from .evaluate import OPERecord, OPEResult, evaluate  # noqa: E402
from .meta import OffPolicyEvaluation  # noqa: E402
from .simulate import SimulatedLog, simulate_log  # noqa: E402
from . import slate_log as _slate_log  # noqa: E402,F401  (registers the slate setting)
from . import session_log as _session_log  # noqa: E402,F401  (registers the session setting)

__all__ += ["simulate_log", "SimulatedLog", "evaluate", "OPEResult", "OPERecord", "OffPolicyEvaluation"]
__all__ += ["FeatureFQE", "StateMarginalWeights", "session_state_features"]

# Hidden confounding: bounds on V(pi) under the marginal sensitivity model
from .sensitivity import (  # noqa: E402
    SensitivityReport,
    breakdown_gamma,
    dr_sensitivity_bounds,
    gamma_star,
    sensitivity_analysis,
    sensitivity_bounds,
)

__all__ += ["sensitivity_analysis", "sensitivity_bounds", "dr_sensitivity_bounds", "breakdown_gamma", "gamma_star",
            "SensitivityReport"]
