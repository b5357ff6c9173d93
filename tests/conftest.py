"""Fixtures shared by the test files: real photos that ship inside installed packages (never the research data)."""

import numpy as np
import pytest
import torch
from PIL import Image


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="module")
def grace_hopper():
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(Image.open(f).convert("RGB"))


@pytest.fixture()
def one_torch_thread():
    """One intra-op thread, as the training subprocesses use: modest on a shared 2-core machine, and comparable runs
    (a module opts in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
