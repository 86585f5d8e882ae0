"""Facts about hybrid.train.config: what a TrainConfig accepts (errors name the field), and the
torch runtime settings it names, restored after use."""

from __future__ import annotations

import pytest
import torch

from hybrid.train.config import TrainConfig, deterministic_algorithms, resolve_device, torch_threads
from sim.config import validate
from sim.errors import ConfigError


def test_defaults_are_truncated_bptt_with_cosine_adamw_on_one_cpu_thread():
    config = TrainConfig()
    assert (config.epochs, config.batch_size, config.truncation_steps, config.chunk_steps) == (50, 8, 200, None)
    assert (config.learning_rate, config.weight_decay, config.schedule) == (1e-3, 1e-4, "cosine")
    assert (config.grad_clip, config.device, config.threads, config.seed) == (1.0, "cpu", 1, 0)


@pytest.mark.parametrize(("raw", "message"), [
    ({"learning_rate": -1e-3}, r"field 'learning_rate' = -0.001: Input should be greater than 0"),
    ({"learning_rate": 0.0}, "field 'learning_rate' = 0.0"),
    ({"lr": 1e-3}, "unknown key 'lr'; allowed keys: epochs, batch_size"),
    ({"epochs": 0}, "field 'epochs' = 0"),
    ({"divergence_factor": 1.0}, "field 'divergence_factor' = 1.0"),
    ({"grad_clip": 0.0}, "field 'grad_clip'"),
    ({"schedule": "linear"}, "schedule"),
    ({"truncation_steps": 20, "chunk_steps": 30}, "chunk_steps = 30 is not a multiple of truncation_steps = 20"),
    ({"truncation_steps": None, "chunk_steps": 40}, "chunk_steps = 40 needs truncation_steps"),
    ({"device": "gpu7"}, "device = 'gpu7': not a torch device"),
], ids=["negative-lr", "zero-lr", "unknown-key", "no-epochs", "divergence-factor", "grad-clip", "schedule",
        "chunk-not-multiple", "chunk-without-truncation", "device"])
def test_bad_entries_are_refused_naming_the_field(raw, message):
    with pytest.raises(ConfigError, match=message) as caught:
        validate(TrainConfig, raw, "train")
    assert str(caught.value).startswith("train: ")


def test_an_optimizer_step_spans_the_chunk_else_the_truncation_else_the_whole_sequence():
    assert TrainConfig(truncation_steps=20, chunk_steps=60).steps_per_update == 60
    assert TrainConfig(truncation_steps=20).steps_per_update == 20
    assert TrainConfig(truncation_steps=None).steps_per_update is None


def test_torch_threads_sets_the_count_inside_and_restores_the_previous_one():
    previous = torch.get_num_threads()
    inside = 2 if previous != 2 else 1
    with torch_threads(inside):
        assert torch.get_num_threads() == inside
    assert torch.get_num_threads() == previous
    with pytest.raises(RuntimeError, match="boom"), torch_threads(inside):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == previous


def test_deterministic_algorithms_are_on_inside_and_restored_after():
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    with deterministic_algorithms():
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
    assert (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()) == before


def test_resolve_device_names_cuda_when_it_is_missing():
    assert resolve_device("cpu") == torch.device("cpu")
    if torch.cuda.is_available():
        assert resolve_device("cuda:0").type == "cuda"
    else:
        with pytest.raises(ConfigError, match="device = 'cuda:0': CUDA is not available here; allowed: 'cpu'"):
            resolve_device("cuda:0")
