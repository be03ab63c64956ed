"""Latency lookup tables (CSV) and the latency predictor that fills them."""
