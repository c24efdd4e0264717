"""torch's process-wide settings (thread count, quantized engine) while the scheduler's worker
threads run several models at once: one thread's setting never changes another's."""

from __future__ import annotations

import threading

import pytest
import torch
from torch import nn

from reoptd.models.torch import StaticInt8, torch_threads


def test_torch_threads_in_two_threads_do_not_change_each_other() -> None:
    a_inside, b_inside, a_checked = threading.Event(), threading.Event(), threading.Event()
    seen: list[int] = []

    def a() -> None:
        with torch_threads(3):
            a_inside.set()
            b_inside.wait(timeout=1)  # without serialisation b is inside now, at 1 thread
            seen.append(torch.get_num_threads())
            a_checked.set()

    def b() -> None:
        a_inside.wait(timeout=5)
        with torch_threads(1):
            b_inside.set()
            a_checked.wait(timeout=5)

    before = torch.get_num_threads()
    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert seen == [3]
    assert torch.get_num_threads() == before


def test_static_quantization_leaves_the_quantized_engine_as_it_was() -> None:
    engines = torch.backends.quantized.supported_engines
    if "qnnpack" not in engines or "x86" not in engines:
        pytest.skip("needs the qnnpack and x86 quantized engines")
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    before = torch.backends.quantized.engine
    torch.backends.quantized.engine = "qnnpack"
    try:
        StaticInt8("torch.ao").quantize(net, torch.randn(32, 4))  # the eager fallback
        assert torch.backends.quantized.engine == "qnnpack"
    finally:
        torch.backends.quantized.engine = before
