from sim.measured.bdf import export_bdf
from sim.measured.calibrate import Calibration, CalibrationOptions, calibrate
from sim.measured.columns import ColumnMap, detect_columns
from sim.measured.loader import MeasuredSeries, load_measured
from sim.measured.pairing import pair_measured, pair_measured_cli
from sim.measured.spec import REAL_DATA_VARIABLE, PairingSpec, default_real_data_dir

__all__ = ['Calibration', 'CalibrationOptions', 'ColumnMap', 'MeasuredSeries', 'PairingSpec', 'REAL_DATA_VARIABLE',
           'calibrate', 'default_real_data_dir', 'detect_columns', 'export_bdf', 'load_measured', 'pair_measured',
           'pair_measured_cli']
