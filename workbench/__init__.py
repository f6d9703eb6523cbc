"""Step Workbench: interpretability research on the reasoning steps of language models.

Layers, data flowing one way: toy/models → traces → capture → store → {sae, probes, heads} → steering →
analysis → viz. A lower layer never imports a higher one.
"""

__version__ = "0.1.0"
