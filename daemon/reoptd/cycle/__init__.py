"""The cycle: check -> backfill -> promotion watch -> decide -> optimize, for one model.

``ModelLoop`` orchestrates (loop.py); promotion modes, shadow and guard live in promotion.py,
the stored reference sample in reference.py, late labels in backfill.py, and the policies in
force (hot-reloaded, shared with the API) in watcher.py.
"""

from reoptd.cycle.loop import CycleOutcome, ModelLoop
from reoptd.cycle.promotion import Judgement, Promotion
from reoptd.cycle.reference import HOLDOUT, split_reference
from reoptd.cycle.watcher import PolicyWatcher

__all__ = [
    "HOLDOUT",
    "CycleOutcome",
    "Judgement",
    "ModelLoop",
    "PolicyWatcher",
    "Promotion",
    "split_reference",
]
