"""Vision models: DeiT / ViT image classifiers from local folders and CNNs, image sets, the
block walk (encoder layers, or a CNN's modules), top-1 accuracy, iCBS on the classification loss
and sparse checkpoints. The per-layer method comes from :mod:`qubo_prune.pruners.methods`.
"""
