"""``qubo-prune prune-llm``: load a causal LM, prune it, evaluate perplexity, save a sparse
checkpoint. The calibration pipeline is :mod:`qubo_prune.llm.pipeline`; this module is the job."""

from __future__ import annotations

import json
import resource
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from qubo_prune.apps.smollm2 import load_model
from qubo_prune.llm.checkpoint import save_pruned
from qubo_prune.llm.perplexity import perplexity
from qubo_prune.llm.pipeline import prune_causal_lm
from qubo_prune.llm.text import PYTHON_DOCS, calibration_windows, evaluation_windows, token_stream
from qubo_prune.pruners.methods import LayerwiseConfig

__all__ = ["device_name", "format_summary", "peak_device_mb", "peak_rss_mb", "run_prune_llm"]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def peak_device_mb(device: torch.device) -> float | None:
    """Peak memory torch allocated on a CUDA ``device`` so far (``None`` on the CPU)."""
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def device_name(device: torch.device) -> str:
    """``cpu`` or the accelerator's name, for reports and benchmark tables."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def run_prune_llm(
    model_name: str,
    config: LayerwiseConfig,
    out: Path,
    calib_text: Path = PYTHON_DOCS / "tutorial",
    eval_text: Path = PYTHON_DOCS / "library",
    calib_windows: int = 32,
    eval_windows: int = 64,
    seqlen: int = 512,
    dense_errors: bool = True,
    progress: bool = True,
    device: str = "cpu",
) -> dict[str, Any]:
    """Prune, evaluate, save; returns (and writes to ``out/report.json``) the summary.

    ``device`` is where everything runs: each decoder layer's forward passes and pruning math
    while the model waits on the CPU (one layer on the device at a time), then the evaluation.
    """
    try:  # a bad device fails here, before the model loads
        device = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r}: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} asked, but torch sees no CUDA device here")
    model, tokenizer = load_model(model_name)
    if tokenizer is None:
        raise FileNotFoundError(f"model folder {str(model_name)!r} holds no tokenizer")
    calib = calibration_windows(token_stream(tokenizer, calib_text), calib_windows, seqlen)
    evals = evaluation_windows(token_stream(tokenizer, eval_text), eval_windows, seqlen)
    out.mkdir(parents=True, exist_ok=True)
    start, cpu = time.perf_counter(), time.process_time()
    reports = prune_causal_lm(model, calib, config, out, dense_errors, progress, device=device)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    peak_device = peak_device_mb(device)
    ppl = perplexity(model.to(device), evals, progress)
    save_pruned(model, tokenizer, out)
    mean = lambda key: sum(getattr(r, key) for r in reports) / len(reports)  # noqa: E731
    summary = {
        "model": str(model_name),
        "config": config.to_dict(),
        "perplexity": ppl,
        "mean_layer_error": mean("error"),
        "mean_mask_error": mean("mask_error"),
        "mean_dense_layer_error": mean("dense_error") if dense_errors else None,
        "prune_seconds": seconds,
        "prune_cpu_seconds": cpu_seconds,
        "peak_rss_mb": peak_rss_mb(),
        "device": device_name(device),
        "peak_device_mb": peak_device,
        "calib_windows": len(calib),
        "eval_windows": len(evals),
        "layers": [asdict(r) for r in reports],
    }
    (out / "report.json").write_text(json.dumps(summary, indent=1))
    return summary


def format_summary(s: dict[str, Any]) -> str:
    """The final table of ``prune-llm``."""
    c = s["config"]
    rows = [
        ("model", s["model"]),
        ("method / pattern", f"{c['method']} / {c['pattern']} at sparsity {c['sparsity']}"),
        ("perplexity", f"{s['perplexity']:.3f}"),
        ("mean layer error (pruning inputs)", f"{s['mean_layer_error']:.5f}"),
    ]
    if c["refit"]:
        rows.append(("mean layer error before refit", f"{s['mean_mask_error']:.5f}"))
    if s["mean_dense_layer_error"] is not None:
        rows.append(("mean layer error (dense inputs)", f"{s['mean_dense_layer_error']:.5f}"))
    rows += [
        ("pruning time", f"{s['prune_seconds']:.1f} s"),
        ("peak memory (RSS)", f"{s['peak_rss_mb']:.0f} MB"),
    ]
    if s.get("peak_device_mb") is not None:
        rows.append((f"peak memory ({s['device']})", f"{s['peak_device_mb']:.0f} MB"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
