"""foto3d: photographed products to web-ready 3D Gaussian splats."""

__version__ = "0.1.0"
