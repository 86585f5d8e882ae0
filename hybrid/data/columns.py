"""Column names of the corpus contract and of the derived columns the data stage adds.

Series columns carry their unit in brackets. ``Physics ...`` columns are the physics model's
outputs (known online); ``design_*`` columns of ``samples.parquet`` are a cell's static design.
"""

TIME = "Time [s]"
CURRENT = "Current [A]"
AMBIENT = "Ambient temperature [K]"
VOLTAGE = "Voltage [V]"
SOC = "State of charge"
TEMPERATURE = "Cell temperature [K]"
CHARGE = "Discharge capacity [A.h]"
PHYSICS_PREFIX = "Physics "
PHYSICS_VOLTAGE = "Physics voltage [V]"
PHYSICS_SOC = "Physics state of charge"
PHYSICS_TEMPERATURE = "Physics cell temperature [K]"
DESIGN_PREFIX = "design_"
TIME_STEP = "Time step [s]"  # derived: time since the previous sample (0 at the first)
VOLTAGE_RESIDUAL = "Voltage residual [V]"
SOC_RESIDUAL = "State of charge residual"
TEMPERATURE_RESIDUAL = "Cell temperature residual [K]"
# the plant at nominal variability on the measured current (a corpus's floor option): the
# best a model that knows the population but not the cell can do
NOMINAL_PLANT_VOLTAGE = "Nominal plant voltage [V]"
# a measured corpus paired with compare_nominal (sim.measured.pairing): the uncalibrated cell on
# the measured current, a baseline to score (not "Physics ...": no model reads it)
NOMINAL_PHYSICS_VOLTAGE = "Nominal physics voltage [V]"
