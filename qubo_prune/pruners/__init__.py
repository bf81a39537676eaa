"""The loops that use the objectives and a backend: iCBS on a model's loss, iCBS per layer, and
the baselines (magnitude, Wanda, SparseGPT) they are compared with.

May import :mod:`qubo_prune.core`, :mod:`qubo_prune.objectives` and :mod:`qubo_prune.backends`.
"""
