"""Helpers shared by the test layers: real processes, signals, control planes."""
