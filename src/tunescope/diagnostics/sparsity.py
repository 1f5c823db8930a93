"""Gradient quasi-sparsity: how much of the squared gradient norm the largest p% of entries carry.

METHODS.md section 2 (SIFT, arXiv 2312.11875): gradients of a pre-trained model are quasi-sparse
("1% of components carry 99% of the gradient"). For a gradient g (one tensor, or all measured
tensors concatenated) and a fraction p, with k = floor(p * n) + 1 (SIFT's count, capped at n):
    share_p = sum of the k largest g_i^2 / sum of all g_i^2.
We also report the smallest fraction of entries whose squared values reach 99% of ||g||^2
(`entries_for_99`), the direct counterpart of the paper's sentence.
`per_kind` pools the tensors of one role (q_proj, gate_proj, BERT's attention.output.dense, ...) across blocks and
reports the same numbers for each pool (`tensor_kinds` names the roles).
The gradient is summed over the given batches (padding is masked by the model's own loss).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from tunescope.diagnostics.options import DEFAULT_FRACTIONS  # declared there (light)
from tunescope.models.layers import block_index_of, model_layout

CURVE_POINTS = 25


def _k(p: float, n: int) -> int:
    return min(math.floor(p * n) + 1, n)


def topk_shares(sq: Tensor, fractions: Sequence[float]) -> dict[float, float]:
    """share_p = (sum of the k largest entries of sq) / sum(sq), k = floor(p n) + 1, for each p.

    sq: 1-D tensor of squared gradient entries (>= 0). One topk at the largest k serves every p.
    """
    n = sq.numel()
    total = float(sq.double().sum())
    if n == 0 or total == 0.0:
        return {p: 0.0 for p in fractions}
    kmax = max(_k(p, n) for p in fractions)
    top = torch.topk(sq.float(), kmax, sorted=True).values.double().cumsum(0)
    return {p: float(top[_k(p, n) - 1]) / total for p in fractions}


def entries_for_share(sq: Tensor, share: float = 0.99) -> float:
    """Smallest fraction of entries whose squared values sum to >= share * sum(sq) (sq: 1-D, >= 0)."""
    n = sq.numel()
    total = float(sq.double().sum())
    if n == 0 or total == 0.0:
        return 0.0
    cum = torch.sort(sq.float(), descending=True).values.double().cumsum(0)
    k = int(torch.searchsorted(cum, torch.tensor([share * total], dtype=torch.float64)).item()) + 1
    return min(k, n) / n


@dataclass
class SparsityResult:
    """Per-tensor and overall shares; `curve` is (fractions, overall shares) on a log grid for plotting."""

    fractions: list[float]
    overall: dict[float, float]
    entries_for_99: float
    per_tensor: list[dict] = field(default_factory=list)
    curve: dict = field(default_factory=dict)
    num_params: int = 0
    num_batches: int = 0

    def to_dict(self) -> dict:
        return {"fractions": self.fractions,
                "overall": {str(p): s for p, s in self.overall.items()},
                "entries_for_99": self.entries_for_99,
                "per_tensor": self.per_tensor, "curve": self.curve,
                "num_params": self.num_params, "num_batches": self.num_batches}


def block_weight_names(model: nn.Module) -> list[str]:
    """Default measured tensors: every 2-D weight inside the transformer blocks (attention and MLP)."""
    layout = model_layout(model)
    return [n for n, p in model.named_parameters() if p.dim() == 2 and block_index_of(n, layout) is not None]


def tensor_kinds(names: Iterable[str], block_prefixes: Sequence[str]) -> dict[str, str]:
    """The role ("kind") of each weight, the same name in every block: {parameter name: kind}.

    path = the module path with the block prefix (everything up to and including the layer index, as in
    ModelLayout.block_prefixes) and the trailing `.weight` removed; kind = the shortest dotted suffix of path that
    is not a dotted suffix of another path among `names` (else path itself). Llama self_attn.q_proj -> q_proj,
    mlp.gate_proj -> gate_proj; BERT attention.self.query -> query, and its two dense modules stay apart:
    attention.output.dense, intermediate.dense, output.dense; GPT-2 attn.c_proj vs mlp.c_proj. For a weight outside
    the blocks (a --targets choice such as word_embeddings) path is its whole module path.
    """
    def path_of(name: str) -> str:
        path = name.removesuffix(".weight")
        prefix = next((p for p in block_prefixes if path.startswith(p)), "")
        return path[len(prefix):]

    paths = {n: path_of(n) for n in names}
    others = set(paths.values())

    def kind(path: str) -> str:
        parts = path.split(".")
        for k in range(1, len(parts)):
            suffix = ".".join(parts[-k:])
            if not any(q != path and (q == suffix or q.endswith("." + suffix)) for q in others):
                return suffix
        return path  # e.g. BERT output.dense: a suffix of attention.output.dense, so only the whole path names it

    return {n: kind(p) for n, p in paths.items()}


def sparsity_per_kind(grads: dict[str, Tensor], kinds: dict[str, str],
                      fractions: Sequence[float] = DEFAULT_FRACTIONS) -> dict[str, dict]:
    """{kind: {"overall": {str(p): share_p}, "entries_for_99", "num_params"}}: sparsity_from_grads on the gradients
    of each kind alone, so share_p is taken over that kind's entries of all blocks pooled (first-seen kind order)."""
    groups: dict[str, list[str]] = {}
    for n in grads:
        groups.setdefault(kinds[n], []).append(n)
    out = {}
    for kind, members in groups.items():
        res = sparsity_from_grads({n: grads[n] for n in members}, fractions)
        out[kind] = {"overall": {str(p): s for p, s in res.overall.items()}, "entries_for_99": res.entries_for_99,
                     "num_params": res.num_params}
    return out


