"""Facts about the design report: the Markdown table has one row per verified design with the
surrogate and reference value of every objective and constraint side by side, marks the best,
writes a missing or non-finite value as '-', and the plot is written for one objective and for
two."""

from __future__ import annotations

from tests.hybrid.design.test_candidates import analytic_problem

from hybrid.design.candidates import Candidate
from hybrid.design.problem import DesignProblem
from hybrid.design.report import markdown_report, write_report


def _report(problem: DesignProblem) -> dict:
    row = {"params": {"negative_porosity": 0.25, "positive_particle_radius_m": 5e-6}, "round": 0,
           "surrogate_feasible": True, "reference_feasible": False}
    return {"surrogate_evaluations": 8, "reference_evaluations": 2, "wall_s": 3.0, "best": 1,
            "constraint_backoff": {"hppc.max_temperature_K <= 329": 0.5},
            "chosen": [{**row, "trial": 4, "surrogate": {"hppc": {"power_capability_W": 81.25,
                                                                  "max_temperature_K": 325.0}},
                        "reference": {"hppc": {"power_capability_W": None, "max_temperature_K": 330.5}}},
                       {**row, "trial": 6, "round": 1, "surrogate": {"hppc": {"power_capability_W": 90.0}},
                        "reference": {"hppc": {"power_capability_W": 88.0, "max_temperature_K": 328.0}}}]}


def test_markdown_table_sets_surrogate_beside_reference_and_marks_the_best():
    problem = analytic_problem()
    lines = markdown_report(problem, _report(problem)).splitlines()
    assert lines[0] == "# Design problem `analytic`"
    assert "8 surrogate evaluations, 2 reference evaluations, 3 s." in lines
    assert "Back-off of the surrogate's constraints after verification: hppc.max_temperature_K <= 329: 0.5" in lines
    table = [line for line in lines if line.startswith("| ")]
    assert table[0] == ("| trial (round) | negative_porosity | positive_particle_radius_m | "
                        "hppc.power_capability_W surrogate / reference | "
                        "hppc.max_temperature_K surrogate / reference | feasible (S/R) |")
    assert table[1] == "| 4 (1) | 0.25 | 5e-06 | 81.25 / - | 325 / 330.5 | yes / no |"
    assert table[2] == "| 6 (2) (best) | 0.25 | 5e-06 | 90 / 88 | - / 328 | yes / no |"


def test_write_report_writes_the_markdown_and_the_plot_for_one_and_two_objectives(tmp_path):
    single = analytic_problem()
    double = DesignProblem.model_validate({**single.model_dump(mode="json"), "objectives": [
        {"metric": "power_capability_W", "direction": "maximize"},
        {"metric": "max_temperature_K", "direction": "minimize"}]})
    candidates = [(k, Candidate({}, {}, {"hppc": {"power_capability_W": 80.0 + k, "max_temperature_K": 320.0 + k}}))
                  for k in range(8)]
    for problem, folder in ((single, tmp_path / "one"), (double, tmp_path / "two")):
        folder.mkdir()
        files = write_report(problem, _report(problem), candidates, folder)
        assert (folder / "report.md").read_text() == markdown_report(problem, _report(problem))
        assert (folder / "design.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert files["json"] == str(folder / "report.json") and files["study"] == str(folder / "study.db")
