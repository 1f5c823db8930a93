"""Training add-on `retention`: what SFT costs the model's general language modelling (forgetting).

Before and after training, the perplexity and next-token accuracy of held-out documents of a corpus (news_text by
default) that has nothing to do with the SFT data: the first `retention_docs` held-out documents
(data.corpus.load_corpus, seeded), each followed by the end-of-text token, concatenated and cut into
max_length-token blocks (data.lm.pack_blocks); every token of a block but the first is a predicted token t, so
    loss = mean over t of -log p(x_t | x_<t),  perplexity = exp(loss),
    accuracy = share of t with argmax_v p(v | x_<t) = x_t  (mean token accuracy),
the same formulas and the same token statistics as the SFT evaluation (training/lm_evaluate.py). results.json
`retention`: data, docs, blocks, tokens, loss_before / perplexity_before / accuracy_before, loss_after /
perplexity_after / accuracy_after and perplexity_ratio = after / before (> 1: the model got worse at plain text).

It measures the model as the strategy prepared it, before any step: LoRA starts with B = 0 and SIFT with zero
increments, so that is the pre-trained model's perplexity.
"""

from __future__ import annotations

from datasets import Dataset

from tunescope.training.addons import TRAINING_ADDONS, AddonBase, RunState
from tunescope.training.lm_evaluate import token_metrics, token_statistics


def _blocks(run: RunState) -> Dataset:
    from tunescope.data.corpus import load_corpus
    from tunescope.data.lm import pack_blocks

    cfg = run.config
    corpus = load_corpus(cfg.retention_data, seed=cfg.seed)
    docs = corpus.heldout[:cfg.retention_docs]
    blocks = pack_blocks(docs, run.tokenizer, cfg.max_length)
    rows = [{"input_ids": ids, "labels": ids} for ids in blocks.tolist()]
    run.results["retention"] = {"data": cfg.retention_data, "docs": len(docs), "blocks": len(rows)}
    return Dataset.from_list(rows)


def _measure(run: RunState, when: str) -> None:
    blocks = run.extras["retention_blocks"]
    metrics = token_metrics(token_statistics(run.model, blocks, run.collator, run.config.eval_batch_size))
    facts = run.results["retention"]
    facts["tokens"] = metrics["tokens"]
    facts[f"loss_{when}"], facts[f"perplexity_{when}"] = metrics["loss"], metrics["perplexity"]
    facts[f"accuracy_{when}"] = metrics["mean_token_accuracy"]


class Retention(AddonBase):
    """Perplexity and next-token accuracy on held-out plain text before and after training (on when
    retention_docs > 0)."""

    name = "retention"

    def enabled(self, config) -> bool:
        return int(getattr(config, "retention_docs", 0) or 0) > 0

    def before_train(self, run: RunState) -> None:
        run.extras["retention_blocks"] = _blocks(run)
        _measure(run, "before")

    def after_train(self, run: RunState) -> None:
        _measure(run, "after")
        facts = run.results["retention"]
        facts["perplexity_ratio"] = facts["perplexity_after"] / facts["perplexity_before"]


TRAINING_ADDONS.register("retention", Retention())
