"""PSNR and SSIM against cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from foto3d.libs.splat.quality import psnr, ssim


def test_identical_images_are_perfect() -> None:
    img = np.random.default_rng(0).uniform(size=(32, 40, 3)).astype(np.float32)
    assert psnr(img, img) == math.inf
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-9)


def test_psnr_of_known_noise() -> None:
    rng = np.random.default_rng(1)
    img = np.full((64, 64, 3), 0.5)
    # +-0.1 everywhere: MSE exactly 0.01, so 20 dB.
    noisy = img + rng.choice([-0.1, 0.1], size=img.shape)
    assert psnr(img, noisy) == pytest.approx(20.0, abs=1e-9)
    gauss = img + rng.normal(0, 0.05, size=img.shape)
    assert psnr(img, gauss) == pytest.approx(10 * math.log10(1 / 0.05**2), abs=0.1)


def test_ssim_of_constant_images_is_the_luminance_term() -> None:
    # Flat images have no variance, so SSIM reduces to (2ab + C1) / (a^2 + b^2 + C1).
    a, b = 0.3, 0.6
    c1 = 0.01**2
    want = (2 * a * b + c1) / (a * a + b * b + c1)
    assert ssim(np.full((24, 24), a), np.full((24, 24), b)) == pytest.approx(want, rel=1e-9)


def test_ssim_falls_with_noise_and_is_symmetric() -> None:
    rng = np.random.default_rng(2)
    img = rng.uniform(size=(48, 48, 3))
    light = np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1)
    heavy = np.clip(img + rng.normal(0, 0.2, img.shape), 0, 1)
    s_light, s_heavy = ssim(img, light), ssim(img, heavy)
    assert 1.0 > s_light > s_heavy > 0.0
    assert ssim(light, img) == pytest.approx(s_light, abs=1e-12)
    # Structure matters, not just error energy: a shifted copy has the same histogram but low SSIM.
    assert ssim(img, np.roll(img, 5, axis=1)) < 0.2


def test_metric_errors_are_readable() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="too small"):
        ssim(np.zeros((8, 8)), np.zeros((8, 8)))
