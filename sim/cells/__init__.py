from sim.cells.spec import CellSpec, DESIGN_VARIABLES, GEOMETRIC_PARAMETERS, base_parameter_values, cell_parameter_values, electrode_balance, resolved_parameters, scaled_parameter

__all__ = ['CellSpec', 'DESIGN_VARIABLES', 'GEOMETRIC_PARAMETERS', 'base_parameter_values', 'cell_parameter_values', 'electrode_balance', 'resolved_parameters', 'scaled_parameter']
