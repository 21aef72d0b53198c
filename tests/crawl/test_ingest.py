"""Every supported format is stored upright and 8-bit; hostile input is refused with a reason."""
import io
import re
import struct
import zlib

import pytest
from django.core.files.storage import default_storage
from PIL import Image as PILImage
from PIL import ImageChops, ImageFile, ImageStat, PngImagePlugin

from crawl.ingest import Filters, InvalidImage, Sighting, compute_dhash, decode, ingest_bytes
from crawl.models import Source
from curation.models import Image
from tests.images import encode, photo_like

pytestmark = pytest.mark.django_db


def sighting(name="x"):
    return Sighting(provider="folder", path=name)


def stored_pil(source):
    with default_storage.open(source.image.file.name) as fh:
        im = PILImage.open(io.BytesIO(fh.read()))
        im.load()
        return im


def test_plain_jpeg_keeps_original_bytes_and_makes_thumbnail():
    data = encode(photo_like(640, 480, 1), "JPEG", quality=90)
    source = ingest_bytes(data, sighting())
    assert source.outcome == "stored"
    image = source.image
    assert (image.width, image.height, image.format) == (640, 480, "jpeg")
    assert default_storage.open(image.file.name).read() == data
    assert image.file.name.startswith(f"images/{image.sha256[:2]}/{image.sha256[2:4]}/{image.sha256}")
    thumb = PILImage.open(default_storage.open(image.thumbnail.name))
    assert max(thumb.size) <= 320
    assert image.dhash == compute_dhash(PILImage.open(io.BytesIO(data)))


def test_png_with_alpha_stays_png_with_alpha():
    im = photo_like(400, 300, 2).convert("RGBA")
    im.putpixel((0, 0), (0, 0, 0, 0))
    source = ingest_bytes(encode(im, "PNG"), sighting())
    assert source.outcome == "stored" and source.image.format == "png"
    assert stored_pil(source).mode == "RGBA"


def test_opaque_png_becomes_jpeg():
    source = ingest_bytes(encode(photo_like(400, 300, 3).convert("RGBA"), "PNG"), sighting())
    assert source.image.format == "jpeg"


def test_webp_is_stored_as_jpeg():
    source = ingest_bytes(encode(photo_like(400, 300, 4), "WEBP"), sighting())
    assert source.outcome == "stored" and source.image.format == "jpeg"


def test_gif_first_frame():
    frames = [photo_like(400, 300, 5).convert("P"), photo_like(400, 300, 6).convert("P")]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    source = ingest_bytes(buf.getvalue(), sighting())
    assert source.outcome == "stored"
    got = stored_pil(source).convert("RGB")

    def distance(frame):
        return ImageStat.Stat(ImageChops.difference(got, frame.convert("RGB")).convert("L")).mean[0]

    assert distance(frames[0]) < distance(frames[1]) / 2


def test_exif_rotated_jpeg_is_stored_upright():
    im = photo_like(600, 400, 7)
    exif = PILImage.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    source = ingest_bytes(encode(im, "JPEG", exif=exif.tobytes()), sighting())
    assert source.outcome == "stored"
    assert (source.image.width, source.image.height) == (400, 600)
    assert stored_pil(source).getexif().get(0x0112, 1) == 1


def test_cmyk_jpeg_is_stored_rgb():
    source = ingest_bytes(encode(photo_like(400, 300, 8).convert("CMYK"), "JPEG"), sighting())
    assert source.outcome == "stored" and stored_pil(source).mode == "RGB"


def test_16_bit_png_is_stored_8_bit():
    im16 = PILImage.new("I;16", (400, 300))
    im16.putdata([(x * 160) % 65536 for x in range(400 * 300)])
    source = ingest_bytes(encode(im16, "PNG"), sighting())
    assert source.outcome == "stored"
    stored = stored_pil(source)
    assert stored.mode == "L" and stored.getextrema()[1] > 100


def test_palette_png_with_transparency_keeps_alpha():
    im = photo_like(400, 300, 9).convert("P", palette=PILImage.ADAPTIVE, colors=16)
    im.info["transparency"] = 0
    source = ingest_bytes(encode(im, "PNG", transparency=0), sighting())
    assert source.outcome == "stored" and source.image.format == "png"
    assert stored_pil(source).mode == "RGBA"


def _png_chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


HOSTILE = {
    "zero bytes": (b"", "empty"),
    "truncated jpeg": (encode(photo_like(640, 480, 10), "JPEG")[:3000], "corrupt or truncated"),
    "html as jpeg": (b"<!doctype html><html><script>alert(1)</script></html>", "not an image"),
    "svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="500" height="500"><script>x</script></svg>',
            "not an image"),
    "absurd dimensions": (
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 10)) + _png_chunk(b"IEND", b""),
        "(pixel limit|decompression bomb)",
    ),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_input_is_invalid_and_changes_nothing(name):
    data, reason = HOSTILE[name]
    before = set(default_storage.listdir("")[0]) if default_storage.exists("") else set()
    source = ingest_bytes(data, sighting(name))
    assert source.outcome == "invalid"
    assert re.search(reason, source.reason)
    assert Image.objects.count() == 0
    after = set(default_storage.listdir("")[0]) if default_storage.exists("") else set()
    assert after == before


