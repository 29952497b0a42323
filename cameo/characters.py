"""Character enrollment: from a 3-15 s video or 1-4 photos of a pet, an object, a drawing or an
invented persona to a few reference crops of it, or a reason to refuse it.

Frames (sampled from the video, or the photos) are scaled like a person's verification frames (long
side at most `enrollment.ANALYSIS_LONG_SIDE`), then each is measured (the figures below are printed
again by `bench/character_thresholds.py`):

- human face: the configured identity encoder (the detector of person enrollment) finds a face.
  A character must not be a way round a person's consent, so a face in at least a quarter of
  the frames (of photos: in any one) refuses it, `human_face`. Measured with the dlib detector on the photos
  scikit-image ships: none found in the cat (`chelsea`), `coffee`, `rocket`, `motorcycle`,
  `camera`, `coins`, `logo`, `hubble_deep_field`; the astronaut's face found (90 px), as are the
  portraits bundled in the insightface wheel.
- darkness: the mean luminance of the whole frame, the person rule (`CAMEO_MIN_BRIGHTNESS`, 40).
  Those photos measure 65-181 (`rocket` the darkest), darkened to 30 % 19-34.
- subject size: the subject is what stands out from the frame's mean colour (frequency-tuned
  saliency: Lab distance of the blurred frame, 128 px, from its mean colour); `subject_fraction`
  is the area of the box holding the central 80 % of that saliency on each axis, over the frame's
  area. Photos of a subject: 0.48-0.88; the cat shrunk to 60-100 px on a plain 480x360 frame
  0.011-0.027, to 150 px 0.056, to 200 px 0.096. So MIN_SUBJECT_FRACTION is 0.04 (about a
  125x85 px subject in a 480x360 frame). A busy background (grass, gravel) spreads the saliency
  out: a small subject on one passes (measured 0.38-0.65), the proxy errs on the accepting side.
- blur: the variance of the Laplacian of the subject's crop (grey, long side 256), divided by the
  mean squared gradient, so that neither contrast nor the amount of detail moves it (a dim photo
  measures as its bright original; raw Laplacian variance ranged 15-2100 over sharp photos).
  Sharp photos: 0.032-0.089; blurred with a 2 px Gaussian (at their own size, 300-1400 px)
  0.007-0.015, but 0.021-0.038 for the densely detailed `motorcycle`, `hubble_deep_field` and
  `retina`; with 3 px 0.004-0.011 (`retina` 0.019, `hubble` 0.022). MIN_SHARPNESS is 0.02.

The medians over the frames decide (in the order above); frames that pass every check are the
candidates for references: the best first (sharpness times subject size, size capped at a quarter
of the frame), then farthest-point selection on a cheap embedding (colour histogram and an 8x8
layout) for variety, at most MAX_REFERENCES, stopping when the rest look alike. There is no face
dedupe and no template: a character is never compared with faces.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import cv2
import numpy as np
from django.conf import settings
from PIL import Image, ImageOps

from cameo.enrollment import ANALYSIS_LONG_SIDE, brightness
from cameo.identity import IdentityEncoder
from cameo.models import RejectionReason
from core.errors import ApiError, TooLarge, UnsupportedMedia

MIN_VIDEO_SECONDS = 3.0
MAX_IMAGES = 4
IMAGE_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
MAX_IMAGE_PIXELS = 40_000_000  # checked from the header, before decoding

MIN_SUBJECT_FRACTION = 0.04
MIN_SHARPNESS = 0.02
FACE_FRAME_SHARE = 0.25
MAX_REFERENCES = 4
# Two crops closer than this (embedding distance) are the same view: the second is not kept. The
# cat photo as PNG and as JPEG (quality 75) measures 0.051; crops of the cat moved and rescaled in
# a clip (tests.media.moving_subject_clip) 0.067-0.26; the photo and its mirrored close-up 0.72.
MIN_REFERENCE_DISTANCE = 0.06

SALIENCY_SIDE = 128
SALIENCY_BLUR_PX = 2.0
SHARPNESS_SIDE = 256
CROP_MARGIN = 0.15


# --- uploads ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    extension: str


def check_images(uploads) -> list[CheckedImage]:
    """1-MAX_IMAGES photos, checked by content before anything is stored: together at most
    CAMEO_VIDEO_MAX_BYTES (413, before reading beyond it), each a JPEG, PNG or WebP by what PIL
    finds in the bytes (415), at most MAX_IMAGE_PIXELS (413, from the header)."""
    uploads = list(uploads)
    if not 1 <= len(uploads) <= MAX_IMAGES:
        raise ApiError(
            f"A character takes 1 to {MAX_IMAGES} images.",
            details={"images": [f"Between 1 and {MAX_IMAGES} images."]},
        )
    budget = settings.CAMEO_VIDEO_MAX_BYTES
    checked = []
    for upload in uploads:
        if hasattr(upload, "seek"):
            upload.seek(0)
        data = upload.read(budget + 1)
        budget -= len(data)
        if budget < 0:
            raise TooLarge(
                f"The images are larger than {settings.CAMEO_VIDEO_MAX_BYTES} bytes together.",
                details={"max_bytes": settings.CAMEO_VIDEO_MAX_BYTES},
            )
        checked.append(CheckedImage(data=data, extension=_image_extension(data)))
    return checked


def _image_extension(data: bytes) -> str:
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in IMAGE_FORMATS:
                raise UnsupportedMedia("Images must be JPEG, PNG or WebP.")
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise TooLarge(
                    f"An image has more than {MAX_IMAGE_PIXELS} pixels.",
                    details={"max_pixels": MAX_IMAGE_PIXELS},
                )
            image.verify()
            return IMAGE_FORMATS[image.format]
    except ApiError:
        raise
    except Image.DecompressionBombError as exc:
        raise TooLarge(
            f"An image has more than {MAX_IMAGE_PIXELS} pixels.", details={"max_pixels": MAX_IMAGE_PIXELS}
        ) from exc
    except Exception as exc:  # PIL's plugins raise many kinds on malformed data: all are bad input
        raise UnsupportedMedia("An image cannot be read.") from exc


def decode_image(data: bytes) -> np.ndarray:
    """RGB, upright (EXIF), long side at most ANALYSIS_LONG_SIDE, like a sampled video frame."""
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (ANALYSIS_LONG_SIDE, ANALYSIS_LONG_SIDE))  # JPEG: decode at a lower scale
        upright = ImageOps.exif_transpose(image).convert("RGB")
    upright.thumbnail((ANALYSIS_LONG_SIDE, ANALYSIS_LONG_SIDE), Image.BILINEAR)
    return np.asarray(upright)


# --- measures ---------------------------------------------------------------------------------


def saliency(frame: np.ndarray) -> np.ndarray:
    """How far each pixel (of the frame at SALIENCY_SIDE, blurred) is from the mean colour, in Lab."""
    height, width = frame.shape[:2]
    scale = SALIENCY_SIDE / max(height, width)
    small = cv2.resize(
        frame, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
    )
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    blurred = cv2.GaussianBlur(lab, (0, 0), SALIENCY_BLUR_PX)
    return np.linalg.norm(blurred - lab.reshape(-1, 3).mean(axis=0), axis=2)


def _mass_box(weights: np.ndarray, trim: float) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) as fractions of the frame: the box holding all but `trim` of the
    weight on each side, along each axis."""
    bounds = []
    for axis in (0, 1):  # columns (x), then rows (y)
        cumulative = np.cumsum(weights.sum(axis=axis))
        cumulative /= cumulative[-1]
        low = int(np.searchsorted(cumulative, trim))
        high = int(np.searchsorted(cumulative, 1 - trim)) + 1
        bounds.append((low / len(cumulative), min(high, len(cumulative)) / len(cumulative)))
    (left, right), (top, bottom) = bounds
    return left, top, right, bottom


