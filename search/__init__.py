"""Exact search: which activations to drop under a latency budget (two-stage dynamic program)."""
