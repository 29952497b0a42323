"""A provenance test corpus built by code: originals, their transformed copies, unrelated clips.

Originals (what the database holds as posts) and unrelated clips (what must never verify) are made
from material that ships with installed packages or is drawn here:
- `photo`: a slow pan and zoom over a real photograph (scikit-image's and scikit-learn's sample
  images, insightface's group photo); the originals and the unrelated clips use disjoint photos;
- `scene`: coloured shapes moving over a smooth random background, one layout per seed;
- `tiny`: frames of the `tiny` model (random weights, so textured colour noise), upscaled;
- `sample`: the test media (tests/media.py) and the demo's sample clips (social/demo.py);
- `noise`: pure noise and drifting smooth noise fields.
Every clip except `sample` carries the visible label the worker stamps, so labelled posts differ
only by their content, as they do in production.

Transforms are libavfilter graphs run through PyAV (the ffmpeg libraries; the `ffmpeg` program
need not be installed), each output re-encoded with libx264 (CRF 23 unless the transform says) and
without metadata, like a re-upload: `TRANSFORMS` maps a name to its filter chain and CRF.
"""

from __future__ import annotations

import io
import itertools
import pathlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np
from PIL import Image

FPS = 30
SIZE = (270, 480)  # width, height: 9:16
SECONDS = 5

# The originals' photos and the unrelated clips' photos never overlap (motorcycle_left and _right
# are a stereo pair of one scene, so both are on one side).
ORIGINAL_PHOTOS = ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "china.jpg"]
UNRELATED_PHOTOS = [
    "flower.jpg",
    "camera.png",
    "brick.png",
    "grass.png",
    "gravel.png",
    "coins.png",
    "moon.png",
    "retina.jpg",
    "ihc.png",
    "cell.png",
    "clock_motion.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "color.png",
    "page.png",
    "text.png",
    "hubble_deep_field.jpg",
    "t1.jpg",
]


@dataclass(frozen=True)
class Transform:
    filters: tuple[tuple[str, str], ...] = ()
    crf: int = 23
    trim_s: float | None = None  # keep this many seconds from a start drawn by the clip's seed

    def then(self, other: Transform) -> Transform:
        return Transform(
            filters=self.filters + other.filters,
            crf=max(self.crf, other.crf),
            trim_s=self.trim_s or other.trim_s,
        )


SINGLE_TRANSFORMS: dict[str, Transform] = {
    "crf23": Transform(crf=23),
    "crf35": Transform(crf=35),
    "scale50": Transform((("scale", "w=trunc(iw/4)*2:h=trunc(ih/4)*2"),)),
    "scale25": Transform((("scale", "w=trunc(iw/8)*2:h=trunc(ih/8)*2"),)),
    "crop10": Transform((("crop", "w=trunc(iw*0.4)*2:h=trunc(ih*0.4)*2"),)),
    "mirror": Transform((("hflip", ""),)),
    "trim2s": Transform(trim_s=2.0),
    "fps24": Transform((("fps", "24"),)),
    "letterbox": Transform(
        (("pad", "w=trunc(max(iw\\,ih*16/9)/2)*2:h=trunc(max(ih\\,iw*9/16)/2)*2:x=(ow-iw)/2:y=(oh-ih)/2"),)
    ),
}
PAIRS = [
    ("scale50", "crf35"),
    ("crop10", "mirror"),
    ("trim2s", "scale50"),
    ("trim2s", "mirror"),
    ("fps24", "letterbox"),
    ("scale25", "crop10"),
    ("letterbox", "crf35"),
    ("crop10", "trim2s"),
    ("mirror", "scale25"),
    ("fps24", "trim2s"),
]
TRANSFORMS: dict[str, Transform] = {
    **SINGLE_TRANSFORMS,
    **{f"{a}+{b}": SINGLE_TRANSFORMS[a].then(SINGLE_TRANSFORMS[b]) for a, b in PAIRS},
}


@dataclass
class Clip:
    name: str
    kind: str
    frames: np.ndarray  # (F, H, W, 3) uint8
    fps: int = FPS
    seed: int = 0
    labelled: bool = True
    _data: bytes | None = field(default=None, repr=False)

    @property
    def data(self) -> bytes:
        """The clip as an H.264 MP4 (CRF 18, as the worker encodes)."""
        if self._data is None:
            self._data = encode(self.frames, fps=self.fps, crf=18)
        return self._data


