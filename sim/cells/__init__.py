from sim.cells.spec import POSITIVE_SURFACE_STOICHIOMETRY, CellSpec, OCVCorrection, DESIGN_VARIABLES, GEOMETRIC_PARAMETERS, base_parameter_values, cell_parameter_values, electrode_balance, resolved_parameters, scaled_parameter

__all__ = ['POSITIVE_SURFACE_STOICHIOMETRY', 'CellSpec', 'OCVCorrection', 'DESIGN_VARIABLES', 'GEOMETRIC_PARAMETERS', 'base_parameter_values', 'cell_parameter_values', 'electrode_balance', 'resolved_parameters', 'scaled_parameter']
