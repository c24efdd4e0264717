"""Evidently 0.7's per-column drift methods (its stat-test registry), declared as plugins.

One declaration per method: the column kinds it tests and what the lean drift path needs to
know of it (fewest values, whether it only looks at sorted values or at category counts).
``tests/monitor/test_drift_methods.py`` keeps this list in sync with Evidently's registry.
Another method registers the same way, once Evidently knows its stat test
(``evidently.legacy.calculations.stattests.registry.register_stattest``).
Light on purpose: ``reoptd policy validate`` imports it; Evidently is not imported here.
"""

from __future__ import annotations

from reoptd.plugins import DRIFT_METHODS, DriftMethod

__all__: list[str] = []

NUM, CAT, TEXT = "numerical", "categorical", "text"

for _method in (
    DriftMethod("anderson", (NUM,), min_values=2),
    DriftMethod("chisquare", (CAT,), counts=True),
    DriftMethod("cramer_von_mises", (NUM,), min_values=2),
    DriftMethod("ed", (NUM,)),
    DriftMethod("empirical_mmd", (NUM,), min_values=2),
    DriftMethod("es", (NUM,), min_values=5),
    DriftMethod("fisher_exact", (CAT,)),
    DriftMethod("g_test", (CAT,), counts=True),
    DriftMethod("hellinger", (NUM, CAT)),
    DriftMethod("jensenshannon", (NUM, CAT), counts=True),
    DriftMethod("kl_div", (NUM, CAT), counts=True),
    DriftMethod("ks", (NUM,), sorted_input=True),
    DriftMethod("mannw", (NUM,)),
    DriftMethod("psi", (NUM, CAT), counts=True),
    DriftMethod("t_test", (NUM,), min_values=2),
    DriftMethod("TVD", (CAT,), counts=True),
    DriftMethod("wasserstein", (NUM,), sorted_input=True),
    DriftMethod("z", (CAT,)),
    DriftMethod("abs_text_content_drift", (TEXT,)),
    DriftMethod("perc_text_content_drift", (TEXT,)),
):
    DRIFT_METHODS.register(_method)
