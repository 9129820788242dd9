"""A trainer checkpoint small enough to commit, so a training stage longer than a session resumes on a fresh machine.

On 2 CPU cores a DPO round is ~2 h and SFT ~8 h, while a session gives the chain about two hours; every session so far
started on a fresh machine, where the run folder (and its `checkpoint-N`) is gone. `keep_checkpoint` mirrors the
newest complete checkpoint of a run into the chain's ledger with its float32 tensors stored as bfloat16: the LoRA
adapter (r 8 on the 0.5B: 17 MiB -> 8.5 MiB) and the AdamW moments (35 MiB -> 17 MiB), so the optimiser and its
learning-rate schedule resume where they stopped (Trainer loads the scheduler only beside an optimiser file);
`restore_checkpoint` writes it back in float32. The cost is one rounding of the weights and moments to bfloat16,
the precision the forward and backward passes run in anyway (bf16 autocast); it is recorded in the mirror's
`mirror.json`. Small files (trainer state, scheduler, RNG states, training arguments) are copied as they are.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from recgpt.training.runs import complete_checkpoints

MANIFEST = "mirror.json"
HALVED = ("adapter_model.safetensors", "model.safetensors", "optimizer.pt")
"""The trained weights and the optimiser's moments: stored as bfloat16 in the mirror."""
SMALL_BYTES = 1 << 20
"""Other files up to this size (trainer state, scheduler, RNG states, arguments) are copied as they are; larger ones
(the tokenizer the trainer saves beside the adapter, which a resume never reads) are left out."""


def _step(folder: Path) -> int:
    return int(folder.name.split("-")[-1])


def mirrored_step(mirror: Path) -> int | None:
    try:
        return int(json.loads((mirror / MANIFEST).read_text())["step"])
    except (OSError, ValueError, KeyError):
        return None


def _cast(value: Any, source: Any, target: Any) -> Any:
    """Every floating tensor of `source` dtype in a nested optimiser state, cast to `target`."""
    import torch  # deferred: torch (seconds to import; the chain's CLI needs none of it until a stage stops)

    if isinstance(value, torch.Tensor):
        return value.to(target) if value.dtype == source and value.numel() > 1 else value
    if isinstance(value, dict):
        return {k: _cast(v, source, target) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cast(v, source, target) for v in value)
    return value


def _convert(source: Path, target: Path, to_bf16: bool) -> None:
    import torch  # deferred, as above
    from safetensors.torch import load_file, save_file

    src, dst = (torch.float32, torch.bfloat16) if to_bf16 else (torch.bfloat16, torch.float32)
    if source.suffix == ".safetensors":
        save_file({k: v.to(dst) if v.dtype == src else v for k, v in load_file(str(source)).items()}, str(target),
                  metadata={"format": "pt"})
    else:
        torch.save(_cast(torch.load(source, map_location="cpu", weights_only=True), src, dst), target)


def keep_checkpoint(run: Path, mirror: Path) -> int | None:
    """Mirror the run's newest complete checkpoint (when newer than the mirror); returns its step, or None if the run
    has none. Written beside the mirror and swapped in, so a kill mid-copy leaves the older mirror whole."""
    checkpoints = complete_checkpoints(run)
    if not checkpoints:
        return None
    newest = checkpoints[-1]
    kept = mirrored_step(mirror)
    if kept is not None and kept >= _step(newest):
        return kept
    tmp = mirror.with_name(mirror.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    halved: list[str] = []
    for path in sorted(newest.iterdir()):
        if not path.is_file():
            continue
        if path.name in HALVED:
            _convert(path, tmp / path.name, to_bf16=True)
            halved.append(path.name)
        elif path.stat().st_size <= SMALL_BYTES:
            shutil.copy2(path, tmp / path.name)
    (tmp / MANIFEST).write_text(json.dumps({"step": _step(newest), "checkpoint": newest.name, "bf16_from_fp32": halved}, indent=2))
    shutil.rmtree(mirror, ignore_errors=True)
    tmp.rename(mirror)
    return _step(newest)


def restore_checkpoint(mirror: Path, run: Path) -> int | None:
    """Write the mirror back as `<run>/checkpoint-N` in float32 when the run has no checkpoint as new; returns the
    step restored, or None."""
    step = mirrored_step(mirror)
    if step is None:
        return None
    local = complete_checkpoints(run)
    if local and _step(local[-1]) >= step:
        return None
    manifest = json.loads((mirror / MANIFEST).read_text())
    target = Path(run) / manifest["checkpoint"]
    tmp = target.with_name("." + target.name + ".restoring")  # outside the `checkpoint-*` a trainer resumes from
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for path in sorted(mirror.iterdir()):
        if path.name == MANIFEST:
            continue
        if path.name in manifest["bf16_from_fp32"]:
            _convert(path, tmp / path.name, to_bf16=False)
        else:
            shutil.copy2(path, tmp / path.name)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return step
