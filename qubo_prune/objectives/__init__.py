"""The two objectives of the math note, each turning weights and data into blocks.

``loss`` (objective 1, the change of a model's loss) and ``reconstruction`` (objective 2, a
linear layer's output error). They import only :mod:`qubo_prune.core`: no loop, no solver.
"""
