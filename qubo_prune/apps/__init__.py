"""The jobs users run: the command line, the garment demo, solver comparison, LLM pruning, and
the embedded defaults they cache (the garment classifier, SmolLM2). Sits on top of everything.
"""
