"""``qubo-prune prune-vision``: load an image classifier, prune it, measure top-1 accuracy,
save a sparse checkpoint.

The model is the embedded ``deit-fmnist`` (:mod:`qubo_prune.apps.deit_fmnist`) or a local DeiT /
ViT folder; images are Fashion-MNIST's for the embedded model, or a dataset folder (``train/``
and ``val/`` in the ``ImageFolder`` layout). The ``layer`` objective walks the encoder layers
with any per-layer method (:mod:`qubo_prune.vision.pipeline`); the ``loss`` objective runs iCBS on
the classification loss (:mod:`qubo_prune.vision.model_loss`). Every option is checked, and the
pattern checked against the model's config, before any weight or image loads.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qubo_prune.apps.deit_fmnist import DEIT_FMNIST, DeitRecipe, deit_fmnist_dir
from qubo_prune.apps.prune_llm import peak_rss_mb
from qubo_prune.backends.registry import check_options, get_spec
from qubo_prune.core.choices import check_counts
from qubo_prune.pruners.methods import LayerwiseConfig
from qubo_prune.vision.images import Images, dataset_splits
from qubo_prune.vision.model import encoder_input_widths, read_config

__all__ = ["OBJECTIVES", "VisionJob", "format_vision_summary", "run_prune_vision"]

OBJECTIVES = ("layer", "loss")


@dataclass(frozen=True)
class VisionJob:
    """What to prune and how to measure it, besides the per-layer config.

    ``calib_images`` are drawn from the training split (seed: the config's); ``eval_images``
    (0: all) are the first of the evaluation split. ``epochs``, ``block_size`` and
    ``max_cost`` (USD a paid solver may spend) are the loss objective's iCBS settings (the
    layer objective's live in the config).
    """

    model: str = DEIT_FMNIST
    images: Path | None = None
    objective: str = "layer"
    calib_images: int = 1024
    eval_images: int = 0
    batch_size: int = 128
    epochs: int = 10
    block_size: int = 1024
    dense_errors: bool = True
    progress: bool = True
    max_cost: float | None = None

    def check(self, config: LayerwiseConfig) -> Any:
        """Every option against the model's config (read without weights); returns it."""
        if self.objective not in OBJECTIVES:
            raise ValueError(
                f"unknown objective {self.objective!r}; choose {' or '.join(OBJECTIVES)}"
            )
        check_counts(
            *(
                (f"--{label.replace('_', '-')}", getattr(self, label), 1)
                for label in ("calib_images", "batch_size", "epochs", "block_size")
            )
        )
        config.held_out(-(-self.calib_images // self.batch_size))  # the batches are the windows
        pattern = config.parsed_pattern()
        if self.objective == "loss" and (config.method != "icbs" or pattern.kind == "nm"):
            raise ValueError(
                "the loss objective is iCBS with a density per tensor: use --method icbs and "
                "--pattern unstructured or layer"
            )
        if self.objective == "loss" and config.fit_inputs != "pruned":
            raise ValueError(
                "--fit-inputs chooses the inputs each layer is fitted to; the loss objective "
                "fits no layer (use --objective layer)"
            )
        if config.method == "icbs":
            spec = get_spec(config.solver)
            spec.require()
            check_options(config.solver, config.solver_options)
            size = self.block_size if self.objective == "loss" else config.block_size
            spec.check_size(size, config.solver_options)
            if spec.capabilities.paid and self.objective == "layer":
                raise ValueError(
                    f"{config.solver!r} is a paid solver; the layer objective has no budget "
                    "guard: use --objective loss with --max-cost"
                )
        if self.model == DEIT_FMNIST and self.images is not None:
            raise ValueError(f"{DEIT_FMNIST} is evaluated on Fashion-MNIST; drop --images")
        if self.model != DEIT_FMNIST and self.images is None:
            raise ValueError(
                f"--images DIR is needed for {self.model!r} (only {DEIT_FMNIST} has data)"
            )
        model_config = (
            DeitRecipe().model_config() if self.model == DEIT_FMNIST else read_config(self.model)
        )
        if self.images is not None:
            dataset_splits(self.images)
        if pattern.kind == "nm":
            for what, width in encoder_input_widths(model_config).items():
                if width % pattern.m:
                    raise ValueError(
                        f"pattern {pattern} does not fit the model: {what} is {width}, "
                        f"not a multiple of {pattern.m}"
                    )
        return model_config


def _load(job: VisionJob, seed: int) -> tuple[Any, Path, Images, Images]:
    """``(model, its folder, calibration images, evaluation images)``."""
    from qubo_prune.vision.images import image_folder
    from qubo_prune.vision.model import load_image_classifier

    folder = deit_fmnist_dir(progress=job.progress) if job.model == DEIT_FMNIST else Path(job.model)
    model = load_image_classifier(folder)
    if job.images is None:
        from qubo_prune.apps.deit_fmnist import fashion_mnist_images
        from qubo_prune.apps.garment import load_fashion_mnist

        data = load_fashion_mnist()
        train, evals = fashion_mnist_images(data, "train"), fashion_mnist_images(data, "test")
    else:
        train_dir, eval_dir = dataset_splits(job.images)
        train = image_folder(train_dir, model.config, folder)
        evals = image_folder(eval_dir, model.config, folder)
    return model, folder, train.sample(job.calib_images, seed), evals.head(job.eval_images)


def run_prune_vision(job: VisionJob, config: LayerwiseConfig, out: Path) -> dict[str, Any]:
    """Check, load, prune, evaluate, save; returns (and writes to ``out/report.json``) the
    summary."""
    from qubo_prune.vision.accuracy import top1
    from qubo_prune.vision.checkpoint import save_pruned_classifier
    from qubo_prune.vision.model_loss import dense_layer_errors, prune_vision_loss
    from qubo_prune.vision.pipeline import prune_vision_model

    job.check(config)
    model, folder, calib, evals = _load(job, config.seed)
    out.mkdir(parents=True, exist_ok=True)
    dense_accuracy = top1(model, evals)
    start = time.perf_counter()
    if job.objective == "layer":
        reports = prune_vision_model(
            model, calib, config, out, job.dense_errors, job.progress, job.batch_size
        )
    else:
        errors = dense_layer_errors(model, calib, job.batch_size)
        result = prune_vision_loss(
            model,
            calib,
            1.0 - config.sparsity,
            config.solver,
            config.solver_options,
            checkpoint=out / "icbs-checkpoint.pt",
            progress=job.progress,
            max_cost=job.max_cost,
            block_size=job.block_size,
            epochs=job.epochs,
            seed=config.seed,
        )
        reports = errors()
    seconds = time.perf_counter() - start
    accuracy = top1(model, evals)
    save_pruned_classifier(model, out, folder)
    layers = [asdict(r) for r in reports]
    summary = {
        "model": job.model,
        "objective": job.objective,
        "config": config.to_dict(),
        "calib_images": len(calib),
        "eval_images": len(evals),
        "dense_accuracy": dense_accuracy,
        "accuracy": accuracy,
        "mean_layer_error": sum(r["error"] for r in layers) / len(layers),
        "mean_dense_layer_error": _mean(layers, "dense_error"),
        "prune_seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "layers": layers,
    }
    if job.objective == "loss":
        summary["accepted_steps"] = f"{result.accepted_steps}/{len(result.history)}"
    (out / "report.json").write_text(json.dumps(summary, indent=1))
    return summary


def _mean(layers: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in layers if r[key] is not None]
    return sum(values) / len(values) if values else None


def format_vision_summary(s: dict[str, Any]) -> str:
    """The final table of ``prune-vision``."""
    c = s["config"]
    method = "icbs on the model's loss" if s["objective"] == "loss" else c["method"]
    rows = [
        ("model", s["model"]),
        ("method / pattern", f"{method} / {c['pattern']} at sparsity {c['sparsity']}"),
        ("top-1 accuracy", f"{s['accuracy']:.2f}% (dense {s['dense_accuracy']:.2f}%)"),
        ("mean layer error (pruning inputs)", f"{s['mean_layer_error']:.5f}"),
    ]
    if s["mean_dense_layer_error"] is not None:
        rows.append(("mean layer error (dense inputs)", f"{s['mean_dense_layer_error']:.5f}"))
    rows += [
        ("images (calibration / evaluation)", f"{s['calib_images']} / {s['eval_images']}"),
        ("pruning time", f"{s['prune_seconds']:.1f} s"),
        ("peak memory (RSS)", f"{s['peak_rss_mb']:.0f} MB"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
