"""Chaos scenarios: real beats and workers, faults injected, every run accounted for (see conftest.py)."""
