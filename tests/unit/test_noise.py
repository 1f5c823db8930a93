"""GO training: the gradient is evaluated at theta + eps and applied to theta (one eps per optimizer step)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tunescope.errors import UserError
from tunescope.training.noise import GaussianWeightNoise, GONoiseCallback

pytestmark = pytest.mark.usefixtures("one_thread")


def _quadratic_problem():
    torch.manual_seed(0)
    model = nn.Linear(5, 1, bias=True)
    x, y = torch.randn(16, 5), torch.randn(16, 1)
    return model, x, y


def _eps(params, sigma, seed, draw):
    """The eps of draw `draw` (0-based), regenerated independently from the generator's contract."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(draw + 1):
        eps = [torch.randn(p.shape, generator=g) * sigma for p in params]
    return eps


def test_gradient_at_theta_plus_eps_is_applied_to_theta():
    model, x, y = _quadratic_problem()
    params = list(model.parameters())
    sigma, lr, seed = 0.3, 0.1, 7
    noise = GaussianWeightNoise(params, sigma, seed)
    opt = torch.optim.SGD(params, lr=lr)
    theta = [p.detach().clone() for p in params]
    for step in range(3):
        noise.perturb()
        noise.perturb()  # a second call in the same step is a no-op: one draw per optimizer step
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        noise.restore()
        # independent: gradient of the same loss at theta + eps, by hand (linear least squares)
        eps = _eps(params, sigma, seed, step)
        w, b = theta[0] + eps[0], theta[1] + eps[1]
        r = x @ w.T + b - y
        gw, gb = 2 * (r * x).mean(0, keepdim=True), 2 * r.mean(0)
        for p, t in zip(params, theta, strict=True):
            assert torch.equal(p.detach(), t)  # restored bit-exactly before the optimizer step
        torch.testing.assert_close(params[0].grad, gw, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(params[1].grad, gb, rtol=1e-5, atol=1e-6)
        opt.step()
        opt.zero_grad()
        theta = [theta[0] - lr * gw, theta[1] - lr * gb]
        torch.testing.assert_close(params[0].detach(), theta[0], rtol=1e-5, atol=1e-6)
        theta = [p.detach().clone() for p in params]
    assert noise.draws == 3


def test_callback_in_the_hf_trainer_applies_the_noisy_gradient(tmp_path):
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    from tunescope.models.tiny import tiny_classifier, tiny_tokenizer, toy_sentiment

    texts, labels = toy_sentiment(8, 0)
    tok = tiny_tokenizer(texts)
    model = tiny_classifier("bert", tok)
    enc = tok(texts, padding=True)
    ds = Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                            "labels": labels})
    theta0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    sigma, lr, seed = 0.05, 0.5, 3
    # Reference: the loss gradient at theta0 + eps on the same batch, computed on a copy.
    import copy

    ref = copy.deepcopy(model)
    ref.eval()  # dropout off in both (the Trainer model is set to eval below via dropout=0)
    eps = _eps([p for p in ref.parameters()], sigma, seed, 0)
    with torch.no_grad():
        for p, e in zip(ref.parameters(), eps, strict=True):
            p.add_(e)
    batch = {k: torch.tensor(v) for k, v in ds[:8].items()}
    ref(**batch).loss.backward()
    expected = {n: theta0[n] - lr * p.grad for n, p in ref.named_parameters()}

    for m in model.modules():  # no dropout: the Trainer's forward must match the reference one
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=1,
                             learning_rate=lr, lr_scheduler_type="constant", optim="sgd", weight_decay=0.0,
                             max_grad_norm=0.0, report_to=[], save_strategy="no", logging_strategy="no",
                             use_cpu=True, seed=0, data_seed=0)
    cb = GONoiseCallback(model, sigma, seed)
    Trainer(model=model, args=args, train_dataset=ds, callbacks=[cb]).train()
    assert cb.noise.draws == 1 and not cb.noise.active
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), expected[n], rtol=1e-4, atol=1e-6, msg=n)


def test_bad_sigma_is_a_user_error():
    with pytest.raises(UserError):
        GaussianWeightNoise([nn.Parameter(torch.zeros(2))], 0.0)
