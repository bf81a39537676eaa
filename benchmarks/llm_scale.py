"""Scale: SparseGPT, Wanda and iCBS --refit measured side by side, from SmolLM2 to 7B shapes.

    python benchmarks/llm_scale.py smollm2            # SmolLM2-135M, 50% and 2:4, CPU
    python benchmarks/llm_scale.py layer7b            # one Llama-2-7B-shaped decoder layer, CPU
    python benchmarks/llm_scale.py random --device cuda --threads 16   # whole random models
    python benchmarks/llm_scale.py refit              # refit methods per product, SmolLM2 layer

Every method runs in its own process (so each peak memory is its own) with the same thread
count; results are merged into benchmarks/results/llm_scale.json under the section's name.

``smollm2``: ``prune-llm`` on the anchors' protocol (docs/anchors.md) without the dense-input
errors (which cost one more forward pass per layer that the reference code does not make):
wall time of the pruning, peak RSS, perplexity, mean layer error on the pruning inputs.
``layer7b``: a one-layer Llama with Llama-2-7B's shapes (hidden 4096, MLP 11008, 32 heads) and
Hugging Face's initialisation (normal, std 0.02: the scale of the real weights), fed 32 x 512
random tokens; its seven linears' Grams are captured once and every method prunes the same
captured layer. ``random``: whole random-weight Llamas of SmolLM2-135M's and Llama-2-7B's
shapes in bf16, end to end on ``--device`` (the GPU rows: no real weights travel to the lent
GPU), 32 x 512 random calibration tokens, time, peak RSS and device memory, mean layer error.
``refit``: on SmolLM2's decoder layer 3 (dense inputs), from SparseGPT's mask and weights, the
layer error after k products with ``G`` of the refit's Jacobi-preconditioned conjugate
gradients, of conjugate gradients preconditioned by SparseGPT's damped inverse Hessian (two
products per iteration) and of ADMM on ``(G + rho I)^-1`` (Boza 2024; one product per
iteration, one to start and one for the final residual, plus its own factorisation), against
the least squares solution (256 iterations of the conjugate gradients).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "llm_scale.json"


def icbs(iterations: int, refit: tuple[int, int]) -> list[str]:
    """iCBS --refit from SparseGPT's mask, gpu-anneal with the sweeps measured to suffice."""
    return [
        *("--method", "icbs", "--refit", "--start", "sparsegpt", "--solver", "gpu-anneal"),
        *("--iterations", str(iterations), "--block-size", "64"),
        *("--refit-iterations", str(refit[0]), str(refit[1])),
        *("--solver-opt", "num_sweeps=10", "--solver-opt", "num_reads=2"),
    ]


RUNS = {
    "sparsegpt": ["--method", "sparsegpt"],
    "wanda": ["--method", "wanda"],
    "icbs-refit": icbs(2, (2, 6)),
    "icbs-refit-float64": [*icbs(2, (2, 6)), "--precision", "float64"],
    "icbs-refit-fast": icbs(1, (1, 4)),
    "sparsegpt-refit": ["--method", "sparsegpt", "--refit"],
}
PATTERNS = {"50": ["--pattern", "unstructured"], "2:4": ["--pattern", "2:4"]}
LINEARS = [
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
]


def save(section: str, name: str, result: dict, path: Path = RESULTS) -> None:
    """Merge one result into the JSON file (re-read first: other sections may have finished)."""
    merged = json.loads(path.read_text()) if path.exists() else {}
    merged.setdefault(section, {})[name] = result
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merged, indent=1))


