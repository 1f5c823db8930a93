"""The contract-test table: (strategy, extra config) rows run against every tiny architecture.

Adding a strategy = adding one row here. The contract asks the mean training loss of the last quarter of
logged steps to be at least 15% below the mean of the first quarter on the toy task.

`PER_ARCH` holds the few overrides one architecture needs: LoRA's learning rate that works on tiny BERT (whose
random pooler makes it slow) overshoots on tiny Llama, whose loss then bounces and settles at chance. With them
every row ends at a tail/head loss ratio of at most ~0.75, a clear margin below the 0.85 bar.
"""

STRATEGY_ROWS = [
    # (strategy, config overrides)
    ("full", {"learning_rate": 3e-3}),
    ("lora", {"learning_rate": 3e-2, "lora_rank": 4}),
    ("lora-inflection", {"learning_rate": 3e-2, "lora_rank": 4, "inflection_width": 2}),
    ("head", {"learning_rate": 5e-2}),
    ("lp-ft", {"learning_rate": 3e-3}),
    ("lp-lora", {"learning_rate": 1e-2, "lora_rank": 4}),
    ("sift", {"learning_rate": 3e-3, "sift_rate": 0.9, "sift_targets": ["*"]}),
]

PER_ARCH = {
    # (strategy, architecture): overrides applied on top of the row
    ("lora", "llama"): {"learning_rate": 1e-2},
    ("lora", "gpt2"): {"learning_rate": 5e-3},  # adapters on c_attn + attn.c_proj (discovered)
    ("lora-inflection", "bert"): {"epochs": 10},  # adapters on 2 of 4 layers under a frozen random pooler: slow
}
