"""Data, training, importance estimation and mask learning: everything that fits weights."""
