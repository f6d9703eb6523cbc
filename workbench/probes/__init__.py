"""Probes: what a step's activations say about the step — linear and MLP probes, layer sweeps, metrics, voting.

- :mod:`~workbench.probes.metrics`: ROC/PR-AUC, calibration, ProcessBench F1 (scikit-learn where it has them);
- :mod:`~workbench.probes.data`: targets from index columns, problem-level splits, train-only standardisation;
- :mod:`~workbench.probes.linear`: logistic / ridge / softmax probes and the batched torch layer sweep;
- :mod:`~workbench.probes.mlp`: the SSAE-style 3-layer MLP probe;
- :mod:`~workbench.probes.tokens`: token-level multiple-instance probes (token scores → step max);
- :mod:`~workbench.probes.logits`: logit baselines (max / min token probability, entropy, perplexity);
- :mod:`~workbench.probes.voting`: step-scored traces, best-of-N and score-weighted majority voting.

Every scorer returns one score per step where higher means "more likely wrong".
"""

from workbench.probes.data import Target, assert_disjoint, derived_columns, grouped_folds, make_target
from workbench.probes.linear import LinearProbe, ProbeConfig, SweepResult, fit_linear, layer_sweep
from workbench.probes.logits import BASELINES, baseline_table, logit_baselines
from workbench.probes.metrics import (
    BinaryReport,
    MetricInputError,
    binary_report,
    pr_points,
    processbench_table,
    reliability_bins,
    roc_points,
)
from workbench.probes.mlp import MLPProbe, MLPProbeConfig, fit_mlp
from workbench.probes.tokens import TokenBags, TokenProbe, TokenProbeConfig, fit_token_probe, token_bags
from workbench.probes.voting import scored_steps, trace_table, voting_table

__all__ = [
    "Target",
    "make_target",
    "derived_columns",
    "grouped_folds",
    "assert_disjoint",
    "ProbeConfig",
    "LinearProbe",
    "SweepResult",
    "fit_linear",
    "layer_sweep",
    "MLPProbeConfig",
    "MLPProbe",
    "fit_mlp",
    "TokenProbeConfig",
    "TokenBags",
    "TokenProbe",
    "token_bags",
    "fit_token_probe",
    "BASELINES",
    "logit_baselines",
    "baseline_table",
    "BinaryReport",
    "MetricInputError",
    "binary_report",
    "reliability_bins",
    "roc_points",
    "pr_points",
    "processbench_table",
    "scored_steps",
    "trace_table",
    "voting_table",
]
