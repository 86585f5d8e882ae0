"""experiments/bench_surrogate.py on the smoke run with tiny settings: one JSON line of timings,
errors and targets, with speedups that are the ratio of the two timings it reports."""

from __future__ import annotations

import json
import math

from tests.experiments.script import load_script
from tests.hybrid.conftest import one_thread, smoke_corpus_dir, smoke_run_dir  # noqa: F401 (fixtures)

def test_quick_bench_times_both_models_on_the_same_designs(smoke_run_dir, capsys):  # noqa: F811 (a fixture)
    bench = load_script("bench_surrogate")
    figures = bench.main(["--quick", "--run", str(smoke_run_dir), "--batch-sizes", "1", "2", "--repeats", "1",
                          "--reference-designs", "1"])

    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == figures
    smoke = figures["problems"]["smoke"]
    assert smoke["reference_fidelity"] == "spme"  # the smoke corpus's plant
    assert set(smoke["batches"]) == {"1", "2"}
    for batch_size, row in smoke["batches"].items():
        assert row["reference_designs"] == min(int(batch_size), 1)
        for key in ("surrogate_s_per_design", "reference_s_per_design", "speedup"):
            assert math.isfinite(row[key]) and row[key] > 0.0, (batch_size, key)
        assert math.isclose(row["speedup"], row["reference_s_per_design"] / row["surrogate_s_per_design"])
    # the objective and the constraint of configs/design/smoke.yaml, on every design both solved
    errors = smoke["errors"]
    assert errors["hppc.power_capability_W"]["designs"] == 2 == errors["hppc.max_temperature_K"]["designs"]
    assert 0.0 <= errors["hppc.power_capability_W"]["mean_rel_pct"] <= errors["hppc.power_capability_W"]["max_rel_pct"]
    assert "mean_rel_pct" not in errors["hppc.max_temperature_K"]  # temperatures: absolute only
    # the SPMe target is judged at the largest batch run; no problem has a DFN reference here
    spme = figures["targets"]["speedup_vs_spme>=20"]
    assert spme["batch"] == [2] and spme["values"] == {"smoke": smoke["batches"]["2"]["speedup"]}
    assert spme["met"] == (spme["values"]["smoke"] >= 20.0)
    assert figures["targets"]["speedup_vs_dfn>=100"]["met"] is None
    assert figures["targets"]["max_temperature_error_K<=0.5"]["values"] == {
        "smoke.hppc.max_temperature_K": errors["hppc.max_temperature_K"]["max_abs"]}
