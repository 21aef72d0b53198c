"""Turning stored image bytes into the model's input: CLIP's centre crop and the detector's image.

Two paths produce the same pixels (a test holds them to it). On the CPU, Pillow with JPEG draft mode
(libjpeg decodes at 1/2, 1/4 or 1/8 scale) costs a few ms an image beside ~50 ms of ViT-B-32. On CUDA,
JPEGs are decoded in one batched torchvision.io.decode_jpeg call on the device and resized there;
other formats, and JPEGs nvJPEG cannot read, fall back to Pillow.

Every decoder takes items [(image id, file name, bytes or the exception that stopped the read)] and
returns (ids, uint8 or float batch [B, 3, S, S] or None, detector inputs or None, failures), where
failures are (image id, reason): one damaged file fails itself, not its batch.
"""
import io
import math
import warnings

import numpy as np
from django.core.files.storage import default_storage
from PIL import Image as PILImage

# torchvision 0.29 points to torchcodec for decoding; its batched GPU decode_jpeg is still what we want.
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                        category=DeprecationWarning)

JPEG_MAGIC = b"\xff\xd8\xff"


def read_stored(name):
    """The file's bytes, or the exception that stopped us (a missing file fails one image, not the run)."""
    try:
        with default_storage.open(name, "rb") as fh:
            return fh.read()
    except Exception as exc:
        return exc


def _unreadable(image_id, exc):
    return image_id, f"unreadable: {type(exc).__name__}: {exc}"


def _short_side_resize(w, h, size):
    """open_clip's 'shortest' resize: the short side becomes `size`, the long side keeps the aspect."""
    if w <= h:
        return size, max(size, int(size * h / w))
    return max(size, int(size * w / h)), size


# --- CPU ------------------------------------------------------------------------------------------

def decode_pil(data, size, detector_size=None):
    """CPU path: (uint8 [3, size, size] numpy, detector float tensor or None)."""
    im = PILImage.open(io.BytesIO(data))
    w, h = im.size
    want = max(size, detector_size or 0)
    if im.format == "JPEG":
        # Ask libjpeg for the smallest scale whose short side still covers what we need.
        scale = want / min(w, h)
        im.draft("RGB", (math.ceil(w * scale), math.ceil(h * scale)))
    im = im.convert("RGB")
    det = None
    if detector_size:
        det = _detector_tensor(im, detector_size)
    # Resize only the centre crop's source box: the same pixels as resize-then-crop, half the work.
    nw, nh = _short_side_resize(im.width, im.height, size)
    sx, sy = im.width / nw, im.height / nh
    left, top = (nw - size) // 2, (nh - size) // 2
    box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
    im = im.resize((size, size), PILImage.BICUBIC, box=box)
    return np.asarray(im).transpose(2, 0, 1), det


def _detector_tensor(im, detector_size):
    import torch

    if min(im.size) > detector_size:
        nw, nh = _short_side_resize(im.width, im.height, detector_size)
        im = im.resize((nw, nh), PILImage.BILINEAR)
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float().div_(255.0)


def decode_batch_cpu(items, size, detector_size=None):
    """items: [(id, name, data)] -> (ids, uint8 tensor [B, 3, S, S], detector inputs, failures)."""
    import torch

    ids, arrays, dets, failures = [], [], [], []
    for image_id, _name, data in items:
        if isinstance(data, Exception):
            failures.append(_unreadable(image_id, data))
            continue
        try:
            arr, det = decode_pil(data, size, detector_size)
        except Exception as exc:  # a damaged file must not sink its batch
            failures.append((image_id, f"{type(exc).__name__}: {exc}"))
            continue
        ids.append(image_id)
        arrays.append(arr)
        dets.append(det)
    batch = torch.from_numpy(np.stack(arrays)) if arrays else None
    return ids, batch, (dets if detector_size else None), failures


# --- CUDA (or any torch device) -------------------------------------------------------------------

def decode_batch_tensor(items, size, device, detector_size=None):
    """GPU path: JPEGs decoded in one batched torchvision.io.decode_jpeg call on `device`, others with
    Pillow; every image resized on the device, images of the same shape in one interpolate call."""
    failures = [_unreadable(image_id, data) for image_id, _name, data in items if isinstance(data, Exception)]
    readable = [(image_id, data) for image_id, _name, data in items if not isinstance(data, Exception)]
    ids, tensors, decode_failures = _decode_on_device(readable, device)
    failures += decode_failures
    if not tensors:
        return ids, None, None, failures
    dets = _detector_inputs(tensors, detector_size) if detector_size else None
    return ids, _centre_crops(tensors, size, device), dets, failures


def _decode_on_device(items, device):
    """items: [(id, bytes)] -> (ids, uint8 [3, H, W] tensors on `device`, failures)."""
    import torch

    decoded = _decode_jpegs(items, device)
    ids, tensors, failures = [], [], []
    for i, (image_id, data) in enumerate(items):
        t = decoded.get(i)
        if t is None:
            try:
                im = PILImage.open(io.BytesIO(data)).convert("RGB")
                t = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).to(device, non_blocking=True)
            except Exception as exc:
                failures.append((image_id, f"{type(exc).__name__}: {exc}"))
                continue
        ids.append(image_id)
        tensors.append(t)
    return ids, tensors, failures


def _decode_jpegs(items, device):
    """{index in items: tensor} for the JPEGs nvJPEG could decode; the rest are left to Pillow."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    jpeg_idx = [i for i, (_, data) in enumerate(items) if data[:3] == JPEG_MAGIC]
    if not jpeg_idx:
        return {}
    raw = [torch.frombuffer(bytearray(items[i][1]), dtype=torch.uint8) for i in jpeg_idx]
    try:
        return dict(zip(jpeg_idx, decode_jpeg(raw, mode=ImageReadMode.RGB, device=device), strict=True))
    except Exception:  # one bad file fails the whole batched call: retry one by one
        decoded = {}
        for i, r in zip(jpeg_idx, raw, strict=True):
            try:
                decoded[i] = decode_jpeg(r, mode=ImageReadMode.RGB, device=device)
            except Exception:
                pass  # Pillow gets its turn
        return decoded


def _centre_crops(tensors, size, device):
    """float [B, 3, size, size]: short side resized to `size`, then the centre crop, as open_clip does."""
    import torch
    import torch.nn.functional as F

    batch = torch.empty((len(tensors), 3, size, size), dtype=torch.float32, device=device)
    by_shape = {}
    for j, t in enumerate(tensors):
        by_shape.setdefault(tuple(t.shape), []).append(j)
    for (_, h, w), idx in by_shape.items():
        stack = torch.stack([tensors[j] for j in idx]).float()
        nw, nh = _short_side_resize(w, h, size)
        stack = F.interpolate(stack, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)
        top, left = (nh - size) // 2, (nw - size) // 2
        batch[idx] = stack[:, :, top:top + size, left:left + size].clamp_(0, 255)
    return batch


def _detector_inputs(tensors, detector_size):
    """The detector's float [3, H, W] images in [0, 1], short side shrunk to detector_size when larger."""
    import torch.nn.functional as F

    dets = []
    for t in tensors:
        h, w = t.shape[-2:]
        x = t.float().div_(255.0)
        if min(h, w) > detector_size:
            nw, nh = _short_side_resize(w, h, detector_size)
            x = F.interpolate(x[None], size=(nh, nw), mode="bilinear", antialias=True)[0]
        dets.append(x)
    return dets
