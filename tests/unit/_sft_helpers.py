"""Tiny SFT fixtures: a word-level tokenizer with a small Jinja chat template, a tiny Llama, and toy two-choice data.

TEMPLATE keeps each role header outside the {% generation %} markers (as real training templates do), so the
assistant mask covers the reply and its end-of-turn token ([SEP]) only; a marked span must not start with a space
(transformers maps the span's first character to a token). PLAIN_TEMPLATE is the same without the markers.
"""

from __future__ import annotations

import json
from pathlib import Path

from tunescope.models.tiny import tiny_causal_lm, tiny_tokenizer

TEMPLATE = ("{% for m in messages %}{{ m['role'] }} : {% if m['role'] == 'assistant' %}{% generation %}"
            "{{ m['content'] }} [SEP]{% endgeneration %}{% else %}{{ m['content'] }} [SEP]{% endif %} {% endfor %}"
            "{% if add_generation_prompt %}assistant : {% endif %}")
PLAIN_TEMPLATE = TEMPLATE.replace("{% generation %}", "").replace("{% endgeneration %}", "")

COLORS = ("red", "blue", "green", "yellow")
THINGS = ("sky", "grass", "sun", "apple")
WORDS = ["system", "user", "assistant", ":", "answer", "with", "a", "or", "b", "what", "color", "is", "the",
         *COLORS, *THINGS, "thanks", "welcome"]


def question(i: int) -> tuple[str, str]:
    """(question with options a / b, the right letter): item i's colour is option a for even i, b for odd i."""
    k = i % len(THINGS)
    right, wrong = COLORS[k], COLORS[(k + 1) % len(COLORS)]
    options = (right, wrong) if i % 2 == 0 else (wrong, right)
    return f"what color is the {THINGS[k]} a : {options[0]} b : {options[1]}", "a" if i % 2 == 0 else "b"


def messages_rows(n: int, *, choices: bool = True) -> list[dict]:
    rows = []
    for i in range(n):
        q, a = question(i)
        row = {"messages": [{"role": "system", "content": "answer with a or b"}, {"role": "user", "content": q},
                            {"role": "assistant", "content": a}]}
        if choices:
            row["choices"] = ["a", "b"]
        rows.append(row)
    return rows


def pair_rows(n: int, *, conversational: bool) -> list[dict]:
    rows = []
    for i in range(n):
        q, a = question(i)
        if conversational:
            rows.append({"prompt": [{"role": "user", "content": q}],
                         "completion": [{"role": "assistant", "content": a}], "choices": ["a", "b"]})
        else:
            rows.append({"prompt": q + " answer :", "completion": " " + a, "choices": ["a", "b"]})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def chat_tokenizer(template: str | None = TEMPLATE):
    tok = tiny_tokenizer([" ".join(WORDS)])
    tok.chat_template = template
    return tok


def save_tiny_llama(folder: Path, template: str | None = TEMPLATE, seed: int = 0) -> Path:
    """A tiny random Llama + the chat tokenizer, saved as a local checkpoint folder."""
    tok = chat_tokenizer(template)
    tiny_causal_lm("llama", tok, seed=seed, num_layers=2, hidden=32).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder

