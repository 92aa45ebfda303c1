"""Images with transparency, decoded for the image path (``framewise.media.decode_image``)."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from framewise.media import BACKGROUND_ROWS, MediaError, decode_image, on_background

LIMIT = 8192 * 8192


def png(rgba: np.ndarray) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))[1].tobytes()


def test_dark_content_lies_on_white_and_light_content_on_black():
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[10:20, 10:50] = (30, 60, 90, 255)  # dark, opaque
    rgba[25:30, 10:50] = (30, 60, 90, 128)  # dark, half transparent
    image = decode_image(png(rgba), LIMIT)
    assert (image[0, 0] == 255).all()  # transparent
    assert image[15, 15].tolist() == [30, 60, 90]
    assert image[27, 15].tolist() == [142, 157, 172]  # halfway to white
    rgba[..., :3] = 255 - rgba[..., :3]
    image = decode_image(png(rgba), LIMIT)
    assert (image[0, 0] == 0).all()
    assert image[15, 15].tolist() == [225, 195, 165]


def test_a_transparent_palette_colour_is_transparent():
    picture = Image.new("P", (64, 32), 0)
    picture.putpalette([0, 0, 0, 20, 20, 20] + [0] * 762)
    picture.paste(1, (10, 10, 30, 20))
    gif = io.BytesIO()
    picture.save(gif, "GIF", transparency=0)
    image = decode_image(gif.getvalue(), LIMIT)
    assert image[0, 0].tolist() == [255, 255, 255]
    assert image[15, 15].tolist() == [20, 20, 20]


def test_a_transparent_image_is_turned_upright_by_its_exif_orientation():
    picture = Image.new("RGBA", (200, 100), (0, 0, 0, 0))
    picture.paste((0, 0, 255, 255), (0, 0, 100, 100))
    exif = picture.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    data = io.BytesIO()
    picture.save(data, "PNG", exif=exif)
    image = decode_image(data.getvalue(), LIMIT)
    assert image.shape == (200, 100, 3)
    assert image[0, 0].tolist() == [0, 0, 255]  # the blue half is on top
    assert image[-1, -1].tolist() == [255, 255, 255]


def test_a_truncated_transparent_image_is_corrupt_media():
    rgba = np.random.default_rng(0).integers(0, 256, (200, 200, 4), dtype=np.uint8)
    with pytest.raises(MediaError) as error:
        decode_image(png(rgba)[:2000], LIMIT)
    assert error.value.code == "corrupt_media"


def test_blending_by_rows_is_the_whole_image_blended_at_once():
    rng = np.random.default_rng(1)
    rgba = rng.integers(0, 256, (BACKGROUND_ROWS * 2 + 7, 33, 4), dtype=np.uint8)
    rgba[..., :3] //= 4  # dark: white background
    colour, alpha = rgba[..., :3].astype(np.int64), rgba[..., 3:].astype(np.int64)
    expected = (colour * alpha + 255 * (255 - alpha) + 127) // 255
    assert (on_background(rgba) == expected).all()


def test_an_opaque_image_decodes_as_before():
    rgb = np.random.default_rng(2).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
    assert (decode_image(data, LIMIT) == rgb).all()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64), "HEIC/HEIF"),
        (b"plain text, not a picture", "not an image in a format the service reads"),
    ],
)
def test_unreadable_bytes_say_what_is_read_instead(data, reason):
    with pytest.raises(MediaError) as error:
        decode_image(data, LIMIT)
    assert error.value.code == "unsupported_media"
    assert reason in str(error.value) and "JPEG, PNG, WebP, AVIF" in str(error.value)
