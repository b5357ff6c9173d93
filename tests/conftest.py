"""Fixtures shared by the test files: real photos that ship inside installed packages (never the research data), and
the committed mesh-motion model that the synthetic faces are built from."""

from pathlib import Path

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


@pytest.fixture(scope="module")
def mesh_motion():
    """The committed mesh-motion model (``tests.test_mouth_fill.synthetic_face`` builds faces from its mean mesh)."""
    from expr_models.components import model_class

    return model_class("mesh_motion").from_pretrained(Path(__file__).resolve().parents[1] / "checkpoints"
                                                      / "mesh_motion")
