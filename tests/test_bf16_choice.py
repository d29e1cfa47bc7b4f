"""Fast mode's dtype for the frozen part is chosen by measuring, not by CPU flags."""

from __future__ import annotations

from gptlib.speed import kernels


def test_the_cpu_choice_follows_the_measured_speedup(monkeypatch):
    monkeypatch.delenv(kernels.BF16_ENV, raising=False)
    monkeypatch.setattr(kernels, "cpu_bf16_speedup", lambda: 2.6)
    assert kernels.bf16_is_fast("cpu") and "2.6x" in kernels.bf16_choice("cpu")
    monkeypatch.setattr(kernels, "cpu_bf16_speedup", lambda: 0.05)  # bf16 emulated, slow
    assert not kernels.bf16_is_fast("cpu") and "float32" in kernels.bf16_choice("cpu")


def test_the_environment_overrides_the_measurement(monkeypatch):
    monkeypatch.setattr(kernels, "cpu_bf16_speedup", lambda: 0.05)
    monkeypatch.setenv(kernels.BF16_ENV, "on")
    assert kernels.bf16_is_fast("cpu") and "GPTLIB_BF16=on" in kernels.bf16_choice("cpu")
    monkeypatch.setenv(kernels.BF16_ENV, "off")
    monkeypatch.setattr(kernels, "cpu_bf16_speedup", lambda: 9.0)
    assert not kernels.bf16_is_fast("cpu")


def test_the_measurement_is_taken_once_per_process():
    kernels.cpu_bf16_speedup.cache_clear()
    first = kernels.cpu_bf16_speedup()
    assert first > 0 and kernels.cpu_bf16_speedup() == first
    assert kernels.cpu_bf16_speedup.cache_info().hits >= 1
