"""The top-level notebook API: every advertised name resolves, lazily; a missing one says what it needs; the
three-line notebook gets the results, the trained model and the Trainer from `finetune`."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import tunescope


def test_every_public_name_resolves():
    for name in tunescope.__all__:
        assert getattr(tunescope, name) is not None, name


def test_notebook_names_are_the_recipes_own():
    from tunescope.experiments.diagnose import diagnose_run
    from tunescope.experiments.finetune import FinetuneConfig, finetune
    from tunescope.experiments.plan import plan
    from tunescope.training.callbacks import DiagnosticsCallback

    assert (tunescope.finetune, tunescope.FinetuneConfig, tunescope.diagnose, tunescope.plan,
            tunescope.DiagnosticsCallback) == (finetune, FinetuneConfig, diagnose_run, plan, DiagnosticsCallback)


def test_import_tunescope_does_not_import_torch():
    code = "import sys, tunescope; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_name_whose_module_is_missing_is_a_clear_attribute_error(monkeypatch):
    monkeypatch.setitem(tunescope._API, "later", "tunescope.experiments.not_written_yet:later")
    monkeypatch.setitem(tunescope._API, "renamed", "tunescope.errors:no_such_name")
    with pytest.raises(AttributeError, match="tunescope.later is not available in this installation: it needs "
                                             "module tunescope.experiments.not_written_yet, which is missing"):
        tunescope.later  # noqa: B018
    with pytest.raises(AttributeError, match="module tunescope.errors has no 'no_such_name'"):
        tunescope.renamed  # noqa: B018
    assert not hasattr(tunescope, "later")  # hasattr works: an AttributeError, not an ImportError


def test_a_module_missing_its_own_dependency_is_not_hidden(monkeypatch, tmp_path):
    (tmp_path / "needs_missing_dep.py").write_text("import a_dependency_that_is_not_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(tunescope._API, "broken", "needs_missing_dep:thing")
    with pytest.raises(ModuleNotFoundError, match="a_dependency_that_is_not_installed"):
        tunescope.broken  # noqa: B018


def test_three_line_notebook_returns_results_model_and_trainer(tiny_model_dir, toy_csv, tmp_path):
    from tunescope import FinetuneConfig, finetune

    config = FinetuneConfig(model=str(tiny_model_dir["bert"]), data=str(toy_csv), strategy="full", max_steps=3,
                            batch_size=8, feature_change=False)
    result = finetune(config, tmp_path / "run")

    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert isinstance(result, dict) and result["eval"]["accuracy"] == saved["eval"]["accuracy"]
    assert set(saved) == set(result)  # model and trainer are attributes, never results.json keys
    assert result.trainer.state.global_step == 3
    # .model is the trained model: its test logits are the ones the run saved (computed independently here)
    from tunescope.tasks import load_task
    from tunescope.training.evaluate import predict_logits

    loaded = load_task(config)
    logits, labels = predict_logits(result.model, loaded.tokenized["test"], loaded.collator, batch_size=16)
    stored = np.load(tmp_path / "run" / "logits.npz")
    np.testing.assert_allclose(logits, stored["test_logits"], rtol=1e-5, atol=1e-6)
    assert np.array_equal(labels, stored["test_labels"])
    untrained, _ = predict_logits(loaded.model, loaded.tokenized["test"], loaded.collator, batch_size=16)
    assert not np.allclose(untrained, logits)  # the pre-trained model gives other logits
