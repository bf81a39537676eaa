"""``qubo-prune prune-llm``: load a causal LM, prune it, evaluate perplexity, save a sparse
checkpoint. The calibration pipeline is :mod:`qubo_prune.llm.pipeline`; this module is the job."""

from __future__ import annotations

import json
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from qubo_prune.apps.lock import locked
from qubo_prune.apps.smollm2 import SMOLLM2, model_folder
from qubo_prune.backends.gate import admit
from qubo_prune.core.choices import check_counts
from qubo_prune.llm.checkpoint import save_pruned
from qubo_prune.llm.model import inspect_folder, load_causal_lm
from qubo_prune.llm.perplexity import perplexity
from qubo_prune.llm.pipeline import prune_causal_lm
from qubo_prune.llm.text import (
    FORTUNES,
    PYTHON_DOCS,
    evaluation_windows,
    mixed_calibration_windows,
    source_hint,
    token_stream,
)
from qubo_prune.pruners.methods import LayerwiseConfig
from qubo_prune.pruners.validation import check_block_memory, check_finite_weights

__all__ = [
    "LLMJob",
    "device_name",
    "format_summary",
    "peak_device_mb",
    "peak_rss_mb",
    "plan",
    "run_prune_llm",
]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


CALIB_TEXTS = (PYTHON_DOCS / "tutorial",)
EVAL_TEXTS = (PYTHON_DOCS / "library", FORTUNES / "songs-poems")  # in domain, out of domain


@dataclass(frozen=True)
class LLMJob:
    """What a ``prune-llm`` run reads and where it runs, checked when made.

    ``calib_texts``: the calibration windows are shared out among them. ``eval_texts``: one
    perplexity each (the first is the report's ``perplexity``).
    """

    model: str = SMOLLM2
    calib_texts: tuple[Path, ...] = CALIB_TEXTS
    eval_texts: tuple[Path, ...] = EVAL_TEXTS
    calib_windows: int = 32
    eval_windows: int = 64
    seqlen: int = 512
    dense_errors: bool = True
    device: str = "cpu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "calib_texts", tuple(Path(t) for t in self.calib_texts))
        object.__setattr__(self, "eval_texts", tuple(Path(t) for t in self.eval_texts))
        check_counts(
            ("--calib-windows", self.calib_windows, max(1, len(self.calib_texts))),
            ("--eval-windows", self.eval_windows, 1),
            ("--seqlen", self.seqlen, 2),
        )
        try:
            device = torch.device(self.device)
        except RuntimeError as err:
            raise ValueError(f"unknown device {self.device!r}: {err}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {self.device!r} asked, but torch sees no CUDA device here")
        if not self.calib_texts or not self.eval_texts:
            raise ValueError("prune-llm needs at least one calibration and one evaluation text")
        names = [text_name(t) for t in self.eval_texts]
        if len(set(names)) < len(names):
            raise ValueError(f"evaluation texts need distinct names, got {', '.join(names)}")
        for source in (*self.calib_texts, *self.eval_texts):
            if not source.exists():
                raise FileNotFoundError(
                    f"text source {str(source)!r} does not exist{source_hint(source)}"
                )


def text_name(source: Path) -> str:
    """A text's name in reports: its file or folder name."""
    return source.name or str(source)


def plan(job: LLMJob, config: LayerwiseConfig, max_cost: float | None, dry_run: bool):
    """Everything checked before the weights load: the folder, the context, the block sizes,
    and the solver's options and price for every block the run will solve."""
    info = inspect_folder(model_folder(job.model))
    if info.context is not None and job.seqlen > info.context:
        raise ValueError(f"--seqlen {job.seqlen} is beyond the model's context ({info.context})")
    config.held_out(job.calib_windows)  # enough windows left to fit
    if config.method != "icbs":
        return info, None
    check_block_memory(min(config.block_size, info.widest), config.rows_per_batch)
    solves = config.iterations * info.rows
    cost = admit(config.solver, config.solver_options, solves, max_cost, dry_run)
    return info, cost


def peak_device_mb(device: torch.device) -> float | None:
    """Peak memory torch allocated on a CUDA ``device`` so far (``None`` on the CPU)."""
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def device_name(device: torch.device) -> str:
    """``cpu`` or the accelerator's name, for reports and benchmark tables."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def run_prune_llm(
    job: LLMJob,
    config: LayerwiseConfig,
    out: Path,
    max_cost: float | None = None,
    dry_run: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Prune, evaluate, save; returns (and writes to ``out/report.json``) the summary.

    ``job.device`` is where everything runs: each decoder layer's forward passes and pruning
    math while the model waits on the CPU (one layer on the device at a time), then the
    evaluation. A dry run prices and stops.
    """
    info, cost = plan(job, config, max_cost, dry_run)
    if dry_run:
        solves = cost.solves if cost is not None else 0
        usd = cost.usd if cost is not None else 0.0
        print(
            f"dry run: {solves} block solves over {len(info.shapes)} weights, estimated ${usd:.2f}"
        )
        return {"dry_run": True, "solves": solves, "cost_usd": usd}
    with locked(out):
        model, tokenizer = load_causal_lm(info.path, progress)
        if tokenizer is None:
            raise FileNotFoundError(f"model folder {str(info.path)!r} holds no tokenizer")
        check_finite_weights(model)
        device = torch.device(job.device)
        calib = mixed_calibration_windows(
            [token_stream(tokenizer, t) for t in job.calib_texts], job.calib_windows, job.seqlen
        )
        evals = {
            text_name(t): evaluation_windows(
                token_stream(tokenizer, t), job.eval_windows, job.seqlen
            )
            for t in job.eval_texts
        }
        start, cpu = time.perf_counter(), time.process_time()
        reports = prune_causal_lm(
            model, calib, config, out, job.dense_errors, progress, device=device
        )
        times = {
            "prune_seconds": time.perf_counter() - start,
            "prune_cpu_seconds": time.process_time() - cpu,
            "device": device_name(device),
            "peak_device_mb": peak_device_mb(device),
        }
        model.to(device)
        ppl = {name: perplexity(model, windows, progress) for name, windows in evals.items()}
        save_pruned(model, tokenizer, out)
        summary = _summary(job, config, reports, ppl, times, len(calib), evals)
        (out / "report.json").write_text(json.dumps(summary, indent=1))
    return summary


def _summary(job, config, reports, ppl, times, calib, evals) -> dict[str, Any]:
    mean = lambda key: sum(getattr(r, key) for r in reports) / len(reports)  # noqa: E731
    return {
        "model": str(job.model),
        "config": config.to_dict(),
        "perplexity": next(iter(ppl.values())),
        "perplexities": ppl,
        "calib_texts": [str(t) for t in job.calib_texts],
        "eval_texts": [str(t) for t in job.eval_texts],
        "mean_layer_error": mean("error"),
        "mean_mask_error": mean("mask_error"),
        "mean_dense_layer_error": mean("dense_error") if job.dense_errors else None,
        **times,
        "peak_rss_mb": peak_rss_mb(),
        "calib_windows": calib,
        "eval_windows": {name: len(windows) for name, windows in evals.items()},
        "layers": [asdict(r) for r in reports],
    }


def format_summary(s: dict[str, Any]) -> str:
    """The final table of ``prune-llm``."""
    c = s["config"]
    rows = [
        ("model", s["model"]),
        ("method / pattern", f"{c['method']} / {c['pattern']} at sparsity {c['sparsity']}"),
        *((f"perplexity ({name})", f"{ppl:.3f}") for name, ppl in s["perplexities"].items()),
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
