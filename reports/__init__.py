"""Accuracy–throughput reports: pandas tables and matplotlib figures (imported lazily)."""
