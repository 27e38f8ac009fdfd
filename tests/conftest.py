"""Shared test configuration.

Hypothesis profiles: ``ci`` (derandomized, fixed example budget; selected when the
environment variable CI is set) and ``dev`` (random, the default elsewhere). Select one
explicitly with ``HYPOTHESIS_PROFILE=ci``.
"""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=30,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under ``pytest -n N`` every worker gets one intra-op thread: with N workers on N cores,
    # OpenMP threads contending for the same cores make tiny-tensor steps ~100x slower.
    import torch

    torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data folder ``../shared/data``; skips the test (with the reason) when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} not present (see shared/data/README.md)")
    return SHARED_DATA


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tests with one torch thread, restoring the previous count afterwards.

    Tiny tensors and small convolutions run fastest on one thread when the 2 cores are
    shared: more OpenMP threads than free cores make torch's thread pool spin (measured
    10-100x slower). Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
