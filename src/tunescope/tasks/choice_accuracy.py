"""Task accuracy of a causal LM on multiple-choice SFT data (a `choices` column, e.g. QuaRTz: A or B), two ways.

For example i with context x_i (everything before the reference answer, rendered by the chat template exactly as
in training), choices c_1..c_K and reference answer a_i:
    task_accuracy_loglik   = mean_i [ c_k* == a_i ],  k* = argmax_k log p(c_k | x_i): the summed log-probability of
                             c_k's tokens rendered as the completion (its end-of-turn token included); the first
                             maximum wins a tie
    task_accuracy_generate = mean_i [ g_i == a_i ],  g_i = the first line of the greedy continuation of x_i (at
                             most max_new_tokens tokens, special tokens dropped); both sides stripped of spaces:
                             an exact match
The log-likelihood score asks which answer the model prefers; the generated one also needs the model to say it in
the expected form, so it is the stricter of the two.
"""

from __future__ import annotations

import numpy as np
from datasets import Dataset
from torch import nn

from tunescope.data.sft import answer_of, prompt_of
from tunescope.data.sft_prepare import tokenize_pairs
from tunescope.training.lm_evaluate import greedy_continuations, token_statistics


def _like(reference: str, choice: str) -> str:
    """`choice` with the whitespace around the reference answer (" A" in the data: " B"), so that every choice is
    tokenised the way the reference answer was in training."""
    core = reference.strip()
    start = reference.find(core)
    return reference[:start] + choice.strip() + reference[start + len(core):]


def _pairs(examples: list[dict]) -> list[dict]:
    """One prompt / completion row per (example, choice); `reference` marks the reference answer's row."""
    pairs = []
    for i, example in enumerate(examples):
        prompt, reference = prompt_of(example), answer_of(example)
        for k, choice in enumerate(example["choices"]):
            text = _like(reference, choice)
            completion = text if isinstance(prompt, str) else [{"role": "assistant", "content": text}]
            pairs.append({"prompt": prompt, "completion": completion, "example": i, "choice": k,
                          "reference": choice.strip() == reference.strip()})
    return pairs


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else ""


def choice_accuracy(model: nn.Module, tokenizer, split: Dataset, rows: list[int], *, collator, batch_size: int,
                    max_new_tokens: int, template: str | None = None) -> tuple[dict[str, float], dict]:
    """(task_accuracy_loglik, task_accuracy_generate and task_examples; per example the choice log-probabilities
    [N, K] (NaN beyond an example's K) and the generated text) over `split`'s rows `rows`."""
    examples = [split[r] for r in rows]
    pairs = Dataset.from_list(_pairs(examples))
    tokenized = tokenize_pairs(pairs, tokenizer, template)
    stats = token_statistics(model, tokenized.select_columns(["input_ids", "labels"]), collator, batch_size)
    width = max(len(e["choices"]) for e in examples)
    logprob = np.full((len(examples), width), np.nan)
    logprob[tokenized["example"], tokenized["choice"]] = stats["logprob"]
    picked = np.nanargmax(logprob, axis=1)
    answers = [answer_of(e).strip() for e in examples]
    loglik_right = [examples[i]["choices"][k].strip() == answers[i] for i, k in enumerate(picked)]
    contexts: list[list[int]] = [[] for _ in examples]
    for example, is_reference, ids, labels in zip(tokenized["example"], tokenized["reference"],
                                                  tokenized["input_ids"], tokenized["labels"]):
        if is_reference:  # the context is what precedes the reference answer's first loss token
            contexts[example] = ids[:next(i for i, label in enumerate(labels) if label != -100)]
    generated = greedy_continuations(model, tokenizer, contexts, max_new_tokens=max_new_tokens,
                                     batch_size=batch_size)
    generate_right = [_first_line(g) == a for g, a in zip(generated, answers)]
    metrics = {"task_accuracy_loglik": float(np.mean(loglik_right)),
               "task_accuracy_generate": float(np.mean(generate_right)), "task_examples": len(examples)}
    return metrics, {"choice_logprob": logprob, "generated": generated}