# ---- material ---------------------------------------------------------------------------------


def _photo_dirs() -> list[pathlib.Path]:
    import insightface
    import skimage
    import sklearn

    return [
        pathlib.Path(skimage.__file__).parent / "data",
        pathlib.Path(sklearn.__file__).parent / "datasets" / "images",
        pathlib.Path(insightface.__file__).parent / "data" / "images",
    ]


def load_photo(name: str) -> np.ndarray:
    for folder in _photo_dirs():
        path = folder / name
        if path.exists():
            return np.asarray(Image.open(path).convert("RGB"))
    raise FileNotFoundError(name)


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    shrinking = width < image.shape[1] and height < image.shape[0]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def photo_pan(image: np.ndarray, *, seed: int, seconds: float = SECONDS, size=SIZE, fps=FPS) -> np.ndarray:
    """A camera moving slowly over the photo: a window of the output's aspect that pans (by at most
    a fifth of the photo) and zooms (by at most 15%) smoothly over the clip."""
    rng = np.random.default_rng(seed)
    width, height = size
    image_h, image_w = image.shape[:2]
    aspect = width / height
    full_h = min(image_h, image_w / aspect)
    scales = rng.uniform(0.6, 0.9), 0.0
    scales = (scales[0], float(np.clip(scales[0] + rng.uniform(-0.15, 0.15), 0.5, 0.95)))

    def window(scale, centre):
        h = full_h * scale
        w = h * aspect
        x = float(np.clip(centre[0] - w / 2, 0, image_w - w))
        y = float(np.clip(centre[1] - h / 2, 0, image_h - h))
        return x, y, w, h

    centre = rng.uniform(0.3, 0.7, size=2) * [image_w, image_h]
    move = rng.uniform(-0.1, 0.1, size=2) * [image_w, image_h]
    start = np.array(window(scales[0], centre - move))
    end = np.array(window(scales[1], centre + move))
    total = max(1, round(seconds * fps))
    frames = np.empty((total, height, width, 3), dtype=np.uint8)
    for index in range(total):
        t = index / max(1, total - 1)
        ease = t * t * (3 - 2 * t)
        x, y, w, h = start + (end - start) * ease
        x0, y0 = int(x), int(y)
        crop = image[y0 : y0 + max(2, int(h)), x0 : x0 + max(2, int(w))]
        frames[index] = _resize(crop, width, height)
    return frames


