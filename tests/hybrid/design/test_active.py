"""Facts about active learning in the design loop: a round fine-tunes the residual on the
verified designs into a new run, searches again, and the tuned residual predicts the design it
was tuned on closer to the reference."""

from __future__ import annotations

from pathlib import Path

from hybrid.design.active import ActiveLearningOptions
from hybrid.design.loop import design_loop
from hybrid.design.problem import load_problem
from hybrid.surrogate.models import HybridSurrogate, ReferenceModel
from hybrid.train.checkpoint import load_checkpoint

DESIGNS = Path(__file__).resolve().parents[3] / "configs" / "design"


def test_active_learning_fine_tunes_the_residual_on_the_verified_designs(tmp_path, smoke_run_dir):
    problem = load_problem(DESIGNS / "smoke.yaml")
    problem = problem.model_copy(update={"active_learning": ActiveLearningOptions(rounds=1, epochs=20)})
    report = design_loop(problem, HybridSurrogate(smoke_run_dir), ReferenceModel(smoke_run_dir), tmp_path)

    assert report["surrogate_evaluations"] == 2 * problem.optimiser.trials
    assert [row["round"] for row in report["chosen"]] == [0, 1]
    first = report["chosen"][0]
    tuned = HybridSurrogate(tmp_path / "active_1" / "run")
    assert load_checkpoint(tmp_path / "active_1" / "run" / "gru" / "best.pt")["extra"]["records"] == 1
    # the fine-tuned residual predicts the design it was tuned on closer to the reference
    again, = tuned.evaluate([first["design"]], problem.protocols["hppc"], conditions=problem.conditions)
    truth = first["reference"]["hppc"]["power_capability_W"]
    before = abs(first["surrogate"]["hppc"]["power_capability_W"] - truth)
    assert abs(again.metrics["power_capability_W"] - truth) < 0.7 * before