@dataclass(frozen=True)
class Subject:
    fraction: float  # the central 80 % box's share of the frame area
    box: tuple[int, int, int, int]  # the crop for references, in pixels: left, top, right, bottom


def find_subject(frame: np.ndarray) -> Subject:
    height, width = frame.shape[:2]
    weights = saliency(frame)
    weights = np.where(weights > weights.mean(), weights, 0.0)
    if not weights.any():  # a flat frame: nothing stands out
        return Subject(fraction=0.0, box=(0, 0, width, height))
    left, top, right, bottom = _mass_box(weights, 0.1)
    fraction = (right - left) * (bottom - top)
    left, top, right, bottom = _mass_box(weights, 0.05)
    margin_x, margin_y = CROP_MARGIN * (right - left), CROP_MARGIN * (bottom - top)
    box = (
        max(0, math.floor((left - margin_x) * width)),
        max(0, math.floor((top - margin_y) * height)),
        min(width, math.ceil((right + margin_x) * width)),
        min(height, math.ceil((bottom + margin_y) * height)),
    )
    return Subject(fraction=float(fraction), box=box)


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian over the mean squared gradient, grey, long side at most
    SHARPNESS_SIDE (never enlarged: enlarging blurs)."""
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    height, width = grey.shape
    scale = min(1.0, SHARPNESS_SIDE / max(height, width))
    if scale < 1.0:
        grey = cv2.resize(grey, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    laplacian = cv2.Laplacian(grey, cv2.CV_32F)
    gradient_x, gradient_y = cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    energy = float((gradient_x**2 + gradient_y**2).mean())
    return float(laplacian.var()) / energy if energy > 1e-6 else 0.0


def view_embedding(crop: np.ndarray) -> np.ndarray:
    """Cheap and enough to tell views apart: the square root of an HSV histogram (8x4x4) and the
    crop's 8x8 grey layout, centred and scaled to length 0.5."""
    hsv = cv2.cvtColor(crop, cv2.COLOR_RGB2HSV)
    histogram = cv2.calcHist([hsv], [0, 1, 2], None, [8, 4, 4], [0, 180, 0, 256, 0, 256]).ravel()
    histogram = np.sqrt(histogram / max(1.0, float(histogram.sum())))
    layout = cv2.resize(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), (8, 8), interpolation=cv2.INTER_AREA)
    layout = layout.astype(np.float32).ravel()
    layout -= layout.mean()
    norm = float(np.linalg.norm(layout))
    layout = 0.5 * layout / norm if norm > 1e-6 else layout
    return np.concatenate([histogram, layout]).astype(np.float32)


