"""Trainer checkpoints that are either complete or absent.

The HF Trainer writes `checkpoint-N/` file by file, so a run killed mid-save leaves a folder that looks like a
checkpoint but cannot be resumed from, and its rotation (`save_total_limit`) deletes the previous checkpoint right
after writing the new one. `StrategyTrainer` (training/trainer.py) instead writes `checkpoints/.staging/checkpoint-N`,
renames it to `checkpoints/checkpoint-N` once complete (`publish_checkpoint`) and only then rotates
(`rotate_checkpoints`); `--resume` takes the newest complete checkpoint (`latest_complete_checkpoint`).

A checkpoint is complete when it holds a readable trainer_state.json (the Trainer writes it last) and weights.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

STAGING_DIR = ".staging"
"""Sub-folder of the checkpoints folder in which a checkpoint is written before it is renamed into place."""
TRASH_PREFIX = ".trash-"
"""A checkpoint being deleted is first renamed to this prefix + its name, so a kill mid-delete leaves no
half-deleted folder under a checkpoint's name."""
TRAINER_STATE = "trainer_state.json"
# The weight files of the layouts a checkpoint can have: full model (safetensors / torch, maybe sharded), PEFT
# adapter, and SIFT's sparse delta (models/sparse_delta.py).
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json", "adapter_model.safetensors", "adapter_model.bin",
                "sift_delta.safetensors")

_CHECKPOINT_NAME = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def checkpoint_step(folder: Path) -> int | None:
    """N for a folder named checkpoint-N, else None."""
    match = _CHECKPOINT_NAME.match(folder.name)
    return int(match.group(1)) if match else None


def checkpoint_folders(folder: str | Path) -> list[Path]:
    """The checkpoint-N folders directly in `folder`, oldest (smallest N) first; complete or not."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and checkpoint_step(p) is not None]
    return sorted(found, key=lambda p: checkpoint_step(p))


def is_complete(checkpoint: str | Path) -> bool:
    """True when `checkpoint` holds weights and a trainer_state.json that parses (written last by the Trainer)."""
    checkpoint = Path(checkpoint)
    if not any((checkpoint / name).is_file() for name in WEIGHT_FILES):
        return False
    try:
        json.loads((checkpoint / TRAINER_STATE).read_text())
    except (OSError, ValueError):
        return False
    return True


def latest_complete_checkpoint(folder: str | Path) -> Path | None:
    """The newest complete checkpoint-N in `folder` (falling back to older ones past incomplete ones), or None."""
    for checkpoint in reversed(checkpoint_folders(folder)):
        if is_complete(checkpoint):
            return checkpoint
    return None


def discard(folder: Path) -> None:
    """Delete a folder: rename it to a trash name first (one atomic step), then remove it."""
    if not folder.exists():
        return
    trash = folder.with_name(TRASH_PREFIX + folder.name)
    shutil.rmtree(trash, ignore_errors=True)
    os.rename(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)


def tidy_checkpoints(folder: str | Path, limit: int | None) -> None:
    """Finish what a killed run left half-done in a checkpoints folder before training starts there: remove the
    staging area and trash folders, and the rotation that did not happen (the newest complete checkpoint, the one
    `--resume` continues from, is always kept)."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    shutil.rmtree(folder / STAGING_DIR, ignore_errors=True)
    for trash in folder.glob(TRASH_PREFIX + "*"):
        shutil.rmtree(trash, ignore_errors=True)
    newest = latest_complete_checkpoint(folder)
    if newest is not None:
        rotate_checkpoints(folder, limit, newest)


def publish_checkpoint(staged: Path, final: Path) -> None:
    """Move the complete checkpoint `staged` to `final` with one rename.

    A folder already named `final` (an incomplete leftover of a killed attempt, or an earlier save of the same
    step) is discarded first; the previous complete checkpoint is untouched, so a kill here still leaves one.
    """
    discard(final)
    os.rename(staged, final)
    with contextlib.suppress(OSError):  # the staging folder, now empty, is not left behind (other ranks aside)
        staged.parent.rmdir()


def rotate_checkpoints(folder: str | Path, limit: int | None, newest: Path, protected: str | None = None) -> None:
    """Keep the `limit` newest complete checkpoints (always `newest`, the one just published, and `protected`,
    the Trainer's best checkpoint) and delete the other checkpoint-N folders, incomplete leftovers included.

    Called only once `newest` is complete and in place, so a checkpoint to resume from exists at every moment.
    `limit` None or <= 0 keeps every complete checkpoint (the Trainer's meaning of save_total_limit).
    """
    found = checkpoint_folders(folder)
    complete = [c for c in found if is_complete(c)]
    keep = {Path(newest).resolve()}
    keep.update(c.resolve() for c in (complete if not limit or limit <= 0 else complete[-limit:]))
    if protected:
        keep.add(Path(protected).resolve())
    for checkpoint in found:
        if checkpoint.resolve() not in keep:
            discard(checkpoint)
