"""Export of a trained residual model to CasADi: its one-step recurrent map in physical units.

:func:`export_casadi` writes one serialized ``casadi.Function`` that plain casadi loads
(``casadi.Function.load(path)``) without hybat or torch, so the hybrid serves model-predictive
charging and gradient-based design in the user's own loop (IPOPT, a CasADi MPC)::

    <model>_step:(<feature 1>, ..., <feature F>, state[n]) -> (<output 1>, ..., <output K>, next_state[n])

The file's name list is the documentation (``F.name_in()``, ``F.name_out()``):

- inputs: one scalar per model feature, in physical units and named exactly as the hybat
  column it is read from, in the model's order: ``Current [A]`` (discharge positive),
  ``Ambient temperature [K]``, ``Time step [s]`` (time since the previous sample, 0 at a
  record's first row), the ``Physics ...`` outputs and states of the physics model and the
  static ``design_*`` values (SI units). The training normalisation (mean, std, clipping to
  ±FEATURE_CLIP standard deviations) is folded inside. Inputs must be finite: unlike
  :func:`hybrid.data.cell_inputs` the function does not replace NaN by 0.
- ``state``: the recurrent state; zeros at a record's first row, for every model kind; pass
  ``next_state`` back in at the next row. Its layout is internal (rnn/gru: h of each layer;
  lstm: h of each layer, then c of each layer; two_branch: reversible z, then irreversible s;
  a context residual conditioned through its initial state stores the offset from it, so
  that zeros start it too).
- outputs: the decoded estimates, named as hybat columns. A hybrid gives
  ``Voltage residual [V]`` and, when ``Physics voltage [V]`` is an input, the corrected
  ``Voltage [V]``; with an SOC head ``State of charge residual`` (and ``State of charge`` when
  ``Physics state of charge`` is an input); with a temperature head ``Cell temperature
  residual [K]`` (and ``Cell temperature [K]``). The black box gives ``Voltage [V]``,
  ``State of charge`` and ``Cell temperature [K]`` themselves. Then ``next_state``.

A whole record of T rows is ``F.mapaccum("roll", T, ["state"], ["next_state"])``: each feature a
1 x T row, each output a 1 x T row (:func:`roll`, which needs casadi and numpy only).

Exported kinds: residual_rnn and black_box (rnn, gru, lstm; unidirectional), two_branch, and
context_residual in mode none (its learned population descriptor: the descriptor of a
measured context comes from an encoder that is not exported). Refused: non-causal models
(bidirectional, a leaky forecaster) and the forecaster, which is no open-loop residual: it
encodes the measured voltage history and feeds back its own forecasts.

The function is MX (the weights stay dense matrices, the file small; ``F.expand()`` gives an
SX function), in double precision. The sigmoid is (1 + tanh(x/2)) / 2 and the softplus
max(x, 0) + log1p(exp(-|x|)): both smooth and overflow-free, so derivatives stay finite (torch's
softplus returns x above 20, a difference below 2e-9).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import casadi
import numpy as np
from numpy.typing import ArrayLike
from torch import Tensor, nn

from hybrid.data.columns import (
    PHYSICS_SOC,
    PHYSICS_TEMPERATURE,
    PHYSICS_VOLTAGE,
    SOC,
    SOC_RESIDUAL,
    TEMPERATURE,
    TEMPERATURE_RESIDUAL,
    VOLTAGE,
    VOLTAGE_RESIDUAL,
)
from hybrid.data.features import FEATURE_CLIP
from hybrid.models import ContextResidual, ResidualRNN, TwoBranchResidual, require_causal
from hybrid.models.two_branch import SECONDS_PER_HOUR
from hybrid.train import BLACK_BOX, CHECKPOINT, RUN_CONFIG, TrainedModel, TrainRunConfig, load_trained, read_run_file
from sim.config import validate
from sim.errors import ConfigError, DataError

log = logging.getLogger(__name__)

STATE, NEXT_STATE = "state", "next_state"
# (residual target, what it corrects, the physics column it corrects) in output order
# a model family's step: (model, normalised features (F, 1), state (n, 1)) -> (normalised outputs, next state)
Step = Callable[[Any, casadi.MX, casadi.MX], tuple[casadi.MX, casadi.MX]]
_DECODED = ((VOLTAGE_RESIDUAL, VOLTAGE, PHYSICS_VOLTAGE), (SOC_RESIDUAL, SOC, PHYSICS_SOC),
            (TEMPERATURE_RESIDUAL, TEMPERATURE, PHYSICS_TEMPERATURE))


def export_casadi(run_dir: str | Path, out: str | Path, *, model: str | None = None) -> casadi.Function:
    """Write the one-step function of a trained run's model to ``out`` and return it.

    run_dir: a run directory written by ``hybat train``. model: the name of one of its hybrids,
    or ``black_box`` for the baseline (default: the run's first hybrid).
    """
    run_dir = Path(run_dir)
    name = _model_name(run_dir, model)
    trained = load_trained(run_dir / name / CHECKPOINT, name)
    function = casadi_step(trained)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    function.save(str(out))
    log.info("exported %s -> %s", function, out)
    return function


def _model_name(run_dir: Path, model: str | None) -> str:
    """``model``, or the run's first hybrid; ConfigError naming the run's models for another name."""
    config = validate(TrainRunConfig, read_run_file(run_dir / RUN_CONFIG), str(run_dir / RUN_CONFIG))
    allowed = [name for name, family, _ in config.entries() if family == "hybrid"] + [BLACK_BOX]
    name = allowed[0] if model is None else model
    if name not in allowed:
        raise ConfigError(f"model = {name!r}: not a model of run {run_dir}; allowed: {', '.join(allowed)}")
    return name


def casadi_step(trained: TrainedModel) -> casadi.Function:
    """The one-step map of ``trained`` in physical units (see the module docstring)."""
    model = trained.model
    require_causal(model, "export to casadi")
    step = _step_builder(model)
    normalisation = trained.normalisation
    features = normalisation["features"]
    inputs = [casadi.MX.sym(f"x{k}") for k in range(len(features))]
    scaled = (casadi.vertcat(*inputs) - _column(normalisation["feature_mean"])) / _column(normalisation["feature_std"])
    clipped = casadi.fmin(casadi.fmax(scaled, -FEATURE_CLIP), FEATURE_CLIP)
    state = casadi.MX.sym(STATE, _state_size(model))
    outputs, next_state = step(model, clipped, state)  # (targets, 1) normalised, (n, 1)
    values = outputs * _column(normalisation["target_std"]) + _column(normalisation["target_mean"])
    names, decoded = _decoded(values, normalisation["targets"], dict(zip(features, inputs)))
    name = re.sub(r"\W", "_", trained.name) + "_step"
    return casadi.Function(name, [*inputs, state], [*decoded, next_state], [*features, STATE], [*names, NEXT_STATE])


def _decoded(values: casadi.MX, targets: list[str], inputs: dict[str, casadi.MX]) -> tuple[list[str], list[casadi.MX]]:
    """(names, expressions) of the estimates, as :func:`hybrid.data.decode_outputs` decodes them:
    each residual, plus its physics input when the model reads it; or the quantity itself."""
    names, decoded = [], []
    for residual, truth, physics in _DECODED:
        if residual in targets:
            names.append(residual)
            decoded.append(values[targets.index(residual)])
            if physics in inputs:
                names.append(truth)
                decoded.append(inputs[physics] + decoded[-1])
        elif truth in targets:
            names.append(truth)
            decoded.append(values[targets.index(truth)])
    return names, decoded


def roll(function: casadi.Function, columns: Mapping[str, ArrayLike]) -> dict[str, np.ndarray]:
    """Run a one-step function over a record from the zero state: outputs by name, (rows,) each,
    and ``next_state`` (rows, n).

    columns: every input of ``function`` but the state by its name, (rows,) or a scalar held
    over the record (a design value). Needs casadi and numpy only.
    """
    names = [name for name in function.name_in() if name != STATE]
    missing = [name for name in names if name not in columns]
    if missing:
        raise DataError(f"columns: no '{missing[0]}'; allowed: a mapping with the inputs {', '.join(names)}")
    values = {name: np.atleast_1d(np.asarray(columns[name], dtype=float)) for name in names}
    rows = max(value.size for value in values.values())
    for name, value in values.items():
        if value.ndim != 1 or value.size not in (1, rows):
            raise DataError(f"columns['{name}']: shape {value.shape}; allowed: ({rows},) or a scalar")
    rolled = function.mapaccum("roll", rows, [STATE], [NEXT_STATE])
    arguments = {name: np.broadcast_to(value, (rows,))[None, :] for name, value in values.items()}
    results = rolled.call({**arguments, STATE: np.zeros(function.size1_in(STATE))})
    return {name: np.asarray(value).T if name == NEXT_STATE else np.asarray(value).ravel()
            for name, value in results.items()}


# --- torch modules as casadi expressions (x: (features, 1) normalised, state: (n, 1)) ----------


def _step_builder(model: nn.Module) -> Step:
    """The step function of ``model``'s family; ConfigError for a model that cannot be exported."""
    for model_type, step in ((ResidualRNN, _residual_rnn_step), (TwoBranchResidual, _two_branch_step),
                             (ContextResidual, _context_residual_step)):
        if isinstance(model, model_type):
            return step
    kind = getattr(getattr(model, "config", None), "kind", type(model).__name__)
    raise ConfigError(f"model kind {kind!r}: no casadi export; allowed: residual_rnn, black_box, two_branch, "
                      "context_residual (the forecaster reads the measured history: it is no open-loop residual)")


def _state_size(model: nn.Module) -> int:
    if isinstance(model, TwoBranchResidual):
        return model.config.reversible_states + model.config.irreversible_states
    rnn = model.rnn
    return (2 if rnn.mode == "LSTM" else 1) * rnn.num_layers * rnn.hidden_size


def _residual_rnn_step(model: ResidualRNN, x: casadi.MX, state: casadi.MX) -> tuple[casadi.MX, casadi.MX]:
    features, next_state = _recurrent(model.rnn, x, state)
    return _linear(model.head, features), next_state


def _context_residual_step(model: ContextResidual, x: casadi.MX, state: casadi.MX) -> tuple[casadi.MX, casadi.MX]:
    """Mode none: the population descriptor conditions the residual RNN, as in ContextResidual.forward."""
    descriptor = _numpy(model.encoder.population)  # (descriptor_size,)
    if model.config.conditioning == "concat":
        x = casadi.vertcat(x, _column(descriptor))
    # the initial state is tanh(to_state(descriptor)), laid out (states, layers, hidden) as the
    # flat state is; the state carries the offset from it so that every kind starts at zeros
    initial = _column(np.tanh(_dense(model.to_state, descriptor)) if model.to_state is not None
                      else np.zeros(state.shape[0]))
    features, next_state = _recurrent(model.rnn, x, state + initial)
    if model.film is not None:
        scale, shift = np.split(_dense(model.film, descriptor), 2)
        features = features * _column(1.0 + scale) + _column(shift)
    return _linear(model.head, features), next_state - initial


def _two_branch_step(model: TwoBranchResidual, x: casadi.MX, state: casadi.MX) -> tuple[casadi.MX, casadi.MX]:
    """One row of TwoBranchResidual.branches: decay and drive of z, increment of s, readouts."""
    config = model.config
    z, s = state[: config.reversible_states], state[config.reversible_states:]
    if config.time_step_index is None:
        time_step = config.time_step_mean_s
    else:
        time_step = casadi.fmax(x[config.time_step_index] * config.time_step_std_s + config.time_step_mean_s, 0.0)
    current = x[config.current_index]
    learned = casadi.vertcat(*(x[k] for k in model.learned_features))
    exponent = -time_step * _column(_numpy(model.rates()))  # (reversible_states, 1)
    z = casadi.exp(exponent) * z - casadi.expm1(exponent) * current * _mlp(model.drive, learned)
    increments = _softplus(_mlp(model.increment, learned))  # (2 irreversible_states, 1)
    per_hour, per_charge = casadi.vertsplit(increments, config.irreversible_states)
    s = s + config.increment_scale * time_step / SECONDS_PER_HOUR * (per_hour + casadi.fabs(current) * per_charge)
    output = _linear(model.reversible_readout, z) + _linear(model.irreversible_readout, s)
    if model.feedforward is not None:
        output = output + _mlp(model.feedforward, learned)
    return output, casadi.vertcat(z, s)


def _recurrent(rnn: nn.RNNBase, x: casadi.MX, state: casadi.MX) -> tuple[casadi.MX, casadi.MX]:
    """One step of a unidirectional torch RNN/GRU/LSTM stack: (top layer's output, next flat state)."""
    layers, hidden = rnn.num_layers, rnn.hidden_size
    parts = casadi.vertsplit(state, hidden)  # h of each layer, then c of each layer (LSTM)
    hs, cs = [], []
    for layer in range(layers):
        weights = [_numpy(getattr(rnn, f"{name}_l{layer}")) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        if rnn.mode == "LSTM":
            x, c = _lstm_cell(x, parts[layer], parts[layers + layer], *weights)
            cs.append(c)
        elif rnn.mode == "GRU":
            x = _gru_cell(x, parts[layer], *weights)
        elif rnn.mode == "RNN_TANH":
            x = casadi.tanh(_affine(weights[0], weights[2], x) + _affine(weights[1], weights[3], parts[layer]))
        else:
            raise ConfigError(f"recurrent layer mode {rnn.mode!r}: no casadi export; allowed: RNN_TANH, GRU, LSTM")
        hs.append(x)
    return x, casadi.vertcat(*hs, *cs)


def _gru_cell(x: casadi.MX, h: casadi.MX, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray,
              b_hh: np.ndarray) -> casadi.MX:
    """torch.nn.GRU's update, gates in the order r, z, n; the n gate reads r * (W_hn h + b_hn)."""
    input_r, input_z, input_n = casadi.vertsplit(_affine(w_ih, b_ih, x), h.shape[0])
    hidden_r, hidden_z, hidden_n = casadi.vertsplit(_affine(w_hh, b_hh, h), h.shape[0])
    reset, update = _sigmoid(input_r + hidden_r), _sigmoid(input_z + hidden_z)
    candidate = casadi.tanh(input_n + reset * hidden_n)
    return (1.0 - update) * candidate + update * h


def _lstm_cell(x: casadi.MX, h: casadi.MX, c: casadi.MX, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray,
               b_hh: np.ndarray) -> tuple[casadi.MX, casadi.MX]:
    """torch.nn.LSTM's update, gates in the order i, f, g, o: (h', c')."""
    gate_i, gate_f, gate_g, gate_o = casadi.vertsplit(_affine(w_ih, b_ih, x) + _affine(w_hh, b_hh, h), h.shape[0])
    c = _sigmoid(gate_f) * c + _sigmoid(gate_i) * casadi.tanh(gate_g)
    return _sigmoid(gate_o) * casadi.tanh(c), c


def _mlp(layers: nn.Sequential, x: casadi.MX) -> casadi.MX:
    """Linear and Tanh layers in sequence (the two-branch model's small MLPs)."""
    for layer in layers:
        if isinstance(layer, nn.Linear):
            x = _linear(layer, x)
        elif isinstance(layer, nn.Tanh):
            x = casadi.tanh(x)
        else:
            raise ConfigError(f"MLP layer {type(layer).__name__}: no casadi export; allowed: Linear, Tanh")
    return x


def _linear(layer: nn.Linear, x: casadi.MX) -> casadi.MX:
    bias = _numpy(layer.bias) if layer.bias is not None else np.zeros(layer.out_features)
    return _affine(_numpy(layer.weight), bias, x)


def _affine(weight: np.ndarray, bias: np.ndarray, x: casadi.MX) -> casadi.MX:
    return casadi.mtimes(casadi.DM(weight), x) + _column(bias)


def _dense(layer: nn.Linear, values: np.ndarray) -> np.ndarray:
    """``layer`` applied to constant ``values`` in numpy, double precision."""
    return _numpy(layer.weight) @ values + _numpy(layer.bias)


def _sigmoid(x: casadi.MX) -> casadi.MX:
    return 0.5 * (1.0 + casadi.tanh(0.5 * x))


def _softplus(x: casadi.MX) -> casadi.MX:
    return casadi.fmax(x, 0.0) + casadi.log1p(casadi.exp(-casadi.fabs(x)))


def _numpy(tensor: Tensor) -> np.ndarray:
    return tensor.detach().double().cpu().numpy()


def _column(values: ArrayLike) -> casadi.DM:
    return casadi.DM(np.asarray(values, dtype=float).reshape(-1, 1))
