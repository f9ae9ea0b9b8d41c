"""Small scenes shared by the splat quality tests."""

from __future__ import annotations

import numpy as np
import pytest

from foto3d.libs.splat.model import Splat
from foto3d.libs.splat.synthetic import synthetic_object


def random_splat(n: int, seed: int = 0, sh_degree: int = 3) -> Splat:
    """Gaussians of random size, rotation, opacity and colour in a unit ball around the origin."""
    rng = np.random.default_rng(seed)
    k = (sh_degree + 1) ** 2 - 1
    return Splat(
        means=rng.normal(0, 0.5, (n, 3)),
        scales=np.log(rng.uniform(0.02, 0.15, (n, 3))),
        quats=rng.normal(size=(n, 4)),
        opacities=rng.normal(0, 2, n),
        sh0=rng.normal(0, 1, (n, 3)),
        shN=rng.normal(0, 0.3, (n, k, 3)),
    )


@pytest.fixture(scope="session")
def scene() -> Splat:
    """The synthetic product scene, small enough to render in a fraction of a second."""
    return synthetic_object(20_000, sh_degree=3, seed=1)
