"""The picture a vision-language model is sent: a JPEG whose longest side is at most the model's side.

Most of a large picture's cost at 100 verdicts/s is here, so a JPEG is decoded at reduced scale by
libjpeg-turbo and not resampled when one of its scales fits (see prepare_image).
"""
import io
import math

import numpy as np
import simplejpeg
from django.conf import settings
from PIL import Image as PILImage
from PIL import ImageOps

# A downscaled image may come out this fraction of the longest side (a draft decode, a thumbnail).
SMALLEST_FRACTION = 0.75
_SUBSAMPLINGS = {"444", "422", "420", "440", "411"}  # those simplejpeg can encode


def prepare_image(data, longest_side=None, quality=None):
    """JPEG bytes of the image with its longest side at most `longest_side`; also (width, height) sent."""
    longest_side = longest_side or settings.SCENEIMG_VLM_IMAGE_SIDE
    quality = quality or settings.SCENEIMG_VLM_IMAGE_QUALITY
    with PILImage.open(io.BytesIO(data)) as im:
        orientation = im.getexif().get(0x0112, 1)
        if im.format == "JPEG" and im.mode == "RGB" and orientation == 1:
            if max(im.size) <= longest_side:
                return data, im.size  # already what we would send: no second lossy encode
            scaled = _scaled_jpeg(data, im.size, longest_side, quality)
            if scaled is not None:
                return scaled
        if im.format == "JPEG" and max(im.size) > longest_side:
            # libjpeg decodes straight to 1/2, 1/4 or 1/8 scale, a fraction of the CPU of decoding every
            # pixel and resampling them. Accept a result down to 3/4 of the target.
            k = SMALLEST_FRACTION * longest_side / max(im.size)
            im.draft("RGB", (max(1, round(im.size[0] * k)), max(1, round(im.size[1] * k))))
        im = ImageOps.exif_transpose(im)
        if im.mode in ("RGBA", "LA", "P"):
            im = im.convert("RGBA")
            flat = PILImage.new("RGB", im.size, (255, 255, 255))
            flat.paste(im, mask=im.getchannel("A"))
            im = flat
        elif im.mode != "RGB":
            im = im.convert("RGB")
        if max(im.size) > longest_side:
            im.thumbnail((longest_side, longest_side), PILImage.Resampling.BICUBIC)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=quality)
        return buf.getvalue(), im.size


def _scaled_jpeg(data, size, longest_side, quality):
    """An upright colour JPEG larger than the model's side, decoded by libjpeg-turbo straight to the
    smallest of its k/8 scales that keeps SMALLEST_FRACTION of the side, and encoded again by it.
    Most photo sizes land between 3/4 and all of the side (for the 1024 default, 1600x1200 at 4/8 and
    4000x3000 at 2/8), so the pixels are never resampled: at 100 verdicts/s the resampling was the
    stage's largest CPU cost.
    None when libjpeg cannot read it (the PIL path then decides what is wrong)."""
    floor = math.ceil(SMALLEST_FRACTION * longest_side)
    landscape = size[0] >= size[1]
    try:
        subsampling = simplejpeg.decode_jpeg_header(data)[3]
        pixels = simplejpeg.decode_jpeg(data, "RGB", min_width=floor if landscape else 1,
                                        min_height=1 if landscape else floor)
    except ValueError:
        return None
    if max(pixels.shape[:2]) > longest_side:  # no k/8 scale fits (a very large picture): resample this one
        im = PILImage.fromarray(pixels)
        im.thumbnail((longest_side, longest_side), PILImage.Resampling.BICUBIC)
        pixels = np.asarray(im)
    # The source's chroma subsampling, not simplejpeg's 4:4:4 default: no colour detail the picture had is
    # lost, and a 4:2:0 photo (most are) is not sent with twice the colour data, encoded in 30% more time.
    subsampling = subsampling if subsampling in _SUBSAMPLINGS else "444"
    return (simplejpeg.encode_jpeg(pixels, quality=quality, colorspace="RGB", colorsubsampling=subsampling),
            (pixels.shape[1], pixels.shape[0]))
