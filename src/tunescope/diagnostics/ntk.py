"""Empirical NTK of a classifier split into a pre-train-effective part P and an FT-effective part F.

Tomihari & Sato (NeurIPS 2024) write the classifier as f(x) = V phi(x) + b (see diagnostics/features.py for
what phi and (V, b) are per architecture) and split the eNTK over the trainable parameters at the start of
fine-tuning, Theta(x, x') = J_theta f(x) J_theta f(x')^T  [C x C], into
    P(x, x') = (<phi(x), phi(x')> + 1) I_C        (gradient w.r.t. the head (V, b); "+1" only if b exists)
    F(x, x') = V J_phi(x) J_phi(x')^T V^T         (gradient w.r.t. every other trainable parameter)
and measure how much of the first gradient step's function change comes from F:
    FT ratio = mean over x of ||sum_i F(x, x_i) d_i|| / ||sum_i (P + F)(x, x_i) d_i||,
    d_i = e_{y_i} - softmax(f(x_i))  (minus the gradient of the cross-entropy w.r.t. the logits).

How it is computed without materialising the [n C x p] Jacobian (p = 22.7M for minilm-l6):
- P needs only the features: K_P = Phi Phi^T + 1 [n x n], P = K_P (x) I_C.
- sum_i F(x, x_i) d_i = J(x) g with g = sum_i J(x_i)^T d_i, the gradient of sum_i d_i^T f(x_i) (d detached):
  one batched backward gives g, then <grad f_c(x), g> for each sample and class is exact. So the FT ratio is exact.
- the full F matrix: per-sample, per-class gradients grad f_c(x) (one backward each) are folded either into
  an exact Gram matrix (rows kept when n C p float64 values fit `exact_budget_bytes`) or into a count sketch
  S grad f_c(x) in R^m (each coordinate hashed to one of m buckets with a random sign), F ~ (SJ)(SJ)^T.
  The count sketch is unbiased; an entry <a, b> has variance ~ (||a||^2 ||b||^2 + <a, b>^2) / m, so a diagonal
  entry has relative standard error ~ sqrt(2 / m) (0.55% for m = 65536). The exact diagonal ||grad f_c(x)||^2
  is always computed too and its measured sketch error is reported (`sketch_diag_rel_error`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from tunescope.diagnostics.features import (
    capture_features,
    head_linear,
    iter_batches,
    model_inputs,
)
from tunescope.diagnostics.options import DEFAULT_SKETCH_DIM  # declared there (light)

DEFAULT_EXACT_BUDGET = 256 * 2**20  # bytes of stored float64 per-sample gradients before switching to the sketch


@dataclass
class NTKResult:
    """eNTK decomposition on n samples with C classes. Row/column index of F and P: i * C + c."""

    kernel_p: np.ndarray  # [n, n] K_P(x_i, x_j) = <phi_i, phi_j> + bias_term; P = K_P (x) I_C
    f: np.ndarray | None  # [n C, n C] FT-effective kernel (exact or count-sketched; None if not requested)
    f_diag_exact: np.ndarray  # [n C] exact ||grad_theta f_c(x_i)||^2 over the non-head trainable parameters
    pd: np.ndarray  # [n, C] sum_i P(x, x_i) d_i
    fd: np.ndarray  # [n, C] sum_i F(x, x_i) d_i (exact)
    ft_ratio: float
    exact: bool
    sketch_dim: int | None
    num_backbone_params: int
    num_classes: int
    stats: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """The plain numbers for results.json (`ntk` key)."""
        return {"ft_ratio": self.ft_ratio, "n_samples": int(self.kernel_p.shape[0]),
                "num_classes": self.num_classes, "exact": self.exact, "sketch_dim": self.sketch_dim,
                "num_backbone_params": self.num_backbone_params, **self.stats}


def effective_rank(matrix: np.ndarray) -> float:
    """Effective rank (Roy & Vetterli 2007): exp(H(p)), p_k = lambda_k / sum_j lambda_j over the eigenvalues
    lambda of a symmetric PSD matrix (negative round-off eigenvalues clipped to 0), H the Shannon entropy."""
    lam = np.clip(np.linalg.eigvalsh((matrix + matrix.T) / 2), 0.0, None)
    total = lam.sum()
    if total <= 0:
        return 0.0
    p = lam[lam > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def ft_ratio(pd: np.ndarray, fd: np.ndarray) -> float:
    """FT ratio = mean over samples x of ||sum_i F(x, x_i) d_i||_2 / ||sum_i (P + F)(x, x_i) d_i||_2.

    d_i = e_{y_i} - softmax(f_0(x_i)) is the cross-entropy residual of training example i at the start of
    fine-tuning; pd [n, C] holds sum_i P(x, x_i) d_i and fd [n, C] holds sum_i F(x, x_i) d_i for every x.
    """
    num = np.linalg.norm(fd, axis=1)
    den = np.linalg.norm(pd + fd, axis=1)
    return float(np.mean(num / np.maximum(den, 1e-30)))


def split_parameters(model: nn.Module) -> tuple[list[tuple[str, nn.Parameter]], list[nn.Parameter]]:
    """(backbone, head): trainable parameters outside the head's final linear layer, and (V, b)."""
    lin = head_linear(model)
    head_ids = {id(p) for p in lin.parameters()}
    backbone = [(n, p) for n, p in model.named_parameters() if p.requires_grad and id(p) not in head_ids]
    return backbone, list(lin.parameters())


