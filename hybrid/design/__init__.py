from hybrid.design.problem import Candidate, DesignProblem, check_training_space, design_cli, design_loop, hypervolume, load_problem, minimisation_form, optimise, pareto_front, protocol_with_values, simulation_protocol, study_candidates

__all__ = ['Candidate', 'DesignProblem', 'check_training_space', 'design_cli', 'design_loop', 'hypervolume', 'load_problem', 'minimisation_form', 'optimise', 'pareto_front', 'protocol_with_values', 'simulation_protocol', 'study_candidates']
