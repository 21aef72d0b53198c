"""Object counting with torchvision's Faster R-CNN R50-FPN v2, the original filter_basic.py's detector,
for the optional object-count bounds.

Many times the cost of the CLIP image tower, so it is built and run only when a count bound is asked
for. Weights come from the local torch hub cache (COCO_V1, what the original's DEFAULT named), a .pth
file, or "none" (random init). Like the original, it keeps torchvision's default of at most 100
detections per image, so a count is at most 100.
"""
import logging
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from django.conf import settings

from curation.clip import FETCH_HINT, ModelConfigError, ModelWeightsMissing, resolve_device, torch_hub_dir

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class DetectorSpec:
    weights: str  # "coco_v1", "none" or a file path
    min_size: int

    @property
    def uncalibrated(self):
        return self.weights == "none"

    @property
    def label(self):
        if os.path.isfile(self.weights):
            return f"file-{Path(self.weights).name}"
        return self.weights


def resolve_detector_spec(weights=None, min_size=None):
    weights = (weights if weights is not None else settings.SCENEIMG_DETECTOR_WEIGHTS).strip()
    if not weights:
        weights = "none" if settings.SCENEIMG_CLIP_PRETRAINED.strip().lower() in ("", "none") else "coco_v1"
    if weights.lower() == "none":
        weights = "none"
    elif weights.lower() == "coco_v1":
        weights = "coco_v1"
    elif not os.path.isfile(weights):
        raise ModelConfigError(
            f"SCENEIMG_DETECTOR_WEIGHTS={weights!r} is neither 'coco_v1', 'none' nor an existing .pth file"
        )
    return DetectorSpec(weights, int(min_size or settings.SCENEIMG_DETECTOR_MIN_SIZE))


def detector_key(spec, threshold):
    return f"frcnn-r50fpn-v2:{spec.label}:s{spec.min_size}:t{threshold:g}"


def _coco_weights():
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_V2_Weights

    return FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1


def detector_checkpoint(spec, *, download=False):
    """Local path of the weights (None for random init). Never touches the network unless download."""
    if spec.weights == "none":
        return None
    if spec.weights != "coco_v1":
        return spec.weights
    url = _coco_weights().url
    target = Path(torch_hub_dir()) / "checkpoints" / os.path.basename(url)
    if target.is_file():
        return str(target)
    if download:
        import torch

        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(target), progress=True)
        return str(target)
    raise ModelWeightsMissing(
        f"detector weights SCENEIMG_DETECTOR_WEIGHTS=coco_v1 are not at {target}; {FETCH_HINT}, "
        f"or set SCENEIMG_DETECTOR_WEIGHTS to a .pth file or to 'none' (random weights, uncalibrated counts)"
    )


class ObjectCounter:
    def __init__(self, spec, device):
        import torch
        from torchvision.models.detection import fasterrcnn_resnet50_fpn_v2

        self.spec, self.device = spec, device
        checkpoint = detector_checkpoint(spec)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # the same random detector in every worker
            # weights=None and weights_backbone=None: torchvision must not fetch anything itself.
            model = fasterrcnn_resnet50_fpn_v2(
                weights=None, weights_backbone=None, num_classes=91,
                min_size=spec.min_size, max_size=max(spec.min_size * 1333 // 800, spec.min_size),
            )
        if checkpoint:
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        self.model = model.eval().to(device)

    @property
    def uncalibrated(self):
        return self.spec.uncalibrated

    def key(self, threshold):
        return detector_key(self.spec, threshold)

    def count(self, images, threshold=DEFAULT_THRESHOLD):
        """images: list of float [3, H, W] tensors in 0..1. Returns the count above threshold per image."""
        import torch

        counts = []
        with torch.inference_mode(), torch.autocast("cuda", enabled=self.device.startswith("cuda")):
            outputs = self.model([im.to(self.device, non_blocking=True) for im in images])
        for out in outputs:
            counts.append(int((out["scores"] >= threshold).sum().item()))
        return counts


_load_lock = threading.Lock()


@lru_cache(maxsize=2)
def _cached_counter(weights, min_size, device):
    return ObjectCounter(resolve_detector_spec(weights, min_size), device)


def get_object_counter(device=None):
    device = resolve_device(device)
    spec = resolve_detector_spec()
    with _load_lock:
        return _cached_counter(spec.weights, spec.min_size, device)


def check_detector_weights():
    spec = resolve_detector_spec()
    detector_checkpoint(spec)
    return spec
