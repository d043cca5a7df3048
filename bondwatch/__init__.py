"""BondWatch: shared pieces every stage uses (site config, paths, CLI, service wiring)."""

__version__ = "0.1.0"
