"""The equivalent-circuit model: its physics, and that fitting recovers what it simulated."""

from dataclasses import replace

import numpy as np
import pytest

from hybrid.baselines.ecm import (
    ECMParameters,
    ECMRecord,
    OCVCurve,
    coulomb_soc,
    fit_ecm,
    interpolate_parameters,
    simulate_ecm,
)
from sim.errors import ConfigError, DataError

# An LFP-like OCV: steep ends, a flat middle.
OCV = OCVCurve(np.linspace(0.0, 1.0, 11),
               np.array([2.5, 3.1, 3.2, 3.25, 3.28, 3.30, 3.31, 3.32, 3.33, 3.36, 3.5]))
TRUE = ECMParameters(capacity_Ah=2.0, r0_ohm=0.010, r1_ohm=0.015, tau1_s=20.0, r2_ohm=0.020, tau2_s=900.0,
                     hysteresis_V=0.015, hysteresis_rate=60.0, ocv_offset_V=-0.01)


def pulse_record(seed: int = 0, hours: float = 6.0, step_s: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Random discharge/charge pulses and rests (5 min each), scaled to a net discharge of 80 % SOC."""
    rng = np.random.default_rng(seed)
    time_s = np.arange(0.0, hours * 3600.0, step_s)
    levels = rng.choice([0.0, 0.0, 4.0, 2.0, -1.5, 1.0], size=len(time_s) // 30 + 1)
    current = np.repeat(levels, 30)[: len(time_s)]
    net_Ah = np.sum(current) * step_s / 3600.0
    current = current * (0.8 * TRUE.capacity_Ah / net_Ah)
    return time_s, current


def test_coulomb_counting_and_rest_voltage():
    time_s = np.arange(0.0, 3601.0, 1.0)
    current = np.full_like(time_s, 1.0)
    soc = coulomb_soc(time_s, current, capacity_Ah=2.0)
    assert soc[-1] == pytest.approx(1.0 - 3600.0 / 7200.0)
    # after a long rest the RC voltages relax: V -> OCV + offset + M h
    rest_time = np.arange(0.0, 20000.0, 10.0)
    rest_current = np.where(rest_time < 1000.0, 2.0, 0.0)
    output = simulate_ecm(rest_time, rest_current, OCV, TRUE)
    relaxed = OCV(output.soc[-1]) + TRUE.ocv_offset_V
    # the discharge swept 0.28 of SOC at rate 60: the hysteresis sits on the discharge branch
    assert output.voltage_V[-1] == pytest.approx(relaxed - TRUE.hysteresis_V, abs=1e-4)


def test_instantaneous_drop_is_r0():
    time_s = np.array([0.0, 1.0, 2.0])
    current = np.array([0.0, 0.0, 3.0])
    params = ECMParameters(2.0, 0.01, 0.0, 10.0, 0.0, 1000.0, 0.0, 1.0, 0.0)
    output = simulate_ecm(time_s, current, OCV, params)
    assert output.voltage_V[1] - output.voltage_V[2] == pytest.approx(0.03 + (OCV(output.soc[1]) - OCV(output.soc[2])))


def test_fit_recovers_parameters_of_simulated_data():
    time_s, current = pulse_record()
    voltage = simulate_ecm(time_s, current, OCV, TRUE).voltage_V
    noisy = voltage + np.random.default_rng(1).normal(0.0, 0.5e-3, len(voltage))
    fitted = fit_ecm([ECMRecord(time_s, current, noisy, capacity_Ah=2.0 * 1.04)], OCV)
    p = fitted.parameters
    assert fitted.rmse_mV < 0.6  # the noise level: nothing systematic left
    assert p.capacity_Ah == pytest.approx(TRUE.capacity_Ah, rel=0.01)
    assert p.r0_ohm == pytest.approx(TRUE.r0_ohm, rel=0.05)
    assert p.r1_ohm == pytest.approx(TRUE.r1_ohm, rel=0.15)
    assert p.tau1_s == pytest.approx(TRUE.tau1_s, rel=0.2)
    assert p.r2_ohm == pytest.approx(TRUE.r2_ohm, rel=0.15)
    assert p.tau2_s == pytest.approx(TRUE.tau2_s, rel=0.2)
    assert p.hysteresis_V == pytest.approx(TRUE.hysteresis_V, rel=0.15)
    assert p.ocv_offset_V == pytest.approx(TRUE.ocv_offset_V, abs=2e-3)


def test_linear_interpolation_between_temperatures():
    cold = ECMParameters(2.0, 0.05, 0.1, 40.0, 0.2, 2000.0, 0.02, 50.0, -0.02)
    warm = ECMParameters(2.0, 0.01, 0.02, 20.0, 0.04, 400.0, 0.01, 50.0, 0.0)
    middle = interpolate_parameters({5.0: cold, 25.0: warm}, 15.0, scale="linear")
    assert middle.r0_ohm == pytest.approx(0.03)
    assert middle.tau2_s == pytest.approx(1200.0)
    assert interpolate_parameters({5.0: cold, 25.0: warm}, 45.0, scale="linear") == warm  # held beyond the range
    with pytest.raises(ConfigError):
        interpolate_parameters({}, 15.0)


# Activation energies over the gas constant [K] of each kinetic parameter, and its value at 25 degC.
ACTIVATION_K = {"r0_ohm": 3000.0, "r1_ohm": 4500.0, "r2_ohm": 2500.0, "tau1_s": 1000.0, "tau2_s": 2000.0}


def arrhenius_parameters(celsius: float) -> ECMParameters:
    """TRUE's kinetic parameters scaled by exp(Ea/R (1/T - 1/298.15 K)); the others linear in temperature."""
    inverse_kelvin = 1.0 / (celsius + 273.15) - 1.0 / 298.15
    kinetic = {name: getattr(TRUE, name) * np.exp(activation * inverse_kelvin) for name, activation in ACTIVATION_K.items()}
    return replace(TRUE, **kinetic, hysteresis_V=0.01 + 1e-4 * celsius, ocv_offset_V=-1e-4 * celsius)


ARRHENIUS_FITTED = {celsius: arrhenius_parameters(celsius) for celsius in (-10.0, 10.0, 40.0)}


@pytest.mark.parametrize("celsius", [0.0, 25.0, -30.0, 55.0])  # inside and outside the fitted range
def test_arrhenius_interpolation_reproduces_arrhenius_parameters(celsius):
    got, exact = interpolate_parameters(ARRHENIUS_FITTED, celsius), arrhenius_parameters(celsius)
    for name in ACTIVATION_K:
        assert getattr(got, name) == pytest.approx(getattr(exact, name), rel=1e-9), name
    held = min(max(celsius, -10.0), 40.0)  # the non-kinetic parameters: linear, held beyond the range
    assert got.hysteresis_V == pytest.approx(arrhenius_parameters(held).hysteresis_V)
    assert got.ocv_offset_V == pytest.approx(arrhenius_parameters(held).ocv_offset_V)


def test_log_and_linear_scales_depart_from_arrhenius_as_expected():
    fitted = {celsius: ARRHENIUS_FITTED[celsius] for celsius in (10.0, 40.0)}
    cold, warm = fitted[10.0].r0_ohm, fitted[40.0].r0_ohm
    inside = {scale: interpolate_parameters(fitted, 25.0, scale).r0_ohm for scale in ("linear", "log", "arrhenius")}
    assert inside["linear"] == pytest.approx((cold + warm) / 2)
    assert inside["log"] == pytest.approx(np.sqrt(cold * warm))
    # log R is convex in T for an Arrhenius law: the chord in T lies above it, the arithmetic mean higher still
    assert inside["linear"] > inside["log"] > inside["arrhenius"] == pytest.approx(arrhenius_parameters(25.0).r0_ohm)
    beyond = {scale: interpolate_parameters(fitted, 60.0, scale).r0_ohm for scale in ("linear", "log", "arrhenius")}
    assert beyond["linear"] == warm  # held
    assert beyond["log"] < beyond["arrhenius"] < warm  # the extended chord falls below the convex curve


@pytest.mark.parametrize("scale", ["linear", "log", "arrhenius"])
def test_every_scale_returns_the_fitted_parameters_at_a_fitted_temperature(scale):
    for celsius, parameters in ARRHENIUS_FITTED.items():
        got = interpolate_parameters(ARRHENIUS_FITTED, celsius, scale)
        assert got.to_dict() == pytest.approx(parameters.to_dict(), rel=1e-12)
    assert interpolate_parameters({10.0: TRUE}, -20.0, scale) == TRUE  # a single temperature: its parameters


def test_unknown_scale_is_refused():
    with pytest.raises(ConfigError, match="scale = 'kelvin'; allowed: linear, log, arrhenius"):
        interpolate_parameters(ARRHENIUS_FITTED, 20.0, scale="kelvin")


def test_ocv_from_branches_cancels_symmetric_hysteresis():
    soc = np.linspace(0.0, 1.0, 1001)  # finer than the curve's 201 points: its knots are exact
    curve = OCVCurve.from_branches(soc[::-1], OCV(soc[::-1]) - 0.02, soc, OCV(soc) + 0.02)
    assert np.allclose(curve(curve.soc), OCV(curve.soc), atol=1e-6)


def test_bad_input_is_refused():
    with pytest.raises(DataError):
        simulate_ecm(np.array([0.0, 0.0, 1.0]), np.zeros(3), OCV, TRUE)
    with pytest.raises(ConfigError):
        fit_ecm([], OCV)
