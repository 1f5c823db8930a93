"""SIFT's k selected positions of a tensor, held in as few bytes as the layout allows.

The positions are sorted flat indices into a tensor of `numel` entries. Two layouts; `PackedIndices.pack` keeps the
smaller one for each tensor:

- "blocks": the flat index space is cut into blocks of B = 2**15 entries. `offsets` holds idx mod B as int16 [k]
  (0 <= idx mod B < 2**15 fits a signed 16-bit integer), `starts` the CSR pointers int32 [n_blocks + 1], so the
  entries of block j are offsets[starts[j] : starts[j + 1]] and idx = B * j + offset.
  Bytes: 2 k + 4 (ceil(numel / B) + 1), i.e. 2 bytes per entry plus 4 bytes per 32,768 entries of the tensor.
- "flat": idx itself, int32 [k] when numel <= 2**31 (int64 beyond). Bytes: 4 k (8 k).

At the 1-3% rates SIFT runs at, blocks cost about 2.0-2.1 bytes per entry (int64 indices: 8); below a rate of
about 1 / 16,384 the block pointers outweigh the saving and the flat layout wins. `flat()` decodes to int64 [k]
on the tensor's device: a temporary of the step, freed when the step is done.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

BLOCK_BITS = 15
BLOCK = 1 << BLOCK_BITS  # offsets within a block are < 2**15: they fit int16


@dataclass
class PackedIndices:
    """Sorted flat indices (see the module docstring for the two layouts)."""

    numel: int
    k: int
    values: torch.Tensor  # "blocks": int16 offsets [k]; "flat": int32 / int64 indices [k]
    starts: torch.Tensor | None = None  # "blocks": int32 [n_blocks + 1]; "flat": None

    @property
    def layout(self) -> str:
        return "flat" if self.starts is None else "blocks"

    @staticmethod
    def block_bytes(numel: int, k: int) -> int:
        """Bytes of the "blocks" layout: 2 k + 4 (ceil(numel / B) + 1)."""
        return 2 * k + 4 * (-(-numel // BLOCK) + 1)

    @staticmethod
    def flat_bytes(numel: int, k: int) -> int:
        """Bytes of the "flat" layout: 4 k (int32) when numel <= 2**31, else 8 k."""
        return (4 if numel <= 2 ** 31 else 8) * k

    @classmethod
    def pack(cls, indices: torch.Tensor, numel: int) -> PackedIndices:
        """Pack sorted, distinct flat indices (any integer dtype) into the smaller layout, on their device."""
        idx = indices.reshape(-1).to(torch.int64)
        k = idx.numel()
        if k and (int(idx[0]) < 0 or int(idx[-1]) >= numel or bool((idx[1:] <= idx[:-1]).any())):
            raise ValueError(f"indices must be sorted, distinct and in [0, {numel}), got {k} indices "
                             f"from {int(idx.min())} to {int(idx.max())}")
        if cls.block_bytes(numel, k) < cls.flat_bytes(numel, k):
            n_blocks = -(-numel // BLOCK)
            counts = torch.bincount(idx >> BLOCK_BITS, minlength=n_blocks)
            starts = torch.zeros(n_blocks + 1, dtype=torch.int32, device=idx.device)
            starts[1:] = counts.cumsum(0)
            return cls(numel, k, (idx & (BLOCK - 1)).to(torch.int16), starts)
        dtype = torch.int32 if numel <= 2 ** 31 else torch.int64
        return cls(numel, k, idx.to(dtype))

    def flat(self) -> torch.Tensor:
        """The flat indices as int64 [k] (sorted)."""
        if self.starts is None:
            return self.values.to(torch.int64)
        counts = self.starts[1:] - self.starts[:-1]
        blocks = torch.arange(counts.numel(), device=self.values.device, dtype=torch.int64) << BLOCK_BITS
        # output_size: no device-to-host read of the total on an accelerator
        return torch.repeat_interleave(blocks, counts, output_size=self.k) + self.values.to(torch.int64)

    def tensors(self) -> list[torch.Tensor]:
        """The tensors that hold the indices (what `nbytes` counts)."""
        return [self.values] if self.starts is None else [self.values, self.starts]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors())
