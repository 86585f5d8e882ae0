"""A deep ensemble's members, one design at a time: their mean, their spread, one status.

Every member of a hybrid's ensemble (``ensemble: M`` in the training config, see
:class:`hybrid.train.run.ModelEntry`) runs the design's protocol in its own closed loop: its
controller acts on its own corrected voltage, so each member may stop a step at another time.
The design's metrics are the members' mean and their uncertainty the members' standard
deviation (``spread``). How far that spread is to be trusted is measured on the reference by
the design loop (:mod:`hybrid.design.uncertainty`), which scales it into calibrated intervals.

A member that ends "truncated" or "failed" is outvoted when at least half of the members
finish: the design is "ok", scored on the members that finished, and its message says how
many did not. Otherwise the design takes the status of the first member that did not finish.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

Z_90 = 1.6448536269514722  # two-sided 90 % of a normal distribution


@dataclass
class Scored:
    """One member's closed-loop result (simulate_columns' dict) and its metrics."""

    result: dict[str, Any]
    metrics: dict[str, float]


def combine_members(members: Sequence[Scored]) -> tuple[dict[str, Any], dict[str, float], dict[str, float]]:
    """(representative result with the design's status and message, mean metrics, spread).

    The representative result is the first finished member's (its trajectory is the one
    reported); spread is the sample standard deviation over the members scored ({} for one)."""
    if len(members) == 1:
        return members[0].result, members[0].metrics, {}
    finished = [member for member in members if member.result["status"] == "ok"]
    if 2 * len(finished) >= len(members):
        scored, result = finished, dict(finished[0].result)
        if len(finished) < len(members):
            stopped = next(member for member in members if member.result["status"] != "ok")
            result["message"] = (f"{len(members) - len(finished)} of {len(members)} ensemble members stopped early "
                                 f"({stopped.result['message']}); scored on the other {len(finished)}")
    else:
        stopped = next(member for member in members if member.result["status"] != "ok")
        scored = [member for member in members if member.result["columns"]] or [stopped]
        result = dict(stopped.result)
        result["message"] = (f"{len(members) - len(finished)} of {len(members)} ensemble members: "
                             f"{stopped.result['message']}")
    names = scored[0].metrics.keys()
    values = {name: np.array([member.metrics.get(name, math.nan) for member in scored], dtype=float)
              for name in names}
    with warnings.catch_warnings():  # a metric no member could score stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = {name: float(np.nanmean(column)) for name, column in values.items()}
        spread = {name: float(np.nanstd(column, ddof=1)) if np.isfinite(column).sum() > 1 else math.nan
                  for name, column in values.items()}
    return result, mean, spread
