"""tunescope: diagnose-first fine-tuning of transformer models.

Five instruments and their remedies in one tool: layer diagnostics + inflection-layer LoRA,
SIFT sparse increment fine-tuning, the final-layer jump + JREG, loss-landscape basins, and
LP-FT seen through the NTK. See README.md for the commands and docs/ for the results.
"""

__version__ = "0.1.0"
