"""The fault and bad-input suite (a package, so its conftest is faults.conftest beside tests/conftest.py)."""
