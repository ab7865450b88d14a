"""Petastorm-based PyTorch loader for request-level samples, imported by training code."""
