"""Support for tests and benchmarks: real servers on free ports, one way to wait, test doubles.

``tests/`` and ``bench/`` both use it, so a benchmark never imports a test module. Nothing
here is shipped: the wheel holds ``foto3d`` only.
"""
