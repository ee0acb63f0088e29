"""Checkpoints that resume exactly, refuse the wrong network, and name trained models by what made them.

* ``save_checkpoint`` writes atomically (temporary file, then rename): a killed run never leaves half a file.
* ``load_checkpoint`` uses ``torch.load(weights_only=True)`` and refuses, in one line naming the file, a
  checkpoint that is damaged, that carries pickled code, or whose architecture signature differs from the
  model it is loaded into (saying what differs).
* ``cache_key`` hashes the configuration, the data and the source of the training code, so a trained model
  is reused only when nothing that made it has changed.

Used by ``train`` and by chapters 4-7, which load trained models.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import re
import zipfile
from pathlib import Path

import torch

from deconvnet.files import atomic_path

PACKAGE = Path(__file__).resolve().parents[1]  # src/deconvnet: TRAINING_CODE's paths are relative to it
# The source files whose change must invalidate a trained model: what decides its weights (network, init,
# samples, the loop). Evaluation code (metrics, inference) only changes the numbers reported along the way.
TRAINING_CODE = ("model/layers.py", "model/network.py", "model/fastpath.py", "model/pretrained.py",
                 "train/engine.py", "train/distributed.py", "train/stage0.py", "data/*.py")


def signature(model: torch.nn.Module) -> dict:
    """What a checkpoint must match: the model's class and its full ``ModelConfig``."""
    return {"kind": type(model).__name__, "model": dataclasses.asdict(model.cfg)}


def save_checkpoint(path: Path, state: dict) -> None:
    """``torch.save`` to a temporary file in the same folder, then an atomic rename."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, expected: dict | None = None, map_location="cpu") -> dict:
    """Load ``path`` safely (tensors and plain data only) and check its architecture signature."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "Weights only load failed" not in str(err):
            raise ValueError(_damaged(path, err)) from None
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        what = f"it names {found.group(1)}" if found else "content other than tensors and plain data"
        raise ValueError(
            f"{path} carries pickled Python code ({what}) and is refused: loading it could run that code. "
            f"This package never writes such a file; delete its run folder {path.parent} to train it again"
        ) from None
    except PermissionError:
        raise  # the file may be fine; the CLI says which one cannot be read
    except (OSError, RuntimeError, EOFError, KeyError, IndexError, ValueError, TypeError, zipfile.BadZipFile) as err:
        raise ValueError(_damaged(path, err)) from None  # e.g. half a file, whatever torch's error for it
    if not isinstance(state, dict):
        raise ValueError(_damaged(path, f"it holds a {type(state).__name__}, not a checkpoint's dict"))
    if expected is not None and state.get("signature") != expected:
        saved = state.get("signature") or {}
        diff = _differences(saved, expected)
        raise ValueError(
            f"{path} holds a {saved.get('kind', 'unknown')} made for another configuration ({diff}); it cannot "
            f"be loaded into this {expected['kind']}. Use the preset and model it was trained with, or retrain."
        )
    return state


def _damaged(path: Path, err: Exception | str) -> str:
    """One line for a checkpoint torch cannot read: which file, why (briefly), and what to do."""
    if isinstance(err, str):
        why = err
    elif path.stat().st_size == 0:
        why = "the file is empty"
    elif isinstance(err, OSError):  # torch's zip reader on a cut file: "[Errno 22] Invalid argument"
        why = "it is not a complete checkpoint archive"
    else:  # torch's first sentence only; the rest is advice about saving that does not apply here
        first = str(err).split(". ")[0].strip().rstrip(".")
        why = f"{type(err).__name__}: {first}" if first else f"{type(err).__name__}: the file ends early"
    return (f"checkpoint {path} is damaged or incomplete ({why}); delete its run folder {path.parent} and it "
            f"is trained again")


def _differences(saved: dict, expected: dict) -> str:
    if saved.get("kind") != expected.get("kind"):
        return f"kind {saved.get('kind')} vs {expected.get('kind')}"
    a, b = saved.get("model", {}), expected.get("model", {})
    return ", ".join(f"{k}={a.get(k)!r} vs {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))


def code_hash(files: tuple[str, ...] = TRAINING_CODE, package: Path = PACKAGE) -> str:
    """SHA-256 over the training code's source, so editing it retires every cached model."""
    digest = hashlib.sha256()
    for pattern in files:
        matched = sorted(package.glob(pattern))
        if not matched:  # a moved or renamed file would otherwise drop out of every cache key unnoticed
            raise FileNotFoundError(f"checkpoint.TRAINING_CODE names {pattern!r}, which matches no file in "
                                    f"{package}: update TRAINING_CODE to the training code's new place")
        for path in matched:
            digest.update(str(path.relative_to(package)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_key(**parts) -> str:
    """A short hash of configs (dataclasses), data identifiers and the training code's hash."""
    def plain(value):
        if dataclasses.is_dataclass(value):
            return dataclasses.asdict(value)
        return str(value) if isinstance(value, Path) else value

    text = json.dumps({k: plain(v) for k, v in parts.items()}, sort_keys=True, default=str)
    text += code_hash()
    return hashlib.sha256(text.encode()).hexdigest()[:16]
