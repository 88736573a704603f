"""Export trainer checkpoints as one clean, shippable MetaEmbed checkpoint, optionally averaging several.

Averaging the weights of the last checkpoints of one run (uniform checkpoint averaging, as in stochastic
weight averaging) smooths the step-to-step noise of a small-batch run. The LoRA factors A and B are averaged
separately, which is close to averaging their products only while the checkpoints are near one another on
the same trajectory: pass checkpoints of one run, a few steps apart. The export also points the adapter's
``base_model_name_or_path`` at the backbone spec of the MetaEmbed config (peft writes the absolute path of
the training machine's venv there) and leaves out peft's generated adapter README.

Usage:
    python benchmarks/starter/export_starter.py OUT CKPT [CKPT ...]
    python benchmarks/starter/export_starter.py /tmp/avg runs/mmr3/checkpoints/step-00003{50,75} ...
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

log = logging.getLogger("export_starter")
WEIGHT_FILES = ("meta_tokens.safetensors", "adapter/adapter_model.safetensors")
COPIED_FILES = ("metaembed_config.json", "adapter/adapter_config.json")


def model_folder(checkpoint: Path) -> Path:
    """A trainer checkpoint keeps its model under ``model/``; a plain model folder is used as is."""
    return checkpoint / "model" if (checkpoint / "model" / "metaembed_config.json").is_file() else checkpoint


def average(files: list[Path]) -> dict[str, torch.Tensor]:
    """The element-wise mean of safetensors files with the same keys and shapes (float64 accumulation)."""
    tensors = [load_file(str(f)) for f in files]
    keys = set(tensors[0])
    for f, t in zip(files, tensors, strict=True):
        if set(t) != keys or any(t[k].shape != tensors[0][k].shape for k in keys):
            raise SystemExit(f"{f} does not hold the same tensors as {files[0]}: not checkpoints of one recipe")
    return {k: (sum(t[k].double() for t in tensors) / len(tensors)).to(tensors[0][k].dtype) for k in sorted(keys)}


def export(out: Path, checkpoints: list[Path]) -> None:
    folders = [model_folder(c) for c in checkpoints]
    configs = [json.loads((f / "metaembed_config.json").read_text()) for f in folders]
    if any(c != configs[0] for c in configs):
        raise SystemExit("the checkpoints declare different MetaEmbed configs: not one recipe")
    if out.exists():
        raise SystemExit(f"{out} exists; pick a new folder (nothing is overwritten)")
    staging = out.with_name(out.name + ".partial")
    if staging.exists():
        raise SystemExit(f"{staging} exists (an interrupted export?); remove it first")
    (staging / "adapter").mkdir(parents=True)
    for name in COPIED_FILES:
        shutil.copyfile(folders[-1] / name, staging / name)
    adapter_config = json.loads((staging / "adapter/adapter_config.json").read_text())
    adapter_config["base_model_name_or_path"] = configs[0]["backbone"]
    (staging / "adapter/adapter_config.json").write_text(json.dumps(adapter_config, indent=2) + "\n")
    for name in WEIGHT_FILES:
        save_file(average([f / name for f in folders]), str(staging / name))
    staging.rename(out)
    log.info("exported %s from %d checkpoint(s): %s", out, len(folders), ", ".join(str(c) for c in checkpoints))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("checkpoints", type=Path, nargs="+")
    args = parser.parse_args()
    export(args.out, args.checkpoints)


if __name__ == "__main__":
    main()