def env(threads: int) -> dict[str, str]:
    return os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def smollm2(args: argparse.Namespace, device: str = "cpu", section: str = "smollm2") -> None:
    """``prune-llm`` per run; prints and saves time, memory, perplexity, layer error."""
    for pattern in args.patterns.split(","):
        for run in args.runs.split(","):
            name = f"{run}-{pattern}"
            out = args.out / section / name.replace(":", "-")
            cmd = [sys.executable, "-m", "qubo_prune.apps.cli", "prune-llm", "--model", "smollm2"]
            cmd += [*RUNS[run], *PATTERNS[pattern], "--out", str(out), "--device", device]
            cmd += ["--no-dense-errors", "--no-progress", "--eval-windows", str(args.eval_windows)]
            subprocess.run(cmd, check=True, env=env(args.threads))
            report = json.loads((out / "report.json").read_text())
            keep = ("perplexity", "mean_layer_error", "mean_mask_error", "prune_seconds")
            keep += ("prune_cpu_seconds",)
            keep += ("peak_rss_mb", "device", "peak_device_mb")
            r = {k: report.get(k) for k in keep} | {"command": cmd, "threads": args.threads}
            save(section, name, r)
            print(
                f"{name:24s} ppl {r['perplexity']:8.3f}  err {r['mean_layer_error']:.5f}  "
                f"{r['prune_seconds']:7.1f} s  {r['peak_rss_mb']:6.0f} MB RSS",
                flush=True,
            )


SHAPES = {  # published shapes of the models the random-weight runs stand in for
    "llama-2-7b": {
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "vocab_size": 32000,
        "rms_norm_eps": 1e-5,
    },
    "smollm2-135m": {
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "vocab_size": 49152,
        "rms_norm_eps": 1e-5,
        "rope_theta": 100000.0,
        "tie_word_embeddings": True,
    },
}
TINY = {  # a few-second stand-in of any shape, for checking the script
    "hidden_size": 64,
    "intermediate_size": 172,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "vocab_size": 500,
}


def llama_config(shape: str, layers: int | None = None, tiny: bool = False):
    """A ``LlamaConfig`` of a named shape (all its layers unless ``layers`` is given)."""
    from transformers import LlamaConfig

    fields = SHAPES[shape] | (TINY if tiny else {})
    if layers is not None:
        fields = fields | {"num_hidden_layers": layers}
    return LlamaConfig(**fields, max_position_embeddings=4096)


def random_llama(shape: str, dtype: torch.dtype, tiny: bool, seed: int = 0):
    """A Llama of ``shape`` with Hugging Face's initialisation (normal, std 0.02: the scale of
    real weights), built directly in ``dtype`` on the CPU."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        return LlamaForCausalLM(llama_config(shape, tiny=tiny)).eval()
    finally:
        torch.set_default_dtype(default)


def capture_layer(path: Path, windows: int, seqlen: int, tiny: bool, seed: int = 0) -> None:
    """Grams of a one-layer 7B-shaped Llama's linears over random tokens, saved to ``path``."""
    from transformers import LlamaForCausalLM

    from qubo_prune.llm.calibration import first_inputs
    from qubo_prune.llm.layers import decoder_layers, linear_layers
    from qubo_prune.pruners.calibration import GramHooks

    torch.manual_seed(seed)
    model = LlamaForCausalLM(llama_config("llama-2-7b", 1, tiny)).eval()
    ids = torch.randint(0, model.config.vocab_size, (windows, seqlen))
    layer = decoder_layers(model)[0]
    linears = linear_layers(layer)
    start = time.perf_counter()
    with torch.no_grad():
        stream = first_inputs(model, ids)
        hooks = GramHooks(linears)
        stream.run(layer, hooks)
        hooks.remove()
    accs = {id(acc): acc for acc in hooks.grams.values()}
    torch.save(
        {
            "weights": {n: m.weight.detach().clone() for n, m in linears.items()},
            "gram_of": {n: str(id(acc)) for n, acc in hooks.grams.items()},
            "grams": {str(k): acc.G for k, acc in accs.items()},
            "tokens": windows * seqlen,
            "capture_seconds": time.perf_counter() - start,
        },
        path,
    )


def config_of(options: list[str]):
    """The ``LayerwiseConfig`` that ``prune-llm`` builds from these options."""
    from qubo_prune.apps.cli import build_parser, layerwise_config

    return layerwise_config(build_parser().parse_args(["prune-llm", "--out", "-", *options]))


