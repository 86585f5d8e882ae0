"""Facts about the TBPTT training loop: gradients, state carry, resume, divergence, early stopping."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from hybrid.data.batch import SequenceBatch
from hybrid.train.checkpoint import load_checkpoint
from hybrid.train.config import TrainConfig
from hybrid.train.loop import evaluate_loss, fit, gradient_norms, sequence_gradients, tbptt_loss
from sim.errors import ConfigError, DataError, TrainingDiverged

MODEL_CONFIG = {"kind": "gru", "hidden_size": 12, "num_layers": 2}
NORMALISATION = {"input_mean": [0.0], "input_std": [1.0], "target_mean": 0.0, "target_std": 1.0}


class TinyGRU(nn.Module):
    """Stand-in for hybrid.models.residual_rnn: GRU + linear head, forward(x, state) -> (y, state)."""

    def __init__(self, input_size: int = 1, hidden_size: int = 12, num_layers: int = 2,
                 bidirectional: bool = False, dropout: float = 0.0, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.causal = not bidirectional
        self.rnn = nn.GRU(input_size, hidden_size, num_layers, batch_first=True, dropout=dropout,
                          bidirectional=bidirectional)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), 1)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        features, state = self.rnn(x, state)  # (batch, time, hidden)
        return self.head(features), state  # (batch, time, 1)


def lag_batch(sequences: int, steps: int, seed: int, decay: float = 0.9, gain: float = 1.0) -> SequenceBatch:
    """Piecewise-constant random input u and its first-order lag y[t] = decay y[t-1] + (1 - decay) u[t]."""
    generator = torch.Generator().manual_seed(seed)
    levels = torch.randn(sequences, steps // 10 + 1, generator=generator)
    inputs = levels.repeat_interleave(10, dim=1)[:, :steps]  # (batch, time)
    targets = torch.zeros_like(inputs)
    previous = torch.zeros(sequences)
    for t in range(steps):
        previous = decay * previous + (1 - decay) * inputs[:, t]
        targets[:, t] = previous
    # scale the target to unit-ish variance so losses are comparable across tests
    return SequenceBatch(inputs.unsqueeze(-1), gain * 2.0 * targets.unsqueeze(-1),
                         torch.ones(sequences, steps, dtype=torch.bool))


def lag_data(batches: int, seed: int, steps: int = 60, gain: float = 1.0) -> list[SequenceBatch]:
    return [lag_batch(4, steps, seed + index, gain=gain) for index in range(batches)]


def run_fit(model, train, val, config, run_dir, **kwargs):
    return fit(model, train, val, config, run_dir=run_dir, model_config=MODEL_CONFIG,
               normalisation=NORMALISATION, **kwargs)


def test_full_truncation_equals_full_bptt_and_shorter_truncation_differs():
    model = TinyGRU()
    batch = lag_batch(3, 80, seed=1)
    batch.mask[0, 70:] = False  # padding must be ignored the same way
    model.zero_grad()
    prediction, _ = model(batch.inputs)
    ((prediction - batch.targets) ** 2)[batch.mask].mean().backward()
    full = {name: p.grad.clone() for name, p in model.named_parameters()}

    same = sequence_gradients(model, batch, truncation_steps=80)
    truncated = sequence_gradients(model, batch, truncation_steps=5)
    for name in full:
        torch.testing.assert_close(same[name], full[name], rtol=1e-6, atol=1e-7)
    relative = (truncated["rnn.weight_hh_l0"] - full["rnn.weight_hh_l0"]).norm() / full["rnn.weight_hh_l0"].norm()
    assert relative > 1e-2


def test_state_is_carried_across_segments():
    model = TinyGRU()
    batch = lag_batch(3, 90, seed=2)
    with torch.no_grad():
        prediction, _ = model(batch.inputs)
        full_loss = ((prediction - batch.targets) ** 2).mean()
        chunked_loss, _ = tbptt_loss(model, batch, truncation_steps=10)
        model.causal = False  # a non-causal model restarts every segment: the loss must change
        windowed_loss, _ = tbptt_loss(model, batch, truncation_steps=10)
    torch.testing.assert_close(chunked_loss, full_loss, rtol=1e-6, atol=1e-7)
    assert abs(float(windowed_loss) - float(full_loss)) > 1e-3 * float(full_loss)


def test_record_weights_scale_each_sequences_rows_over_the_valid_steps():
    model = TinyGRU()
    batch = lag_batch(3, 90, seed=3)
    batch.mask[2, 30:] = False
    with torch.no_grad():
        prediction, _ = model(batch.inputs)
        squared = ((prediction - batch.targets) ** 2).squeeze(-1)  # (batch, time)
        plain, _ = tbptt_loss(model, batch, truncation_steps=20)
        batch.weights = torch.tensor([1.0, 0.0, 4.0])
        weighted, _ = tbptt_loss(model, batch, truncation_steps=20)
    torch.testing.assert_close(plain, squared[batch.mask].mean(), rtol=1e-6, atol=1e-7)
    expected = (squared[0].sum() + 4.0 * squared[2, :30].sum()) / batch.mask.sum()
    torch.testing.assert_close(weighted, expected, rtol=1e-6, atol=1e-7)


def test_learns_first_order_lag(tmp_path):
    config = TrainConfig(epochs=20, truncation_steps=20, chunk_steps=40, learning_rate=1e-2,
                         early_stopping_patience=20, log_every=2)
    result = run_fit(TinyGRU(), lag_data(4, seed=10, steps=80), lag_data(2, seed=100, steps=120), config, tmp_path)
    assert result.best_val_loss < result.initial_val_loss / 5
    assert result.epochs_run == 20 and not result.stopped_early
    assert all(entry["steps_per_second"] > 0 for entry in result.history)
    lines = [json.loads(line) for line in (tmp_path / "grad_norms.jsonl").read_text().splitlines()]
    steps_per_epoch = 4 * (80 // 40)
    assert [line["step"] for line in lines] == list(range(2, 20 * steps_per_epoch + 1, 2))
    assert {"rnn.l0", "rnn.l1", "head", "total"} <= set(lines[0])
    assert all(math.isfinite(line["total"]) and line["total"] > 0 for line in lines)


def test_gradient_norms_per_layer():
    model = TinyGRU(bidirectional=True)
    sequence_gradients(model, lag_batch(2, 30, seed=3), truncation_steps=None)
    norms = gradient_norms(model)
    assert set(norms) == {"rnn.l0", "rnn.l0_reverse", "rnn.l1", "rnn.l1_reverse", "head", "total"}
    assert norms["total"] == pytest.approx(math.sqrt(sum(v ** 2 for k, v in norms.items() if k != "total")))


class Interrupted(Exception):
    pass


def test_resume_reproduces_uninterrupted_run(tmp_path):
    config = TrainConfig(epochs=4, truncation_steps=15, learning_rate=5e-3, warmup_steps=3, early_stopping_patience=9)
    train, val = lag_data(3, seed=20), lag_data(1, seed=200)
    straight_model = TinyGRU(dropout=0.2)  # dropout: the torch RNG state must be restored too
    straight = run_fit(straight_model, train, val, config, tmp_path / "straight")

    def crash_at_epoch_two(epoch):
        if epoch == 2:
            raise Interrupted
        return train

    with pytest.raises(Interrupted):
        run_fit(TinyGRU(dropout=0.2), crash_at_epoch_two, val, config, tmp_path / "resumed")
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["progress"]["epoch"] == 2
    resumed_model = TinyGRU(dropout=0.2, seed=99)  # different initial weights: everything must come from last.pt
    resumed = run_fit(resumed_model, train, val, config, tmp_path / "resumed", resume=True)

    for (name, a), (_, b) in zip(straight_model.state_dict().items(), resumed_model.state_dict().items()):
        assert torch.equal(a, b), name
    timing = {"seconds", "steps_per_second"}
    strip = lambda history: [{k: v for k, v in entry.items() if k not in timing} for entry in history]  # noqa: E731
    assert strip(resumed.history) == strip(straight.history) and len(resumed.history) == 4
    assert resumed.best_val_loss == straight.best_val_loss
    assert ((tmp_path / "resumed" / "grad_norms.jsonl").read_text()
            == (tmp_path / "straight" / "grad_norms.jsonl").read_text())


def test_fresh_run_refuses_to_overwrite_and_resume_needs_checkpoint(tmp_path):
    config = TrainConfig(epochs=1, truncation_steps=20)
    run_fit(TinyGRU(), lag_data(1, seed=1), lag_data(1, seed=2), config, tmp_path / "run")
    with pytest.raises(ConfigError, match="already holds last.pt"):
        run_fit(TinyGRU(), lag_data(1, seed=1), lag_data(1, seed=2), config, tmp_path / "run")
    with pytest.raises(DataError, match="checkpoint not found"):
        run_fit(TinyGRU(), lag_data(1, seed=1), lag_data(1, seed=2), config, tmp_path / "empty", resume=True)


def assert_finite_checkpoint(path):
    checkpoint = torch.load(path, weights_only=True)
    assert all(torch.isfinite(tensor).all() for tensor in checkpoint["model_state"].values())
    return checkpoint


def test_nan_input_raises_and_keeps_last_good_checkpoint(tmp_path):
    train = lag_data(2, seed=30)
    poisoned = lag_data(2, seed=30)
    poisoned[1].inputs[0, 5, 0] = float("nan")
    config = TrainConfig(epochs=5, truncation_steps=20)
    with pytest.raises(TrainingDiverged, match=r"epoch 3, step \d+: loss nan"):
        run_fit(TinyGRU(), lambda epoch: poisoned if epoch == 2 else train, lag_data(1, seed=300), config, tmp_path)
    assert assert_finite_checkpoint(tmp_path / "last.pt")["progress"]["epoch"] == 2
    assert_finite_checkpoint(tmp_path / "best.pt")


def test_huge_learning_rate_raises_divergence(tmp_path):
    config = TrainConfig(epochs=5, truncation_steps=10, learning_rate=1e4, grad_clip=None, schedule="constant")
    with pytest.raises(TrainingDiverged, match=r"epoch 1, step \d+: .*lower learning_rate"):
        run_fit(TinyGRU(), lag_data(2, seed=40), lag_data(1, seed=400), config, tmp_path)
    assert assert_finite_checkpoint(tmp_path / "last.pt")["progress"]["epoch"] == 0  # the untrained model
    assert_finite_checkpoint(tmp_path / "best.pt")


def test_early_stopping_keeps_best_weights(tmp_path):
    # validation wants half the gain that training teaches: val improves, then gets worse
    val = lag_data(1, seed=500, gain=0.5)
    config = TrainConfig(epochs=30, truncation_steps=20, learning_rate=1e-2, schedule="constant",
                         early_stopping_patience=3)
    result = run_fit(TinyGRU(), lag_data(2, seed=50), val, config, tmp_path)
    assert result.stopped_early and result.epochs_run == result.best_epoch + 3 < 30
    assert result.best_epoch >= 1 and result.best_val_loss < result.initial_val_loss
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["progress"]["epoch"] == result.best_epoch
    model = TinyGRU(seed=7)
    model.load_state_dict(best["model_state"])
    assert evaluate_loss(model, val, truncation_steps=20) == pytest.approx(result.best_val_loss, rel=1e-6)


def test_bad_inputs_are_refused(tmp_path):
    with pytest.raises(DataError, match="mask"):
        SequenceBatch(torch.zeros(2, 5, 1), torch.zeros(2, 5, 1), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ConfigError, match="normalisation"):
        fit(TinyGRU(), lag_data(1, seed=1), lag_data(1, seed=2), TrainConfig(epochs=1), run_dir=tmp_path,
            model_config=MODEL_CONFIG, normalisation={"mean": torch.zeros(2)})
