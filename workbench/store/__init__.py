"""The step-activation store: safetensors shards per key, a Parquet index of steps, and a manifest.

Independent of how activations were made (capture writes into it through :class:`StoreWriter`);
:func:`open_store` reads it back memory-mapped. Layout and atomicity: :mod:`workbench.store.format`.
"""

from workbench.store.reader import StepStore, open_store
from workbench.store.writer import REQUIRED_COLUMNS, KeySpec, ShardInfo, StoreMismatchError, StoreWriter

__all__ = ["StepStore", "open_store", "StoreWriter", "KeySpec", "ShardInfo", "StoreMismatchError", "REQUIRED_COLUMNS"]