def prune_captured(path: Path, method: str, extra: list[str], threads: int) -> dict:
    """Prune the captured layer's seven linears with one method; time and peak memory."""
    from qubo_prune.apps.prune_llm import peak_rss_mb
    from qubo_prune.backends.registry import get_backend
    from qubo_prune.objectives.reconstruction import GramAccumulator, layer_error
    from qubo_prune.pruners.methods import LayerInput, prune_matrix

    torch.set_num_threads(threads)
    data = torch.load(path)
    accs = {}
    for key, G in data["grams"].items():
        accs[key] = GramAccumulator(G.shape[0])
        accs[key].G, accs[key].tokens = G, data["tokens"]
    config = config_of([*RUNS[method], *extra])
    solver = (
        get_backend(config.solver, **config.solver_options) if config.method == "icbs" else None
    )
    base = peak_rss_mb()
    seconds, errors = {}, {}
    start, cpu = time.perf_counter(), time.process_time()
    for name in LINEARS:
        t = time.perf_counter()
        acc = accs[data["gram_of"][name]]
        res = prune_matrix(LayerInput(data["weights"][name], acc, 0, name), config, solver)
        seconds[name] = time.perf_counter() - t
        errors[name] = layer_error(data["weights"][name], res.weights, acc.G)
    total = time.perf_counter() - start
    return {
        "seconds": total,
        "cpu_seconds": time.process_time() - cpu,
        "per_linear_seconds": seconds,
        "layer_errors": errors,
        "mean_layer_error": sum(errors.values()) / len(errors),
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_mb": base,
        "threads": threads,
        "options": [*RUNS[method], *extra],
    }


def layer7b(args: argparse.Namespace) -> None:
    path = args.out / ("layer7b-tiny.pt" if args.tiny else "layer7b.pt")
    if not path.exists():  # in its own process, so this one holds no model while methods run
        path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, __file__, "capture", "--capture", str(path)]
        cmd += ["--windows", str(args.windows), "--seqlen", str(args.seqlen)]
        subprocess.run(
            [*cmd, *(["--tiny"] if args.tiny else [])], check=True, env=env(args.threads)
        )
    section, results = "layer7b", args.out / "llm_scale-tiny.json" if args.tiny else RESULTS
    for pattern in args.patterns.split(","):
        for run in args.runs.split(","):
            cmd = [sys.executable, __file__, "prune-captured", "--capture", str(path)]
            cmd += ["--method", run, "--threads", str(args.threads)]
            cmd += ["--extra", " ".join(PATTERNS[pattern])]
            out = subprocess.run(cmd, check=True, env=env(args.threads), capture_output=True)
            r = json.loads(out.stdout.decode().strip().splitlines()[-1])
            save(section, f"{run}-{pattern}", r | {"command": cmd}, results)
            print(
                f"{run}-{pattern:5s} {r['seconds']:8.1f} s ({r['cpu_seconds']:.1f} s CPU)  "
                f"err {r['mean_layer_error']:.5f}  "
                f"peak RSS {r['peak_rss_mb']:6.0f} MB (after loading {r['rss_before_mb']:.0f})",
                flush=True,
            )


