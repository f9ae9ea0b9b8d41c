"""One package per service. A service imports ``proto`` and ``libs`` only; services talk over the bus."""
