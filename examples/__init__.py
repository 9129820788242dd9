"""Worked examples that the tests run (see docs/)."""
