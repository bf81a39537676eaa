"""The per-block mathematics: blocks, decoding, masks, patterns, scores and the shared step.

Imports nothing else of qubo-prune (tests/test_layout.py checks it), so every solver and every
objective speaks the same language without depending on either.
"""
