from sim.measured.calibrate import Calibration
from sim.measured.pairing import PairingSpec, REAL_DATA_VARIABLE, default_real_data_dir, pair_measured, pair_measured_cli

__all__ = ['Calibration', 'PairingSpec', 'REAL_DATA_VARIABLE', 'default_real_data_dir', 'pair_measured', 'pair_measured_cli']