def random_run(args: argparse.Namespace) -> dict:
    """One method on every layer of a random-weight Llama of ``args.shape`` in bf16, one
    decoder layer at a time on ``args.device`` while the model waits on the CPU."""
    from qubo_prune.apps.prune_llm import device_name, peak_device_mb, peak_rss_mb
    from qubo_prune.llm.pipeline import prune_causal_lm

    options = [*RUNS[args.method], *PATTERNS[args.pattern]]
    config = config_of(options)
    device = torch.device(args.device)
    building = time.perf_counter()
    model = random_llama(args.shape, torch.bfloat16, args.tiny)
    params = sum(p.numel() for p in model.parameters())
    build_seconds = time.perf_counter() - building
    ids = torch.randint(0, model.config.vocab_size, (args.windows, args.seqlen))
    start = time.perf_counter()

    def done(i: int) -> None:  # a per-layer trace: an interrupted run still tells its pace
        print(f"layer {i} done at {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)

    reports = prune_causal_lm(
        model, ids, config, dense_errors=False, progress=False, on_layer_done=done, device=device
    )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return {
        "seconds": time.perf_counter() - start,
        "build_seconds": build_seconds,
        "mean_layer_error": sum(r.error for r in reports) / len(reports),
        "peak_rss_mb": peak_rss_mb(),
        "peak_device_mb": peak_device_mb(device),
        "device": device_name(device),
        "parameters": params,
        "layers": model.config.num_hidden_layers,
        "dtype": "bfloat16",
        "calibration": [args.windows, args.seqlen],
        "threads": torch.get_num_threads(),
        "options": options,
    }


def random_models(args: argparse.Namespace) -> None:
    """``random_run`` of every shape, pattern and method, each in its own process."""
    results = args.out / "llm_scale-tiny.json" if args.tiny else RESULTS
    for shape in args.shapes.split(","):
        for pattern in args.patterns.split(","):
            for run in args.runs.split(","):
                cmd = [sys.executable, __file__, "random-run", "--shape", shape]
                cmd += ["--method", run, "--pattern", pattern, "--device", args.device]
                cmd += ["--threads", str(args.threads), "--windows", str(args.windows)]
                cmd += ["--seqlen", str(args.seqlen), *(["--tiny"] if args.tiny else [])]
                out = subprocess.run(cmd, check=True, env=env(args.threads), stdout=subprocess.PIPE)
                r = json.loads(out.stdout.decode().strip().splitlines()[-1])
                save(f"random-{shape}", f"{run}-{pattern}", r | {"command": cmd}, results)
                print(
                    f"{shape} {run}-{pattern:5s} {r['seconds']:8.1f} s on {r['device']}  "
                    f"err {r['mean_layer_error']:.5f}  peak RSS {r['peak_rss_mb']:.0f} MB, "
                    f"device {r['peak_device_mb']} MB",
                    flush=True,
                )


def smollm2_layer(index: int, windows: int) -> dict[str, tuple]:
    """``{linear: (W, accumulator)}`` of SmolLM2's decoder layer ``index`` on dense inputs."""
    from qubo_prune.apps.smollm2 import load_model
    from qubo_prune.llm.calibration import first_inputs
    from qubo_prune.llm.layers import decoder_layers, linear_layers
    from qubo_prune.llm.text import PYTHON_DOCS, calibration_windows, token_stream
    from qubo_prune.pruners.calibration import GramHooks

    model, tokenizer = load_model("smollm2")
    ids = calibration_windows(token_stream(tokenizer, PYTHON_DOCS / "tutorial"), windows, 512)
    with torch.no_grad():
        stream = first_inputs(model, ids)
        for layer in decoder_layers(model)[:index]:
            stream.hidden = stream.run(layer)
        layer = decoder_layers(model)[index]
        hooks = GramHooks(linear_layers(layer))
        stream.run(layer, hooks)
        hooks.remove()
    return {n: (m.weight.detach().clone(), hooks.grams[n]) for n, m in linear_layers(layer).items()}


def refit_curves(args: argparse.Namespace) -> None:
    """Layer error after k products with ``G``, per refit method (see the module docstring)."""
    from qubo_prune.core.patterns import parse_pattern
    from qubo_prune.objectives.reconstruction import layer_error
    from qubo_prune.objectives.refit import refit, residual
    from qubo_prune.pruners.baselines import sparsegpt

    f64, products = torch.float64, (2, 4, 6, 8, 12)
    for name, (W, acc) in smollm2_layer(3, args.windows).items():
        W0, G = W.double(), acc.G
        for pattern in ("unstructured", "2:4"):
            K = acc.inverse_hessian(f64)
            start, mask = sparsegpt(W0, K, parse_pattern(pattern, 0.5))
            err = lambda X, W0=W0, G=G: layer_error(W0, X, G)  # noqa: E731
            state = residual(W0, start, G)
            curves = {
                "jacobi-cg": [err(refit(W0, mask, G, state, k).weights) for k in products],
                "inverse-hessian-pcg": [
                    err(pcg_inverse(W0, mask, G, K, start, k // 2)) for k in products
                ],
                "admm": [err(admm(W0, mask, G, start, k - 2)) for k in products],
            }
            best = err(refit(W0, mask, G, state, 256).weights)
            r = {"products": products, "start": err(start), "optimum": best, **curves}
            save("refit", f"{name}-{pattern}", r)
            print(name, pattern, json.dumps(r), flush=True)


def pcg_inverse(W0, mask, G, K, start, iterations: int) -> torch.Tensor:
    """Masked CG preconditioned by the damped inverse Hessian ``K`` (two products each)."""
    keep = (~mask).to(G.dtype)
    X = start.clone()
    r = ((W0 - X) @ G) * keep
    z = (r @ K) * keep
    p, rz = z, (r * z).sum(dim=1, keepdim=True)
    for _ in range(iterations):
        Ap = (p @ G) * keep
        alpha = rz / (p * Ap).sum(dim=1, keepdim=True).clamp(min=1e-300)
        X, r = X + alpha * p, r - alpha * Ap
        z = (r @ K) * keep
        rz_next = (r * z).sum(dim=1, keepdim=True)
        p, rz = z + rz_next / rz.clamp(min=1e-300) * p, rz_next
    return X


def admm(W0, mask, G, start, iterations: int) -> torch.Tensor:
    """ADMM on the masked problem with ``rho`` = the mean diagonal (best of 0.3x, 1x, 3x)."""
    keep = (~mask).to(G.dtype)
    rho = G.diagonal().mean()
    Kr = torch.cholesky_inverse(torch.linalg.cholesky(G + rho * torch.eye(len(G), dtype=G.dtype)))
    b = (W0 @ G) @ Kr
    Z, U = start.clone(), torch.zeros_like(start)
    for _ in range(iterations):
        X = b + rho * ((Z - U) @ Kr)
        Z = (X + U) * keep
        U = U + X - Z
    return Z


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "section",
        choices=[
            "smollm2",
            "layer7b",
            "random",
            "refit",
            "capture",
            "prune-captured",
            "random-run",
        ],
    )
    parser.add_argument("--runs", default="sparsegpt,wanda,icbs-refit")
    parser.add_argument("--patterns", default="50,2:4")
    parser.add_argument("--shapes", default="smollm2-135m,llama-2-7b", help="random models")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-windows", type=int, default=64)
    parser.add_argument("--windows", type=int, default=32)
    parser.add_argument("--seqlen", type=int, default=512)
    parser.add_argument("--tiny", action="store_true", help="tiny shapes: checks the script")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-scale"))
    parser.add_argument("--capture", type=Path)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="llama-2-7b")
    parser.add_argument("--method", default="icbs-refit")
    parser.add_argument("--pattern", choices=sorted(PATTERNS), default="50")
    parser.add_argument("--extra", default="", help="more prune-llm options of the method")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here (the GPU rows are never required by CI)")
        return 1
    if args.section == "prune-captured":
        extra = args.extra.split()
        print(json.dumps(prune_captured(args.capture, args.method, extra, args.threads)))
    elif args.section == "random-run":
        print(json.dumps(random_run(args)))
    elif args.section == "smollm2":
        smollm2(args, args.device, "smollm2" if args.device == "cpu" else "smollm2-gpu")
    elif args.section == "layer7b":
        layer7b(args)
    elif args.section == "random":
        random_models(args)
    elif args.section == "capture":
        capture_layer(args.capture, args.windows, args.seqlen, args.tiny)
    elif args.section == "refit":
        refit_curves(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
