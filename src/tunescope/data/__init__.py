"""Data: classification sets (text + label) with seeded splits, and text corpora for language modelling."""

from tunescope.data.classification import ClassificationData, load_classification
from tunescope.data.corpus import Corpus, load_corpus

__all__ = ["ClassificationData", "Corpus", "load_classification", "load_corpus"]