def pick_references(embeddings: list[np.ndarray], scores: list[float]) -> list[int]:
    """Indexes: the best score first, then each time the crop farthest from those picked, until
    MAX_REFERENCES or until the farthest is within MIN_REFERENCE_DISTANCE."""
    if not embeddings:
        return []
    vectors = np.stack(embeddings)
    picked = [int(np.argmax(scores))]
    nearest = np.linalg.norm(vectors - vectors[picked[0]], axis=1)
    while len(picked) < min(MAX_REFERENCES, len(vectors)):
        candidate = int(np.argmax(nearest))
        if nearest[candidate] < MIN_REFERENCE_DISTANCE:
            break
        picked.append(candidate)
        nearest = np.minimum(nearest, np.linalg.norm(vectors - vectors[candidate], axis=1))
    return picked


# --- the analysis -----------------------------------------------------------------------------


@dataclass
class FrameMeasure:
    faces: int
    brightness: float
    subject: Subject
    sharpness: float

    @property
    def acceptable(self) -> bool:
        return (
            self.faces == 0
            and self.brightness >= settings.CAMEO_MIN_BRIGHTNESS
            and self.subject.fraction >= MIN_SUBJECT_FRACTION
            and self.sharpness >= MIN_SHARPNESS
        )


def measure(frame: np.ndarray, encoder: IdentityEncoder) -> FrameMeasure:
    subject = find_subject(frame)
    left, top, right, bottom = subject.box
    return FrameMeasure(
        faces=len(encoder.embed(frame)),
        brightness=brightness(frame),
        subject=subject,
        sharpness=sharpness(frame[top:bottom, left:right]),
    )


@dataclass
class CharacterAnalysis:
    rejection: str | None = None
    references: list[np.ndarray] = field(default_factory=list)  # RGB crops, the best first
    measurements: dict = field(default_factory=dict)


def analyse_character(frames: list[np.ndarray], encoder: IdentityEncoder) -> CharacterAnalysis:
    """Applies the rules in order; the first that fails names the rejection."""
    measures = [measure(frame, encoder) for frame in frames]
    with_faces = sum(1 for m in measures if m.faces)
    median = {
        "brightness": float(np.median([m.brightness for m in measures])),
        "subject_fraction": float(np.median([m.subject.fraction for m in measures])),
        "sharpness": float(np.median([m.sharpness for m in measures])),
    }
    measurements = {
        "frames": len(frames),
        "frames_with_faces": with_faces,
        **{f"median_{name}": round(value, 4) for name, value in median.items()},
    }
    if with_faces >= max(1, math.ceil(FACE_FRAME_SHARE * len(frames))):
        return CharacterAnalysis(rejection=RejectionReason.HUMAN_FACE, measurements=measurements)
    if median["brightness"] < settings.CAMEO_MIN_BRIGHTNESS:
        return CharacterAnalysis(rejection=RejectionReason.LOW_QUALITY, measurements=measurements)
    if median["subject_fraction"] < MIN_SUBJECT_FRACTION:
        return CharacterAnalysis(rejection=RejectionReason.SUBJECT_TOO_SMALL, measurements=measurements)
    if median["sharpness"] < MIN_SHARPNESS:
        return CharacterAnalysis(rejection=RejectionReason.LOW_QUALITY, measurements=measurements)
    candidates = [index for index, m in enumerate(measures) if m.acceptable] or [
        index for index, m in enumerate(measures) if not m.faces
    ]
    crops = []
    for index in candidates:
        left, top, right, bottom = measures[index].subject.box
        crops.append(np.ascontiguousarray(frames[index][top:bottom, left:right]))
    scores = [
        measures[index].sharpness * min(1.0, measures[index].subject.fraction / 0.25) for index in candidates
    ]
    picked = pick_references([view_embedding(crop) for crop in crops], scores)
    measurements["references"] = len(picked)
    return CharacterAnalysis(references=[crops[index] for index in picked], measurements=measurements)
