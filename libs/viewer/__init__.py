"""What the web viewer needs beside the splat: a config with a good default camera, and a thumbnail."""

from foto3d.libs.viewer.config import ViewerConfig, build_viewer_config, robust_bounds
from foto3d.libs.viewer.thumbnail import render_thumbnail

__all__ = ["ViewerConfig", "build_viewer_config", "render_thumbnail", "robust_bounds"]
