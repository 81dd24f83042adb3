"""Run the network tests single-threaded.

Their tensors are tiny; on a busy two-core machine, OpenMP worker threads
waiting for each other cost far more than they save.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
