"""Causal language models: loading, calibration capture, the layer-walking pipeline, text
windows, perplexity and sparse checkpoints. The per-layer method comes from
:mod:`qubo_prune.pruners.methods`; this package only walks the layers and feeds them data.
"""
