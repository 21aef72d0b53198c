"""Loading the CLIP model and its prompt set, without ever waiting on the network.

Scoring reads weights only from the local cache (Hugging Face cache, the open_clip URL cache, or a
checkpoint file). Missing weights fail at once with the setting to change and the command that
fetches them; `python manage.py fetch_models` is the only place that downloads.
"""
import json
import logging
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from django.conf import settings

log = logging.getLogger(__name__)

PROMPTS_DIR = Path(__file__).resolve().parent / "clip_prompts"
REQUIRED_LABELS = ("indoor", "outdoor", "tidy", "messy", "moderate")
FETCH_HINT = "run `python manage.py fetch_models` on a machine with internet access"
# Filenames open_clip looks for in a Hugging Face repo, safest first.
HF_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


class ModelWeightsMissing(RuntimeError):
    """The configured weights are not on this machine and scoring does not download them."""


class ModelConfigError(RuntimeError):
    """A model setting names something that does not exist."""


# --- where weights live -------------------------------------------------------------------------

def hf_cache_dir():
    base = settings.SCENEIMG_MODEL_DIR
    return str(Path(base) / "hf") if base else None  # None: huggingface_hub's own default


def torch_hub_dir():
    import torch

    base = settings.SCENEIMG_MODEL_DIR
    return str(Path(base) / "torch") if base else torch.hub.get_dir()


@contextmanager
def hub_offline(offline=True):
    """Force huggingface_hub on or off line for a block.

    HF_HUB_OFFLINE is read once at import, so the module constant is what actually counts; we set
    both so nested libraries that read either one never try (and hang on) the network.
    """
    from huggingface_hub import constants

    old_const, old_env = constants.HF_HUB_OFFLINE, os.environ.get("HF_HUB_OFFLINE")
    constants.HF_HUB_OFFLINE = offline
    os.environ["HF_HUB_OFFLINE"] = "1" if offline else "0"
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old_const
        if old_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old_env


# --- which weights the settings name ------------------------------------------------------------

def _looks_like_path(value):
    return os.sep in value or value.endswith((".pt", ".pth", ".bin", ".safetensors", ".ckpt"))


@dataclass(frozen=True)
class ClipSpec:
    """What SCENEIMG_CLIP_MODEL and SCENEIMG_CLIP_PRETRAINED resolve to."""

    model_name: str  # as configured, e.g. "ViT-B-32"
    pretrained: str  # as configured: a tag, a path or "none"
    arch: str  # what open_clip builds, e.g. "ViT-B-32-quickgelu" for the openai tag
    weights_label: str  # the weights part of the scorer key
    tag_cfg: dict = field(default_factory=dict, compare=False)
    checkpoint_path: str | None = None  # a local file, when the weights are a file

    @property
    def uncalibrated(self):
        return self.pretrained.lower() == "none"

    @property
    def quick_gelu(self):
        return bool(self.tag_cfg.get("quick_gelu")) and not self.arch.endswith("-quickgelu")


def resolve_clip_spec(model_name=None, pretrained=None):
    import open_clip

    model_name = model_name or settings.SCENEIMG_CLIP_MODEL
    pretrained = (pretrained if pretrained is not None else settings.SCENEIMG_CLIP_PRETRAINED).strip()
    if model_name not in open_clip.list_models():
        raise ModelConfigError(
            f"SCENEIMG_CLIP_MODEL={model_name!r} is not an open_clip architecture "
            f"(e.g. ViT-B-32, ViT-B-16, ViT-L-14)"
        )
    if not pretrained or pretrained.lower() == "none":
        return ClipSpec(model_name, "none", model_name, "none")
    if os.path.isfile(pretrained) or _looks_like_path(pretrained):
        if not os.path.isfile(pretrained):
            raise ModelWeightsMissing(
                f"SCENEIMG_CLIP_PRETRAINED={pretrained!r} looks like a checkpoint path but no such file exists"
            )
        label = f"file-{Path(pretrained).name}-{os.path.getsize(pretrained)}"
        return ClipSpec(model_name, pretrained, model_name, label, {}, pretrained)
    tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    if not tag_cfg:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(model_name)) or "none known"
        raise ModelConfigError(
            f"SCENEIMG_CLIP_PRETRAINED={pretrained!r} is not a pretrained tag of {model_name} "
            f"(known tags: {tags}), not a checkpoint file, and not 'none'"
        )
    return ClipSpec(model_name, pretrained, model_name, pretrained, dict(tag_cfg))


def _hf_repo_and_files(tag_cfg):
    hub = tag_cfg["hf_hub"]
    if hub.endswith("/"):  # open_clip's convention: a repo with the default weight file names
        return hub.rstrip("/"), HF_WEIGHT_FILES
    repo, filename = os.path.split(hub)
    return repo, (filename,)


def _url_cache_path(url):
    base = settings.SCENEIMG_MODEL_DIR
    cache = Path(base) / "clip" if base else Path("~/.cache/clip").expanduser()
    return cache / os.path.basename(url)


