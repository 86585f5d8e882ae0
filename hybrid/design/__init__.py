"""The design stage: search cell designs and protocols through the hybrid surrogate, verify the
best on the reference.

- ``problem.py``: a design problem (variables, objectives, constraints, verification) and its YAML;
- ``protocols.py``: test protocols with variables (the fast charge);
- ``candidates.py``: a candidate design and its scoring by a model;
- ``optimise.py``: the optuna optimiser and what it picks for verification;
- ``loop.py``: the design loop (calibrate, optimise, verify, active learning) and ``hybat design``;
- ``verify.py``: which designs the reference runs, in rounds, within its budget;
- ``uncertainty.py``: the surrogate's calibrated intervals and their coverage on the reference;
- ``acquisition.py``: expected (hypervolume) improvement times probability of feasibility;
- ``active.py``: active learning, fine-tuning the residual on verified designs;
- ``polish.py``: a trust-region search on the reference around the best verified design;
- ``report.py``: report.md and the PNG.
"""

from hybrid.design.candidates import Candidate
from hybrid.design.loop import design_cli, design_loop
from hybrid.design.optimise import hypervolume, minimisation_form, optimise, pareto_front, study_candidates
from hybrid.design.problem import DesignProblem, check_training_space, load_problem
from hybrid.design.protocols import protocol_with_values
from hybrid.design.uncertainty import Calibration, fit_calibration
from hybrid.design.verify import Verified, verify

__all__ = ['Calibration', 'Candidate', 'DesignProblem', 'Verified', 'check_training_space',
           'design_cli', 'design_loop', 'fit_calibration', 'hypervolume', 'load_problem', 'minimisation_form',
           'optimise', 'pareto_front', 'protocol_with_values', 'study_candidates', 'verify']
