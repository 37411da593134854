"""Shared test code: fakes, stand-ins and builders imported by tests (fixtures stay in conftest.py files)."""
