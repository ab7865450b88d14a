"""STCA (and VISTA) models, training loop and evaluation."""
