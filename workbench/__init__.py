"""Step Workbench: interpretability research on the reasoning steps of language models.

Layers, data flowing one way: toy → models → traces → labels → store → capture → {sae, probes, heads,
attribution} → steering → viz → demo → cli. A lower layer never imports a higher one: the import-linter
contract in ``pyproject.toml`` checks it (``lint-imports``, run by ``scripts/dev.sh test``).
"""

__version__ = "0.1.0"