class _CountSketch:
    """Count sketch R^p -> R^m fixed by a seed: bucket h(k) uniform in [0, m), sign s(k) = +-1 per coordinate."""

    def __init__(self, shapes: list[int], m: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.m = m
        self.buckets = [torch.randint(0, m, (n,), generator=g, dtype=torch.int64) for n in shapes]
        self.signs = [torch.randint(0, 2, (n,), generator=g).float().mul_(2).sub_(1) for n in shapes]

    def apply(self, parts: list[tuple[torch.Tensor | None, torch.Tensor]]) -> torch.Tensor:
        """Sketch of one gradient given per tensor as (flat indices or None for all, values)."""
        out = torch.zeros(self.m, dtype=torch.float32)
        for (idx, vals), h, s in zip(parts, self.buckets, self.signs):
            if idx is None:
                out.index_add_(0, h, vals.float() * s)
            else:
                out.index_add_(0, h[idx], vals.float() * s[idx])
        return out.double()


class _SparseEmbeddingGrads:
    """Per-sample gradients of large token-embedding tables without their dense [vocab x dim] tensor.

    The gradient of an embedding weight is nonzero only at the rows of the tokens in the sample:
    dW[v] = sum over positions t with token v of dL/de_t, e_t = the embedding module's output. So we ask
    autograd for dL/de (a forward hook keeps e and the token ids) and scatter it into the used rows.
    """

    MIN_ROWS = 4096  # only vocabulary-sized tables are worth it

    def __init__(self, model: nn.Module, params: list[nn.Parameter]):
        index = {id(p): j for j, p in enumerate(params)}
        self.modules = [(index[id(m.weight)], m) for m in model.modules()
                        if isinstance(m, nn.Embedding) and id(m.weight) in index and m.num_embeddings >= self.MIN_ROWS]
        self.param_ids = {j for j, _ in self.modules}
        self.captured: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.handles = []

    def __enter__(self):
        for j, m in self.modules:
            self.handles.append(m.register_forward_hook(
                lambda mod, args, out, j=j: self.captured.__setitem__(j, (args[0], out))))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()

    def outputs(self) -> list[torch.Tensor]:
        return [self.captured[j][1] for j, _ in self.modules]

    def rows(self, grad_outs: list[torch.Tensor]) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """param index -> (flat indices into the weight, values) of the weight gradient."""
        out = {}
        for (j, m), g in zip(self.modules, grad_outs):
            ids = self.captured[j][0].reshape(-1)
            dim = m.embedding_dim
            g = torch.zeros(ids.numel(), dim, dtype=m.weight.dtype) if g is None else g.reshape(-1, dim)
            uniq, inverse = torch.unique(ids, return_inverse=True)
            vals = torch.zeros(len(uniq), dim, dtype=g.dtype, device=g.device).index_add_(0, inverse, g)
            if m.padding_idx is not None:  # PyTorch never updates the padding row
                vals[uniq == m.padding_idx] = 0
            flat = (uniq[:, None] * dim + torch.arange(dim, device=uniq.device)).reshape(-1)
            out[j] = (flat.cpu(), vals.reshape(-1))
        return out


def _to(batch: dict, device) -> dict:
    return {k: v.to(device) for k, v in model_inputs(batch).items()}


def entk_decomposition(model: nn.Module, dataset, collator, *, batch_size: int = 32,
                       sketch_dim: int | None = DEFAULT_SKETCH_DIM, exact_budget_bytes: int = DEFAULT_EXACT_BUDGET,
                       seed: int = 0, progress: Callable[[int, int], None] | None = None,
                       matrix: bool = True) -> NTKResult:
    """eNTK split Theta = P + F and the FT ratio on every example of a tokenized `dataset` (n rows, labels used).

    The trainable parameters (requires_grad) define the kernel, as at the start of fine-tuning: for full FT all
    of them, for LoRA the adapters (+ the head). P(x, x') = (<phi0(x), phi0(x')> + 1) I_C (the head's own
    gradient, phi0 the pre-trained features) and F(x, x') = V0 J_phi(x) J_phi(x')^T V0^T (the backbone's, J_phi
    the Jacobian of the features w.r.t. the trainable backbone parameters, V0 the head at the start);
    F is exact when n C p float64 values fit `exact_budget_bytes` (or `sketch_dim` is None), else count-sketched
    to `sketch_dim` buckets. With `matrix=False` only the FT ratio and the exact diagonal of F are computed
    (F itself is None). Runs in eval mode (no dropout); the model's mode is restored.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    backbone, head = split_parameters(model)
    if not backbone:
        raise ValueError("no trainable parameters outside the head: F is empty (did the strategy freeze them?)")
    names, params = zip(*backbone)
    has_bias = any(p.dim() == 1 for p in head)
    numel = [p.numel() for p in params]
    p_total = sum(numel)
    try:
        # Pass 1 (batched, with graph): features phi, logits f, d_i, and g = grad of sum_i d_i^T f(x_i).
        phis, logits_all, labels_all = [], [], []
        g_sum = [torch.zeros_like(p) for p in params]
        with capture_features(model) as box:
            for batch in iter_batches(dataset, collator, batch_size):
                inputs = _to(batch, device)
                box["input_ids"] = inputs["input_ids"]
                logits = model(**inputs).logits.float()
                y = batch["labels"].to(device)
                d = torch.nn.functional.one_hot(y, logits.shape[1]).float() - logits.softmax(-1)
                grads = torch.autograd.grad((d.detach() * logits).sum(), params, allow_unused=True)
                for acc, gr in zip(g_sum, grads):
                    if gr is not None:
                        acc.add_(gr)
                phis.append(box["phi"].detach().double().cpu())
                logits_all.append(logits.detach().double().cpu())
                labels_all.append(y.cpu())
        phi = torch.cat(phis)
        logits0 = torch.cat(logits_all)
        labels = torch.cat(labels_all)
        n, c = logits0.shape
        d = torch.nn.functional.one_hot(labels, c).double() - logits0.softmax(-1)
        kernel_p = phi @ phi.T + (1.0 if has_bias else 0.0)
        pd = kernel_p @ d  # sum_i K_P(x, x_i) d_i, and P = K_P (x) I_C acts class-wise

        # Pass 2 (per sample, per class): exact <grad f_c(x), g>, exact ||grad f_c(x)||^2, rows for F.
        exact = sketch_dim is None or n * c * p_total * 8 <= exact_budget_bytes
        sketch = None if exact or not matrix else _CountSketch(numel, int(sketch_dim), seed)
        rows = torch.zeros(n * c, p_total if exact else int(sketch_dim), dtype=torch.float64) if matrix else None
        offsets = np.concatenate([[0], np.cumsum(numel)])
        fd = torch.zeros(n, c, dtype=torch.float64)
        diag = torch.zeros(n * c, dtype=torch.float64)
        flat_g = [gs.reshape(-1) for gs in g_sum]
        with _SparseEmbeddingGrads(model, list(params)) as emb:
            dense_idx = [j for j in range(len(params)) if j not in emb.param_ids]
            for i, batch in enumerate(iter_batches(dataset, collator, 1)):
                logits = model(**_to(batch, device)).logits.float()[0]
                targets = [params[j] for j in dense_idx] + emb.outputs()
                for k in range(c):
                    grads = torch.autograd.grad(logits[k], targets, retain_graph=k < c - 1, allow_unused=True)
                    parts: list = [None] * len(params)
                    for j, gr in zip(dense_idx, grads[:len(dense_idx)]):
                        parts[j] = (None, (torch.zeros_like(params[j]) if gr is None else gr).reshape(-1))
                    for j, part in emb.rows(list(grads[len(dense_idx):])).items():
                        parts[j] = part
                    fd[i, k] = sum(float(torch.vdot(v, flat_g[j] if idx is None else flat_g[j][idx.to(v.device)]))
                                   for j, (idx, v) in enumerate(parts))
                    diag[i * c + k] = sum(float(torch.vdot(v, v)) for _, v in parts)
                    if not matrix:
                        continue
                    if exact:
                        row = rows[i * c + k]
                        for j, (idx, v) in enumerate(parts):
                            seg = row[offsets[j]:offsets[j + 1]]
                            if idx is None:
                                seg.copy_(v.double().cpu())
                            else:
                                seg[idx] = v.double().cpu()
                    else:
                        rows[i * c + k] = sketch.apply([(idx, v.cpu()) for idx, v in parts])
                if progress is not None:
                    progress(i + 1, n)
        f = (rows @ rows.T).numpy() if matrix else None
        del rows
    finally:
        model.train(was_training)

    p_full = np.kron(kernel_p.numpy(), np.eye(c))
    diag_np = diag.numpy()
    stats = {
        "pre_train_rank": int(np.linalg.matrix_rank(p_full, hermitian=True)),
        "pre_train_effective_rank": effective_rank(p_full),
        "trace_p": float(np.trace(p_full)),
        "trace_f": float(diag_np.sum()),
        "ft_trace_share": float(diag_np.sum() / (diag_np.sum() + np.trace(p_full))),
        "mean_d_norm": float(d.norm(dim=1).mean()),
        "head_has_bias": has_bias,
    }
    if f is not None:
        stats["ft_effective_rank"] = effective_rank(f)
        stats["sketch_diag_rel_error"] = float(np.abs(np.diag(f) - diag_np).sum() / max(diag_np.sum(), 1e-30))
    return NTKResult(kernel_p=kernel_p.numpy(), f=f, f_diag_exact=diag_np, pd=pd.numpy(), fd=fd.numpy(),
                     ft_ratio=ft_ratio(pd.numpy(), fd.numpy()), exact=exact or not matrix,
                     sketch_dim=None if exact or not matrix else sketch_dim,
                     num_backbone_params=p_total, num_classes=c, stats=stats)
