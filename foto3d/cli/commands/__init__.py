"""One module per top-level command; each exposes ``register(subparsers)``.

Modules are discovered, so adding a command means adding a module here.
Set ``ORDER`` in a module to place it in ``foto3d --help``.
"""