def test_decompression_bomb_is_refused(settings):
    settings.SCENEIMG_MAX_PIXELS = 10_000_000_000  # our own limit out of the way: Pillow's must catch it
    data = encode(PILImage.new("L", (15000, 15000)), "PNG")  # 225 Mpx: over Pillow's error limit (2 x 89.5 Mpx)
    source = ingest_bytes(data, sighting())
    assert source.outcome == "invalid" and "decompression bomb" in source.reason
    assert Image.objects.count() == 0


def huge_png(width, height):
    """A 1-bit PNG of any dimensions in a few kB (every row is a filter byte and zeros)."""
    row = b"\0" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b""))


@pytest.fixture
def decoded_sizes(monkeypatch):
    """The sizes of the images whose pixels were decoded (ImageFile.load) during the test."""
    sizes = []
    real_load = ImageFile.ImageFile.load

    def load(self):
        sizes.append(self.size)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return sizes


@pytest.mark.parametrize("side", [9500, 13000])  # 90 and 169 Mpx
def test_pillows_warning_range_is_refused_too(settings, side):
    settings.SCENEIMG_MAX_PIXELS = 10_000_000_000  # our own limit out of the way: only Pillow's applies
    # Over Pillow's warning limit, under its error limit (twice the warning): Pillow itself only warns here.
    assert PILImage.MAX_IMAGE_PIXELS < side * side < 2 * PILImage.MAX_IMAGE_PIXELS
    with pytest.raises(InvalidImage, match="decompression bomb"):
        decode(huge_png(side, side))


def test_just_under_pillows_warning_limit_decodes(settings):
    settings.SCENEIMG_MAX_PIXELS = 10_000_000_000
    side = 9000  # 81 Mpx
    assert side * side < PILImage.MAX_IMAGE_PIXELS
    assert decode(huge_png(side, side)).size == (side, side)


def test_our_pixel_limit_refuses_before_decoding(settings, decoded_sizes):
    settings.SCENEIMG_MAX_PIXELS = 1_000_000  # far under Pillow's limits: only ours applies
    with pytest.raises(InvalidImage, match="1001x1000 is over the 1000000-pixel limit"):
        decode(huge_png(1001, 1000))
    assert decoded_sizes == []  # refused from the header: no pixel was decoded
    assert decode(huge_png(1000, 1000)).size == (1000, 1000)
    assert decoded_sizes == [(1000, 1000)]


def test_png_html_polyglot_only_reencoded_pixels_are_stored():
    # Real transparency, so a clean PNG would be stored byte for byte: only the trailer forces a re-encode.
    im = photo_like(400, 300, 11).convert("RGBA")
    im.putpixel((0, 0), (0, 0, 0, 0))
    png = encode(im, "PNG", compress_level=1)  # not the app's level, so a re-encode has other bytes
    polyglot = png + b"<html><script>alert(document.cookie)</script></html>"
    source = ingest_bytes(polyglot, sighting())
    assert source.outcome == "stored" and source.image.format == "png"
    stored = default_storage.open(source.image.file.name).read()
    assert b"<script" not in stored and b"<html" not in stored
    assert stored != png  # re-encoded, not the original bytes cut short
    assert stored_pil(source).convert("RGBA").tobytes() == im.tobytes()  # the same pixels (PNG is lossless)


def test_markup_in_a_png_text_chunk_is_not_stored():
    # Real transparency: without the markup this PNG would be stored byte for byte.
    im = photo_like(400, 300, 15).convert("RGBA")
    im.putpixel((0, 0), (0, 0, 0, 0))
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "<script>alert(document.cookie)</script>")
    source = ingest_bytes(encode(im, "PNG", pnginfo=info), sighting())
    assert source.outcome == "stored" and source.image.format == "png"
    assert b"<script" not in default_storage.open(source.image.file.name).read()


def test_markup_in_a_jpeg_comment_is_not_stored():
    data = encode(photo_like(400, 300, 16), "JPEG", quality=90, comment=b"<script>alert(1)</script>")
    source = ingest_bytes(data, sighting())
    assert source.outcome == "stored"
    assert b"<script" not in default_storage.open(source.image.file.name).read()


def test_size_and_aspect_filters():
    small = ingest_bytes(encode(photo_like(100, 80, 12), "JPEG"), sighting())
    assert small.outcome == "invalid" and "too small" in small.reason
    wide = ingest_bytes(encode(photo_like(1600, 300, 13), "JPEG"), sighting())
    assert wide.outcome == "invalid" and "aspect ratio" in wide.reason
    relaxed = ingest_bytes(encode(photo_like(100, 80, 12), "JPEG"), sighting(),
                           filters=Filters(min_width=64, min_height=64, max_aspect=3))
    assert relaxed.outcome == "stored"


def test_same_picture_twice_is_one_image_two_sources():
    data = encode(photo_like(500, 400, 14), "JPEG")
    first = ingest_bytes(data, sighting("a"))
    second = ingest_bytes(data, sighting("b"))
    assert (first.outcome, second.outcome) == ("stored", "duplicate")
    assert first.image_id == second.image_id
    assert Image.objects.count() == 1 and Source.objects.count() == 2
