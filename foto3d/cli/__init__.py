"""The `foto3d` command line. Each command lives in its own module under ``commands``."""
