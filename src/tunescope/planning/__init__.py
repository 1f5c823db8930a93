"""`tunescope plan`: cheap measurements -> decision rules -> short trials -> a chosen strategy and settings.

measure.py  what the five papers' instruments say about the pre-trained model on this data (probe batches)
rules.py    the written-down decision rules (docs/plan.md): measurements + budget -> ranked candidates, fired rules
trials.py   successive halving of the candidates on the validation split; collapsed / diverged ones are rejected
budget.py   trainable-parameter and wall-time budgets: parsing, LoRA rank / SIFT rate within a budget
options.py  the plan's config fields (light: no torch)
"""
