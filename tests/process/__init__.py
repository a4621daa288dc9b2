"""Tests that run subprocesses or measure time, and need no database or Redis."""
