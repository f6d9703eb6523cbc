"""Probes: what a step's activations say about the step — linear and MLP probes, layer sweeps, metrics, voting.

- :mod:`~workbench.probes.metrics`: ROC/PR-AUC, calibration, ProcessBench F1 (scikit-learn where it has them);
- :mod:`~workbench.probes.data`: targets from index columns, problem-level splits, train-only standardisation;
- :mod:`~workbench.probes.linear`: logistic / ridge / softmax probes and the batched torch layer sweep;
- :mod:`~workbench.probes.mlp`: the SSAE-style 3-layer MLP probe;
- :mod:`~workbench.probes.logits`: logit baselines (max / min token probability, entropy, perplexity);
- :mod:`~workbench.probes.voting`: step-scored traces, best-of-N and score-weighted majority voting.

Every scorer returns one score per step where higher means "more likely wrong".
"""
