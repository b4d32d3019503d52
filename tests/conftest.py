"""Fixtures shared by several test modules."""
import os

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """Two cores shared with other jobs: one torch thread avoids oversubscription (5-10x faster here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# Under pytest-xdist (`make test`: one worker per core) each worker, and every process it starts,
# computes on one thread: two workers of two threads each on two cores only fight.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)

# Sweeps in tests run in-process (one worker) so monkeypatched functions apply; the worker
# pool has its own test (tests/test_sweep.py::test_workers_train_each_run_once_with_the_same_numbers).
os.environ.setdefault("BLURB_WORKERS", "1")
