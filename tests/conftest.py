"""Shared fixtures: tiny tokenizer and models built in-process, toy data files, offline hub."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from tunescope.models.tiny import (  # noqa: E402
    TINY_ARCHITECTURES,
    tiny_classifier,
    tiny_tokenizer,
    toy_sentiment,
)

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def one_thread():
    """For modules of many tiny-tensor tests (`pytestmark = pytest.mark.usefixtures("one_thread")`): one intra-op
    thread is fastest on tensors this small and does not fight other jobs for a shared CPU."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="session")
def toy_data():
    """(texts, labels): 160 short texts whose label is decided by one sentiment word."""
    return toy_sentiment(160, seed=0)


@pytest.fixture(scope="session")
def tokenizer(toy_data):
    return tiny_tokenizer(toy_data[0])


@pytest.fixture(scope="session")
def toy_csv(tmp_path_factory, toy_data):
    """A local csv file with columns text,label."""
    path = tmp_path_factory.mktemp("data") / "toy.csv"
    pd.DataFrame({"text": toy_data[0], "label": toy_data[1]}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer):
    """arch -> a folder holding a saved tiny sequence classifier + tokenizer (a 'local checkpoint')."""
    dirs = {}
    for arch in TINY_ARCHITECTURES:
        folder = tmp_path_factory.mktemp(f"tiny-{arch}")
        tiny_classifier(arch, tokenizer, seed=0).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        dirs[arch] = folder
    return dirs