def accumulate_gradients(model: nn.Module, batches: Iterable[dict], names: Sequence[str]) -> dict[str, Tensor]:
    """Sum over batches of dL/dW for the named parameters (fp32 copies); the model is left as it was.

    requires_grad is switched on only for the named tensors and restored afterwards (in finally).
    """
    params = dict(model.named_parameters())
    saved = {n: p.requires_grad for n, p in params.items()}
    was_training = model.training
    grads: dict[str, Tensor] = {}
    try:
        for n, p in params.items():
            p.requires_grad_(n in names)
            p.grad = None
        model.train()
        for batch in batches:
            model(**batch).loss.backward()
            for n in names:
                g = params[n].grad
                if g is not None:
                    grads[n] = grads[n].add_(g.float()) if n in grads else g.detach().float().clone()
                    params[n].grad = None
    finally:
        for n, p in params.items():
            p.requires_grad_(saved[n])
            p.grad = None
        model.train(was_training)
    return grads


def sparsity_from_grads(grads: dict[str, Tensor], fractions: Sequence[float] = DEFAULT_FRACTIONS,
                        num_batches: int = 0) -> SparsityResult:
    """Shares per tensor and over all given tensors concatenated (formulas in the module docstring)."""
    fractions = [float(p) for p in fractions]
    per_tensor = []
    for n, g in grads.items():
        sq = g.reshape(-1).float().pow(2)
        per_tensor.append({"name": n, "numel": sq.numel(),
                           "share": {str(p): s for p, s in topk_shares(sq, fractions).items()},
                           "entries_for_99": entries_for_share(sq, 0.99)})
    all_sq = torch.cat([g.reshape(-1).float().pow(2) for g in grads.values()])
    grid = sorted(set([float(x) for x in torch.logspace(-5, 0, CURVE_POINTS).tolist()] + fractions))
    curve_shares = topk_shares(all_sq, grid)
    return SparsityResult(fractions=fractions, overall=topk_shares(all_sq, fractions),
                          entries_for_99=entries_for_share(all_sq, 0.99), per_tensor=per_tensor,
                          curve={"fraction": grid, "share": [curve_shares[p] for p in grid]},
                          num_params=all_sq.numel(), num_batches=num_batches)


def gradient_sparsity(model: nn.Module, batches: Sequence[dict], *, names: Sequence[str] | None = None,
                      fractions: Sequence[float] = DEFAULT_FRACTIONS) -> SparsityResult:
    """Quasi-sparsity of the gradient summed over `batches` (see module docstring for the formulas).

    names: parameters to measure (default: 2-D weights of the transformer blocks).
    """
    names = list(names) if names is not None else block_weight_names(model)
    grads = accumulate_gradients(model, batches, names)
    return sparsity_from_grads({n: grads[n] for n in names if n in grads}, fractions, num_batches=len(batches))
