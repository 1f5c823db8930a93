"""One-time conversion of a GGUF checkpoint into a safetensors model folder (loads ~30x faster after)."""

from __future__ import annotations

from pathlib import Path

import torch


def gguf_to_safetensors(folder: Path) -> None:
    """Dequantise the single *.gguf in `folder` to fp32, save model + tokenizer there, delete the gguf."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    (gguf,) = list(folder.glob("*.gguf"))
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf.name)
    # The dequantised model is a plain fp32 model: drop the quantiser so save_pretrained writes it as such.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    gguf.unlink()
