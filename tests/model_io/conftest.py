"""Shared fixtures for the model_io tests: the tiny config, seeded params and an exported image."""
from __future__ import annotations

import pytest

from sim.config import get_config
from sim.params import random_params


@pytest.fixture(scope="session")
def tiny():
    return get_config("tiny")


@pytest.fixture(scope="session")
def tiny_params(tiny):
    return random_params(tiny, 0, style="unit")


@pytest.fixture()
def tiny_image_dir(tiny, tiny_params, tmp_path):
    """A fresh weight image of random_params(tiny, 0) (tests may corrupt it)."""
    from model_io.export import export
    export(tiny, tiny_params, tmp_path / "img")
    return tmp_path / "img"
