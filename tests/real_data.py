"""Where the measured cycler data lives for tests, and the marks that skip a test without it
(the data is third-party and never copied into the repository)."""

import pytest

from sim.measured.spec import default_real_data_dir

REAL_DATA = default_real_data_dir()
A123_DIR = REAL_DATA / "a123_lfp_plett_dyn"
SAMSUNG_DIR = REAL_DATA / "samsung_30q_artslab"

needs_a123 = pytest.mark.skipif(
    not (A123_DIR / "manifest.csv").is_file(),
    reason=f"measured A123 data not found at {A123_DIR}: set HYBAT_REAL_DATA to the folder that holds "
           "a123_lfp_plett_dyn/ (see ../shared/data/real/README.md)")
needs_real_data = pytest.mark.skipif(
    not A123_DIR.is_dir() or not SAMSUNG_DIR.is_dir(),
    reason=f"measured data not found at {REAL_DATA}: set HYBAT_REAL_DATA to the folder that holds "
           "a123_lfp_plett_dyn/ and samsung_30q_artslab/")