def clip_checkpoint(spec, *, download=False):
    """The local weights file for `spec`; with download=False only the cache is consulted (no network)."""
    if spec.uncalibrated:
        return None
    if spec.checkpoint_path:
        return spec.checkpoint_path
    cfg = spec.tag_cfg
    if cfg.get("hf_hub"):
        from huggingface_hub import hf_hub_download

        repo, files = _hf_repo_and_files(cfg)
        errors = []
        with hub_offline(not download):
            for filename in files:
                try:
                    return hf_hub_download(
                        repo, filename, cache_dir=hf_cache_dir(), local_files_only=not download
                    )
                except Exception as exc:  # EntryNotFound / LocalEntryNotFound / offline
                    errors.append(f"{filename}: {type(exc).__name__}")
        if download:
            raise ModelWeightsMissing(f"could not download {repo} ({'; '.join(errors)})")
        raise ModelWeightsMissing(
            f"CLIP weights SCENEIMG_CLIP_MODEL={spec.model_name!r} SCENEIMG_CLIP_PRETRAINED={spec.pretrained!r} "
            f"(Hugging Face repo {repo}) are not in the local cache ({hf_cache_dir() or 'HF_HOME'}); "
            f"{FETCH_HINT}, or set SCENEIMG_CLIP_PRETRAINED to a checkpoint file or to 'none' "
            f"(random weights, uncalibrated scores)"
        )
    if cfg.get("url"):
        target = _url_cache_path(cfg["url"])
        if target.is_file():
            return str(target)
        if download:
            from open_clip.pretrained import download_pretrained_from_url

            return download_pretrained_from_url(cfg["url"], cache_dir=str(target.parent))
        raise ModelWeightsMissing(
            f"CLIP weights SCENEIMG_CLIP_PRETRAINED={spec.pretrained!r} are not at {target}; {FETCH_HINT}"
        )
    raise ModelConfigError(f"pretrained tag {spec.pretrained!r} has no download source")


def embedding_key(spec):
    """What an image embedding depends on: the model and its weights (not the prompt set)."""
    return f"{spec.model_name}:{spec.weights_label}"


def configured_embedding_key():
    """embedding_key(resolve_clip_spec()) read off the settings alone: web requests ask for it, and
    importing open_clip to check the names costs a web process seconds."""
    pretrained = settings.SCENEIMG_CLIP_PRETRAINED.strip()
    if not pretrained or pretrained.lower() == "none":
        label = "none"
    elif os.path.isfile(pretrained):
        label = f"file-{Path(pretrained).name}-{os.path.getsize(pretrained)}"
    else:
        label = pretrained
    return f"{settings.SCENEIMG_CLIP_MODEL}:{label}"


def clip_key(spec, prompt_version):
    """The CLIP part of a FilterScore's scorer key: model, weights and prompt set version."""
    return f"clip:{spec.model_name}:{spec.weights_label}:prompts-{prompt_version}"


# --- prompt sets --------------------------------------------------------------------------------

@dataclass(frozen=True)
class PromptSet:
    version: str
    labels: dict  # label -> tuple of sentences, in file order

    @property
    def label_names(self):
        return tuple(self.labels)


def load_prompt_set(version=None):
    version = version or settings.SCENEIMG_CLIP_PROMPTS
    path = PROMPTS_DIR / f"{version}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROMPTS_DIR.glob("*.json")))
        raise ModelConfigError(f"SCENEIMG_CLIP_PROMPTS={version!r}: no {path} (known: {known})")
    data = json.loads(path.read_text(encoding="utf-8"))
    labels = {name: tuple(sentences) for name, sentences in data["labels"].items()}
    missing = [name for name in REQUIRED_LABELS if not labels.get(name)]
    if missing:
        raise ModelConfigError(f"prompt set {path} lacks sentences for {', '.join(missing)}")
    return PromptSet(data.get("version", version), labels)


# --- devices and threads ------------------------------------------------------------------------

def resolve_device(device=None):
    import torch

    device = (device or settings.SCENEIMG_DEVICE or "auto").lower()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelConfigError(f"device {device!r} asked for, but torch sees no CUDA device")
    return device


_threads_lock = threading.Lock()


def configure_cpu_threads():
    """One intra-op thread per core: the ViT matmuls scale with cores, decoding runs beside them."""
    import torch

    with _threads_lock:
        want = settings.SCENEIMG_TORCH_THREADS or os.cpu_count() or 1
        if torch.get_num_threads() != want:
            torch.set_num_threads(want)
    return want


# --- the scorer ---------------------------------------------------------------------------------

