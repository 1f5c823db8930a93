"""The contract-test table: (strategy, extra config) rows run against every tiny architecture.

Adding a strategy = adding one row here. `min_loss_drop` is the fraction by which the mean training
loss of the last quarter of logged steps must fall below the first logged loss on the toy task.
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