def _smooth_noise(rng, height: int, width: int, cells: int) -> np.ndarray:
    coarse = rng.random((cells, max(2, cells * width // height), 3)).astype(np.float32)
    return _resize((coarse * 255).astype(np.uint8), width, height)


def scene(*, seed: int, seconds: float = SECONDS, size=SIZE, fps=FPS) -> np.ndarray:
    """Shapes (discs and boxes, random colours) moving on smooth paths over a drifting smooth
    random background."""
    rng = np.random.default_rng(seed)
    width, height = size
    background = _smooth_noise(rng, height * 2, width * 2, int(rng.integers(3, 8)))
    drift = rng.uniform(-0.5, 0.5, size=2) * np.array([width, height])
    shapes = [
        {
            "disc": bool(rng.integers(2)),
            "size": rng.uniform(0.08, 0.3) * width,
            "color": rng.integers(0, 256, size=3),
            "path": rng.uniform(0, 1, size=(2, 2)),  # start and end, as fractions of the frame
            "wobble": rng.uniform(0, 2 * np.pi),
        }
        for _ in range(int(rng.integers(3, 8)))
    ]
    rows, cols = np.mgrid[0:height, 0:width]
    total = max(1, round(seconds * fps))
    frames = np.empty((total, height, width, 3), dtype=np.uint8)
    for index in range(total):
        t = index / max(1, total - 1)
        ox, oy = (np.array([width, height]) / 2 + drift * (t - 0.5)).astype(int)
        frame = background[oy : oy + height, ox : ox + width].copy()
        for shape in shapes:
            cx, cy = (shape["path"][0] + (shape["path"][1] - shape["path"][0]) * t) * [width, height]
            cy += 0.05 * height * np.sin(2 * np.pi * t + shape["wobble"])
            half = shape["size"] / 2
            if shape["disc"]:
                mask = (cols - cx) ** 2 + (rows - cy) ** 2 < half**2
            else:
                mask = (abs(cols - cx) < half) & (abs(rows - cy) < half * 0.6)
            frame[mask] = shape["color"]
        frames[index] = frame
    return frames


def noise(*, seed: int, seconds: float = SECONDS, size=SIZE, fps=FPS) -> np.ndarray:
    """Even seeds: fresh white noise every frame; odd seeds: a smooth noise field drifting."""
    rng = np.random.default_rng(seed)
    width, height = size
    total = max(1, round(seconds * fps))
    if seed % 2 == 0:
        return rng.integers(0, 256, size=(total, height, width, 3), dtype=np.uint8)
    field_ = _smooth_noise(rng, height * 2, width * 2, int(rng.integers(4, 16)))
    return np.stack(
        [
            field_[index % height : index % height + height, index % width : index % width + width]
            for index in range(total)
        ]
    )


def tiny_model_clip(
    renderer, *, prompt: str, seed: int, seconds: float = SECONDS, size=SIZE, fps=FPS
) -> np.ndarray:
    """The tiny model's frames for a prompt and seed (48x80), upscaled and held to fill the clip,
    as the worker stretches rendered frames to the requested duration."""
    from generation.backends import RenderRequest
    from generation.encoding import stretch_to_duration

    rendered = renderer.generate(
        RenderRequest(prompt=prompt, seed=seed, width=48, height=80, num_frames=9, num_inference_steps=2)
    )
    width, height = size
    upscaled = np.stack([_resize(frame, width, height) for frame in rendered])
    return stretch_to_duration(upscaled, duration_s=seconds, fps=fps)


def sample_media(*, seed: int, seconds: float = SECONDS, fps=FPS) -> np.ndarray:
    """The test suite's moving square (even seeds) or the demo's square-and-circle clip (odd)."""
    if seed % 2 == 0:
        from tests.media import moving_square_frames

        colors = [(230, 60, 40), (40, 200, 90), (60, 90, 230), (240, 220, 60), (250, 250, 250)]
        frames = moving_square_frames(seconds=seconds, size=SIZE, fps=fps, color=colors[seed // 2 % 5])
        return np.stack(list(frames))
    from social.demo import DEMO_POSTS, sample_frames

    color = DEMO_POSTS[seed // 2 % len(DEMO_POSTS)][3]
    frames = np.stack(list(sample_frames(color=color, seed=seed // 2)))
    return np.stack([_resize(frame, SIZE[0], SIZE[1]) for frame in frames])


def label(frames: np.ndarray, fps: int = FPS) -> np.ndarray:
    from generation.labels import stamp_visible_label

    return stamp_visible_label(frames, fps=fps, platform_mark="Reelforge")


# ---- the corpus -------------------------------------------------------------------------------

TINY_PROMPTS = [
    "a paper boat sailing at sunrise on a calm lake",
    "neon city street in the rain",
    "a hummingbird visiting red flowers",
    "a fox running through snow",
    "waves rolling onto a black sand beach",
]


def originals(renderer=None) -> Iterator[Clip]:
    """What the database holds as posts: one pan per original photo, three scenes and (with a
    renderer) two tiny-model clips."""
    for index, name in enumerate(ORIGINAL_PHOTOS):
        yield Clip(f"photo:{name}", "photo", label(photo_pan(load_photo(name), seed=index)), seed=index)
    for seed in (1, 2, 3):
        yield Clip(f"scene:{seed}", "scene", label(scene(seed=seed)), seed=seed)
    if renderer is not None:
        for seed in (1, 2):
            frames = tiny_model_clip(renderer, prompt=TINY_PROMPTS[0], seed=seed)
            yield Clip(f"tiny:{seed}", "tiny", label(frames), seed=seed)


def unrelated(renderer=None, *, count: int = 200, kinds: set[str] | None = None) -> Iterator[Clip]:
    """Clips that share nothing with the originals: photo pans over other photos, scenes and tiny
    clips with other seeds and prompts, the sample media and noise; `count` in all, of 2 to 8 s
    (only those of `kinds`, when given: each clip is the same with or without the filter)."""
    rng = np.random.default_rng(2026)
    makers: list[tuple[str, Callable[[int, float], np.ndarray], bool]] = []
    for name in UNRELATED_PHOTOS:
        for path in range(4):
            makers.append(
                (
                    f"photo:{name}:{path}",
                    lambda s, secs, n=name, p=path: photo_pan(load_photo(n), seed=100 + p, seconds=secs),
                    True,
                )
            )
    for seed in range(100, 160):
        makers.append((f"scene:{seed}", lambda s, secs, seed=seed: scene(seed=seed, seconds=secs), True))
    if renderer is not None:
        for prompt_index, seed in itertools.product(range(len(TINY_PROMPTS)), range(3, 7)):
            makers.append(
                (
                    f"tiny:{prompt_index}:{seed}",
                    lambda s, secs, p=prompt_index, seed=seed: tiny_model_clip(
                        renderer, prompt=TINY_PROMPTS[p], seed=seed, seconds=secs
                    ),
                    True,
                )
            )
    for seed in range(10):
        makers.append(
            (f"sample:{seed}", lambda s, secs, seed=seed: sample_media(seed=seed, seconds=secs), False)
        )
    seed = 0
    while len(makers) < count:
        makers.append(
            (f"noise:{seed}", lambda s, secs, seed=seed: noise(seed=seed, seconds=secs), seed % 2 == 1)
        )
        seed += 1
    for index, (name, make, labelled) in enumerate(makers[:count]):
        seconds = float(rng.choice([2, 3, 5, 8]))
        if kinds is not None and name.split(":")[0] not in kinds:
            continue
        frames = make(index, seconds)
        yield Clip(
            name, name.split(":")[0], label(frames) if labelled else frames, seed=index, labelled=labelled
        )


# ---- encoding and transforms ------------------------------------------------------------------


def encode(frames: np.ndarray, *, fps: int, crf: int = 23) -> bytes:
    from core.video import encode_video

    return encode_video(frames, fps=fps, codec_options={"crf": str(crf), "preset": "veryfast"})


def transform(data: bytes, spec: Transform, *, seed: int = 0) -> bytes:
    """`data` through the transform's filters (and trim), re-encoded with libx264 at its CRF,
    without the source's metadata."""
    with av.open(io.BytesIO(data)) as source:
        stream = source.streams.video[0]
        rate = stream.average_rate or Fraction(FPS)
        duration = float(stream.frames / rate) if stream.frames else None
        filters = list(spec.filters)
        if spec.trim_s is not None:
            length = duration if duration is not None else spec.trim_s
            start = np.random.default_rng(seed).uniform(0, max(0.0, length - spec.trim_s))
            filters = [
                ("trim", f"start={start:.3f}:duration={spec.trim_s}"),
                ("setpts", "PTS-STARTPTS"),
            ] + filters
        graph = av.filter.Graph()
        nodes = [graph.add_buffer(template=stream)]
        nodes += [graph.add(name, args) if args else graph.add(name) for name, args in filters]
        nodes.append(graph.add("buffersink"))
        graph.link_nodes(*nodes).configure()
        out_rate = Fraction(24) if any(name == "fps" for name, _ in filters) else rate
        output = io.BytesIO()
        with av.open(output, mode="w", format="mp4") as target:
            encoder = None
            count = 0

            def write(frame):
                nonlocal encoder, count
                if encoder is None:
                    encoder = target.add_stream("libx264", rate=out_rate)
                    encoder.width, encoder.height = frame.width, frame.height
                    encoder.pix_fmt = "yuv420p"
                    encoder.time_base = 1 / out_rate
                    encoder.options = {"crf": str(spec.crf), "preset": "veryfast"}
                frame = frame.reformat(format="yuv420p")
                frame.pts, frame.time_base = count, 1 / out_rate
                count += 1
                target.mux(encoder.encode(frame))

            def drain():
                while True:
                    try:
                        write(graph.vpull())
                    except (av.error.BlockingIOError, av.error.EOFError):
                        return

            for frame in source.decode(stream):
                try:
                    graph.vpush(frame)
                except av.error.EOFError:  # a trim has passed its end
                    break
                drain()
            else:
                graph.vpush(None)
            drain()
            if encoder is not None:
                target.mux(encoder.encode())
        return output.getvalue()
