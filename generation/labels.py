"""The labels every generated file carries (GB 45438-2025): visible and implicit.

Visible: "AI生成 / AI-generated" and the platform mark in a box at the top left for the first
`LABEL_SECONDS` seconds, text at least 5% of the frame's short side; after that a smaller platform
mark that moves around the frame, so it cannot be cropped away by one fixed crop.

Implicit: a JSON object under the MP4 tag `AIGC` with the standard's fields.

The two CJK glyphs of the label are drawn from a 16x16 bitmap kept here, so labelling needs no
system CJK font; Latin text uses Pillow's bundled scalable font.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LABEL_SECONDS = 2.0
MIN_TEXT_FRACTION = 0.05
TEXT_FRACTION = 0.08
AIGC_KEY = "AIGC"
LABEL_TEXT = "AI生成 / AI-generated"

GLYPHS = {
    "生": [
        "................",
        "....#...........",
        "....#.....#.....",
        "...#......#.....",
        "...###########..",
        "..#.......#.....",
        ".#........#.....",
        "..........#.....",
        "...#########....",
        "..........#.....",
        "..........#.....",
        "..........#.....",
        "..........#.....",
        ".##############.",
        "................",
        "................",
    ],
    "成": [
        "...........#.#..",
        "...........#..#.",
        "..##############",
        "..#........#....",
        "..#........#..#.",
        "..#####....#..#.",
        "..#...#.....##..",
        "..#...#.....#...",
        "..#...#....##...",
        ".#....#...#..#..",
        ".#..###..#....#.",
        "#.......#......#",
        "................",
        "................",
        "................",
        "................",
    ],
}


def _glyph_image(char: str, size: int) -> Image.Image:
    rows = GLYPHS[char]
    bitmap = np.array([[255 if cell == "#" else 0 for cell in row] for row in rows], dtype=np.uint8)
    return Image.fromarray(bitmap, mode="L").resize((size, size), Image.Resampling.NEAREST)


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _text_width(text: str, size: int) -> int:
    font = _font(size)
    total = 0
    for char in text:
        total += size if char in GLYPHS else int(font.getlength(char))
    return total


def _draw_text(image: Image.Image, xy: tuple[int, int], text: str, size: int, fill=(255, 255, 255)) -> None:
    """Latin runs with the font, CJK glyphs from the bitmap; `size` is the text height in pixels."""
    draw = ImageDraw.Draw(image)
    font = _font(size)
    x, y = xy
    for char in text:
        if char in GLYPHS:
            image.paste(Image.new("RGB", (size, size), fill), (x, y), _glyph_image(char, size))
            x += size
        else:
            draw.text((x, y), char, font=font, fill=fill)
            x += int(font.getlength(char))


@dataclass(frozen=True)
class LabelLayout:
    text_px: int
    lines: tuple[str, ...]


def label_layout(width: int, height: int, platform_mark: str) -> LabelLayout:
    short_side = min(width, height)
    minimum = max(1, int(np.ceil(short_side * MIN_TEXT_FRACTION)))
    size = max(minimum, round(short_side * TEXT_FRACTION), 6)
    lines = ("AI生成", "AI-generated", platform_mark)
    widest = max(_text_width(line, size) for line in lines)
    while size > minimum and widest > width - 4:
        size -= 1
        widest = max(_text_width(line, size) for line in lines)
    return LabelLayout(text_px=size, lines=lines)


def stamp_visible_label(
    frames: np.ndarray, *, fps: int, platform_mark: str, in_place: bool = False
) -> np.ndarray:
    """Label box on the first LABEL_SECONDS, a moving platform mark on every later frame; on a copy,
    or `in_place` on `frames` themselves (a caller that owns them saves copying every frame when
    only patches change)."""
    count, height, width = frames.shape[:3]
    layout = label_layout(width, height, platform_mark)
    label_frames = min(count, int(np.ceil(LABEL_SECONDS * fps)))
    size = layout.text_px
    pad = max(1, size // 4)
    box_w = max(_text_width(line, size) for line in layout.lines) + 2 * pad
    box_h = len(layout.lines) * (size + pad) + pad
    label = Image.new("RGB", (box_w, box_h), (0, 0, 0))
    for index, line in enumerate(layout.lines):
        _draw_text(label, (pad, pad + index * (size + pad)), line, size)
    mark_size = max(int(np.ceil(min(width, height) * MIN_TEXT_FRACTION)), 6)
    mark_w = _text_width(platform_mark, mark_size) + 2
    out = frames if in_place else frames.copy()
    # Only the patch a label or mark covers goes through PIL (a whole frame in and out of PIL cost
    # more than the drawing); the patch reaches the frame's edge or twice the text's size, whichever
    # is nearer, so what is drawn is what drawing on the whole frame would draw.
    for index in range(count):
        if index < label_frames:
            patch = out[index, :box_h, :box_w]
            region = Image.fromarray(patch)
            blended = Image.blend(region, label.crop((0, 0, region.width, region.height)), 0.75)
            patch[...] = np.asarray(blended)
        else:
            # The mark travels along the frame's edge, a full lap every 4 seconds.
            phase = ((index - label_frames) / (4 * fps)) % 1.0
            x, y = _edge_position(phase, width - mark_w, height - mark_size - 2)
            patch = out[index, y : y + 2 * mark_size + 2, x : x + 2 * mark_w]
            image = Image.fromarray(patch)
            _draw_text(image, (0, 0), platform_mark, mark_size, fill=(235, 235, 235))
            patch[...] = np.asarray(image)
    return out


def _edge_position(phase: float, max_x: int, max_y: int) -> tuple[int, int]:
    max_x, max_y = max(max_x, 0), max(max_y, 0)
    perimeter = 2 * (max_x + max_y) or 1
    distance = phase * perimeter
    if distance < max_x:
        return int(distance), 0
    distance -= max_x
    if distance < max_y:
        return max_x, int(distance)
    distance -= max_y
    if distance < max_x:
        return int(max_x - distance), max_y
    distance -= max_x
    return 0, int(max(0, max_y - distance))


def aigc_metadata(*, content_id: str, producer: str, propagator: str = "", propagate_id: str = "") -> str:
    """The implicit label of GB 45438-2025: `Label` 1 means the content is AI-generated."""
    return json.dumps(
        {
            "Label": "1",
            "ContentProducer": producer,
            "ProduceID": content_id,
            "ReservedCode1": "",
            "ContentPropagator": propagator or producer,
            "PropagateID": propagate_id or content_id,
            "ReservedCode2": "",
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def read_aigc_metadata(metadata: dict[str, str]) -> dict | None:
    for key, value in metadata.items():
        if key.upper() == AIGC_KEY:
            try:
                parsed = json.loads(value)
            except (TypeError, ValueError):
                return None
            return parsed if isinstance(parsed, dict) else None
    return None
