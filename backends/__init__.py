"""Everything about solvers (installed as ``qubo_prune.backends``): the registry, the composites
that transform a block's problem for a sampler, prices, credentials, size limits, and one
module (or subpackage) per backend family. Imports only :mod:`qubo_prune.core`.
"""