class ClipScorer:
    """A loaded model plus its prompt set's text embeddings (computed once, at load)."""

    def __init__(self, spec, prompts, device):
        import open_clip
        import torch

        self.spec, self.prompts, self.device = spec, prompts, device
        self.uncalibrated = spec.uncalibrated
        self.dtype = torch.float16 if device.startswith("cuda") else torch.float32
        checkpoint = clip_checkpoint(spec)  # raises ModelWeightsMissing before any slow work
        preprocess = {k: v for k, v in spec.tag_cfg.items() if k in ("mean", "std", "interpolation", "resize_mode")}
        with hub_offline(True), torch.random.fork_rng(devices=[]):
            # Random weights are seeded so every worker builds the same "uncalibrated" model and
            # reruns reproduce their scores.
            torch.manual_seed(0)
            model = open_clip.create_model(
                spec.arch, pretrained=checkpoint, force_quick_gelu=spec.quick_gelu,
                force_preprocess_cfg=preprocess or None, device="cpu", cache_dir=hf_cache_dir(),
            )
            tokenizer = open_clip.get_tokenizer(spec.arch, cache_dir=hf_cache_dir())
        model.eval()
        cfg = open_clip.get_model_preprocess_cfg(model)
        size = cfg.get("size", 224)
        self.image_size = size if isinstance(size, int) else size[0]
        self.mean = tuple(cfg.get("mean"))
        self.std = tuple(cfg.get("std"))
        self.model = model.to(device=device, dtype=self.dtype)
        self.tokenizer = tokenizer
        self.text_features = self._encode_prompts(tokenizer)  # [labels, dim], fp32, normalised
        # [dim, labels] on the host: stored embeddings times this are the prompt scores.
        self.label_weights = self.text_features.T.float().cpu().numpy()

    @property
    def key(self):
        return clip_key(self.spec, self.prompts.version)

    def _encode_prompts(self, tokenizer):
        import torch

        rows = []
        with torch.inference_mode():
            for sentences in self.prompts.labels.values():
                tokens = tokenizer(list(sentences)).to(self.device)
                feats = self.model.encode_text(tokens).float()
                feats = feats / feats.norm(dim=-1, keepdim=True)
                mean = feats.mean(dim=0)
                rows.append(mean / mean.norm())
        return torch.stack(rows)

    def normalise(self, batch_uint8):
        """[B, 3, S, S] uint8 (any device) -> model input on the model's device and dtype."""
        import torch

        x = batch_uint8.to(self.device, non_blocking=True).to(self.dtype).div_(255.0)
        mean = torch.tensor(self.mean, device=self.device, dtype=self.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=self.device, dtype=self.dtype).view(1, 3, 1, 1)
        return x.sub_(mean).div_(std)

    def score(self, batch_uint8):
        """Cosine similarity of each image with each prompt label: float32 numpy [B, labels]."""
        import torch

        with torch.inference_mode():
            feats = self.model.encode_image(self.normalise(batch_uint8)).float()
            feats = feats / feats.norm(dim=-1, keepdim=True)
            return (feats @ self.text_features.T).cpu().numpy()

    @property
    def embedding_key(self):
        return embedding_key(self.spec)

    def encode_images(self, batch_uint8):
        """Normalised image embeddings, float16 numpy [B, dim]: what is stored, and what scores are computed
        from, so a score from a fresh image and one from its stored embedding are the same number."""
        import torch

        with torch.inference_mode():
            feats = self.model.encode_image(self.normalise(batch_uint8)).float()
            feats = feats / feats.norm(dim=-1, keepdim=True)
            return feats.cpu().numpy().astype("float16")

    def encode_texts(self, sentences):
        """Normalised text embeddings, float32 numpy [len(sentences), dim]."""
        import torch

        with torch.inference_mode():
            tokens = self.tokenizer(list(sentences)).to(self.device)
            feats = self.model.encode_text(tokens).float()
            return (feats / feats.norm(dim=-1, keepdim=True)).cpu().numpy()

    def scores_from_embeddings(self, embeddings):
        """Cosine similarity of stored (float16) embeddings with each prompt label: float32 [B, labels]."""
        import numpy as np

        return np.asarray(embeddings, dtype=np.float32) @ self.label_weights


_load_lock = threading.Lock()


@lru_cache(maxsize=4)
def _cached_scorer(model_name, pretrained, device, prompt_version):
    spec = resolve_clip_spec(model_name, pretrained)
    return ClipScorer(spec, load_prompt_set(prompt_version), device)


def get_clip_scorer(device=None, *, model_name=None, pretrained=None, prompt_version=None):
    """The process-wide scorer for these settings: loaded once, reused by every batch and job."""
    device = resolve_device(device)
    if device == "cpu":
        configure_cpu_threads()
    with _load_lock:
        return _cached_scorer(
            model_name or settings.SCENEIMG_CLIP_MODEL,
            settings.SCENEIMG_CLIP_PRETRAINED if pretrained is None else pretrained,
            device,
            prompt_version or settings.SCENEIMG_CLIP_PROMPTS,
        )


def check_clip_weights(model_name=None, pretrained=None):
    """Fail fast (no model build) when the configured weights are absent. Returns the spec."""
    spec = resolve_clip_spec(model_name, pretrained)
    clip_checkpoint(spec)
    load_prompt_set()
    return spec
