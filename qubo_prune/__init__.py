"""qubo-prune: iCBS pruning with every block a cardinality-constrained QUBO."""
