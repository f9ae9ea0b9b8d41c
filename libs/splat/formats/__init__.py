"""One module per splat file format, each with ``read(path) -> Splat`` and ``write(splat, path, **opts)``."""
