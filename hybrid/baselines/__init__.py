"""Classical baselines beside the hybrids: the equivalent-circuit model (ECM), its OCV curves,
its predictions on corpus records and its evaluation options.

Names load on first use: the training config reads ``ECMOptions`` (hybrid.baselines.options)
without loading the fitting code, which imports hybrid.evaluate, which imports hybrid.train.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.exports import lazy_exports

# public name -> module that defines it
_EXPORTS = {
    "hybrid.baselines.ecm": ("ECMParameters", "ECMRecord", "OCVCurve", "fit_ecm", "interpolate_parameters",
                             "simulate_ecm"),
    "hybrid.baselines.ocv": ("ocv_from_relaxations", "ocv_from_slow_tests"),
    "hybrid.baselines.runs": ("ecm_predictions",),
    "hybrid.baselines.options": ("ECMOptions",),
}
__all__, _STAGE_OF, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # what type checkers and IDEs see
    from hybrid.baselines.ecm import ECMParameters, ECMRecord, OCVCurve, fit_ecm, interpolate_parameters, simulate_ecm
    from hybrid.baselines.ocv import ocv_from_relaxations, ocv_from_slow_tests
    from hybrid.baselines.options import ECMOptions
    from hybrid.baselines.runs import ecm_predictions
