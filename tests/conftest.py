"""Fixtures shared by the test files: real photos that ship inside installed packages (never the research data)."""

import numpy as np
import pytest
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
