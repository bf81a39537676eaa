"""``--device cuda`` runs the CPU's code: the same masks from the deterministic methods, the same
density and a like error from iCBS, and the model back where it was. Needs a CUDA device: CI has
none, so these run only on a lent GPU (docs/benchmarks.md says when they last did)."""

import pytest
import torch

from qubo_prune.core.patterns import check_mask, parse_pattern
from qubo_prune.llm.pipeline import prune_causal_lm
from qubo_prune.pruners.methods import LayerwiseConfig
from tests.helpers import tiny_llama, tokens

pytest.importorskip("transformers")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def prune_on(device: str, config: LayerwiseConfig, dtype: torch.dtype):
    model = tiny_llama().to(dtype)
    reports = prune_causal_lm(model, tokens(3), config, progress=False, device=device)
    return model, sum(r.error for r in reports)


@pytest.mark.parametrize("method", ["wanda", "sparsegpt", "icbs"])
@pytest.mark.parametrize("pattern", ["unstructured", "2:4"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_prunes_like_the_cpu(method, pattern, dtype):
    config = LayerwiseConfig(
        method=method,
        pattern=pattern,
        solver="gpu-anneal",
        solver_options={"seed": 0},
        block_size=8,
        iterations=2,
        refit=method == "icbs",
    )
    cpu, cpu_error = prune_on("cpu", config, dtype)
    gpu, gpu_error = prune_on("cuda", config, dtype)
    assert all(p.device.type == "cpu" and p.dtype == dtype for p in gpu.parameters())
    for name, mask in gpu.pruning_masks.items():
        assert mask.device.type == "cpu"
        weight = dict(gpu.named_parameters())[name]
        assert bool((weight[mask] == 0).all())
        exact = method != "sparsegpt" or pattern == "2:4"  # SparseGPT: exact per layer
        check_mask(mask, parse_pattern(pattern if exact else "layer"))
        if method != "icbs":  # same arithmetic up to float rounding: near-ties may differ
            same = (mask == cpu.pruning_masks[name]).double().mean().item()
            assert same >= 0.98, name
    # iCBS draws other random numbers on the GPU: a like error, not the same masks
    assert gpu_error == pytest.approx(cpu_error, rel=0.02 if method != "icbs" else 0.1)
