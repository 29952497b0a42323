"""From a verification video to an identity template, or a reason to refuse it.

Thresholds (settings, cosine distances between L2-normalised embeddings of one encoder), measured
with the dlib encoder on the photos bundled in the insightface wheel (`bench/cameo_thresholds.py`
prints them again):

- the same face flipped, darkened (x0.6), brightened (x1.4), halved in size or rotated by 8 degrees:
  0.004-0.013 from the original (euclidean 0.09-0.16), at most 0.022 between any two variants;
- the six different people of `t1.jpg`: at least 0.094 from each other and 0.123-0.172 from the
  portrait in `Tom_Hanks_54745.png` (euclidean 0.43-0.59).

So `CAMEO_MATCH_MAX_DISTANCE` (another user's cameo holds this likeness) is 0.05: about four times
the largest same-face distance and half the smallest different-face distance. Frames of one clip are
compared pairwise (`CAMEO_CONSISTENCY_MAX_DISTANCE`, 0.06): in the test clips one person moved,
scaled and re-lit stays within 0.003 of itself, while a clip switching from the portrait to another
person reaches 0.12 between frames, although each frame is only 0.042 from the clip's mean. For
insightface's ArcFace embeddings set both through the environment (about 0.6 is usual there).

Sharpness is the variance of the Laplacian of the face box resized to 96x96 grey: sharp faces in
the test clips measured 66-160 (the six faces of `t1.jpg`, the portrait), the same clips blurred
with a 2 px Gaussian about 15, so `CAMEO_MIN_SHARPNESS` is 40. Brightness is the mean of the whole
frame (0-255): a dim room (frames at 30% brightness) measured 34, normal clips 98-136, so
`CAMEO_MIN_BRIGHTNESS` is 40. Liveness: a still picture held to the camera changes by at most
0.002 (mean absolute difference of consecutive 64x64 grey frames), a person moving 23-41, so
`CAMEO_MIN_MOTION` is 1.5.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from django.conf import settings
from PIL import Image

from cameo.identity import Face, IdentityEncoder
from cameo.models import RejectionReason
from core.errors import TooLarge, UnsupportedMedia
from social.media import duration_seconds, probe_container

ANALYSIS_LONG_SIDE = 480  # frames are downscaled to this before detection: enough for a 64 px face


@dataclass(frozen=True)
class UploadInfo:
    duration_s: float
    width: int
    height: int


def check_upload(path: Path, size_bytes: int) -> UploadInfo:
    """The size from the file system first, then the container header: nothing decoded yet."""
    if size_bytes > settings.CAMEO_VIDEO_MAX_BYTES:
        raise TooLarge(
            f"The video is larger than {settings.CAMEO_VIDEO_MAX_BYTES} bytes.",
            details={"max_bytes": settings.CAMEO_VIDEO_MAX_BYTES},
        )
    if size_bytes == 0:
        raise UnsupportedMedia("The file is empty.")
    header = probe_container(path)
    if header.duration_s > settings.CAMEO_VIDEO_MAX_SECONDS:
        raise UnsupportedMedia(
            f"The video is longer than {settings.CAMEO_VIDEO_MAX_SECONDS:g} seconds.",
            code="too_long",
            details={"duration_s": round(header.duration_s, 3), "max_s": settings.CAMEO_VIDEO_MAX_SECONDS},
        )
    return UploadInfo(duration_s=header.duration_s, width=header.width, height=header.height)


class UndecodableVideo(Exception):
    pass


class VideoTooLong(UndecodableVideo):
    """Found while decoding a video whose header gave no duration."""


class VideoTooShort(UndecodableVideo):
    """Shorter than asked for (a character's video: `characters.MIN_VIDEO_SECONDS`)."""


MAX_FRAME_RATE = 60


def sample_frames(path: Path, count: int, *, min_seconds: float = 0.0) -> list[np.ndarray]:
    """`count` frames spread evenly over the video, RGB, the long side at most ANALYSIS_LONG_SIDE.
    VideoTooShort when it lasts less than `min_seconds` (by the header, or else by its last frame)."""
    try:
        with av.open(str(path), mode="r") as container:
            stream = container.streams.video[0]
            # Only a few frames are kept: let the decoder use both cores and skip frames that no
            # other frame refers to (B-frames), which is most of the work in phone clips.
            stream.thread_type = "AUTO"
            stream.codec_context.skip_frame = "NONREF"
            duration = duration_seconds(container, stream)
            if 0 < duration < min_seconds:
                raise VideoTooShort(f"{duration:.3f} s")
            targets = [duration * (index + 0.5) / count for index in range(count)] if duration > 0 else []
            frames: list[np.ndarray] = []
            # Without a duration in the header (WebM from browsers) the frames are sampled while
            # decoding: every `stride`-th is kept, downscaled, and the stride doubles whenever
            # 4 x count are kept, so memory stays small; a video longer than allowed is refused,
            # by the frames' own times (the decoder skips frames, so counting them undercounts),
            # and by a count at the highest frame rate for frames that carry no time.
            decoded: list[np.ndarray] = []
            stride, max_frames = 1, int(settings.CAMEO_VIDEO_MAX_SECONDS * MAX_FRAME_RATE)
            last_time = 0.0
            for index, frame in enumerate(container.decode(stream)):
                if targets:
                    if frame.time is not None and frame.time >= targets[len(frames)]:
                        frames.append(_to_array(frame))
                        if len(frames) == len(targets):
                            break
                    continue
                if frame.time is not None and frame.time > settings.CAMEO_VIDEO_MAX_SECONDS:
                    raise VideoTooLong(f"a frame at {frame.time:.3f} s")
                if index >= max_frames:
                    raise VideoTooLong(f"more than {max_frames} frames")
                last_time = max(last_time, frame.time or 0.0)
                if index % stride == 0:
                    decoded.append(_to_array(frame))
                    if len(decoded) >= 4 * count:
                        decoded, stride = decoded[::2], stride * 2
            # The last frame starts one frame before the end: allow a frame at 4 fps.
            if not targets and last_time + 0.25 < min_seconds:
                raise VideoTooShort(f"the last frame at {last_time:.3f} s")
            if not targets:
                picks = np.linspace(0, len(decoded) - 1, num=min(count, len(decoded))).astype(int)
                frames = [decoded[index] for index in picks] if decoded else []
    except (av.FFmpegError, ValueError, IndexError, OSError, StopIteration) as exc:
        raise UndecodableVideo(str(exc)) from exc
    if not frames:
        raise UndecodableVideo("no frames")
    return frames


def _to_array(frame: av.VideoFrame) -> np.ndarray:
    """RGB, scaled by the decoder's own scaler so the long side is at most ANALYSIS_LONG_SIDE."""
    scale = min(1.0, ANALYSIS_LONG_SIDE / max(frame.width, frame.height))
    width, height = max(2, round(frame.width * scale)), max(2, round(frame.height * scale))
    return frame.to_ndarray(width=width, height=height, format="rgb24")


SHARPNESS_PATCH_PX = 96


def face_patch(frame: np.ndarray, face: Face) -> np.ndarray:
    """The face's box at a fixed size, so sharpness does not depend on how big the face is."""
    left, top, right, bottom = face.box
    patch = Image.fromarray(frame[top:bottom, left:right])
    return np.asarray(patch.resize((SHARPNESS_PATCH_PX, SHARPNESS_PATCH_PX), Image.BILINEAR))


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian of the grey face patch: low means blurred."""
    grey = crop.astype(np.float32).mean(axis=2)
    laplacian = -4 * grey[1:-1, 1:-1] + grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:]
    return float(laplacian.var())


def brightness(crop: np.ndarray) -> float:
    return float(crop.astype(np.float32).mean())


def motion(frames: list[np.ndarray]) -> float:
    """The largest mean absolute difference (0-255) between consecutive frames at 64x64 grey."""
    small = [
        np.asarray(Image.fromarray(frame).convert("L").resize((64, 64)), dtype=np.float32) for frame in frames
    ]
    if len(small) < 2:
        return 0.0
    return max(float(np.abs(a - b).mean()) for a, b in zip(small, small[1:], strict=False))


@dataclass
class Analysis:
    rejection: str | None = None
    template: np.ndarray | None = None
    spread: float | None = None
    face_crop: np.ndarray | None = None
    measurements: dict = field(default_factory=dict)


def analyse_frames(frames: list[np.ndarray], encoder: IdentityEncoder) -> Analysis:
    """Applies the rules in order; the first that fails names the rejection."""
    per_frame: list[list[Face]] = [encoder.embed(frame) for frame in frames]
    counts = [len(faces) for faces in per_frame]
    measurements: dict = {"faces_per_frame": counts}
    if any(count > 1 for count in counts):
        return Analysis(rejection=RejectionReason.MULTIPLE_FACES, measurements=measurements)
    found = [(frame, faces[0]) for frame, faces in zip(frames, per_frame, strict=True) if faces]
    faces = [face for _, face in found]
    if len(faces) < max(2, (len(frames) + 1) // 2):
        return Analysis(rejection=RejectionReason.NO_FACE, measurements=measurements)
    sizes = sorted(face.size for face in faces)
    median_size = sizes[len(sizes) // 2]
    measurements["median_face_px"] = median_size
    if median_size < settings.CAMEO_MIN_FACE_PX:
        return Analysis(rejection=RejectionReason.FACE_TOO_SMALL, measurements=measurements)
    sharp = [sharpness(face_patch(frame, face)) for frame, face in found]
    # The whole frame, not the face: a dim room is the problem, whatever the skin tone.
    bright = [brightness(frame) for frame in frames]
    measurements["median_sharpness"] = round(float(np.median(sharp)), 2)
    measurements["median_brightness"] = round(float(np.median(bright)), 2)
    if np.median(sharp) < settings.CAMEO_MIN_SHARPNESS or np.median(bright) < settings.CAMEO_MIN_BRIGHTNESS:
        return Analysis(rejection=RejectionReason.LOW_QUALITY, measurements=measurements)
    frame_motion = motion(frames)
    measurements["motion"] = round(frame_motion, 3)
    if frame_motion < settings.CAMEO_MIN_MOTION:
        return Analysis(rejection=RejectionReason.LIVENESS_FAILED, measurements=measurements)
    live_scores = [face.live_score for face in faces if face.live_score is not None]
    if live_scores:
        # An encoder with a liveness model (insightface's add-on) also judges each face.
        measurements["median_live_score"] = round(float(np.median(live_scores)), 3)
        if np.median(live_scores) < settings.CAMEO_MIN_LIVE_SCORE:
            return Analysis(rejection=RejectionReason.LIVENESS_FAILED, measurements=measurements)
    embeddings = np.stack([face.embedding for face in faces])
    mean = embeddings.mean(axis=0)
    template = (mean / np.linalg.norm(mean)).astype(np.float32)
    distances = 1.0 - embeddings @ template
    # Pairwise, not against the mean: two people alternating sit close to their common mean.
    pairwise = 1.0 - embeddings @ embeddings.T
    measurements["max_pair_distance"] = round(float(pairwise.max()), 4)
    if float(pairwise.max()) > settings.CAMEO_CONSISTENCY_MAX_DISTANCE:
        return Analysis(rejection=RejectionReason.INCONSISTENT_IDENTITY, measurements=measurements)
    best = int(np.argmax([face.score * value for face, value in zip(faces, sharp, strict=True)]))
    return Analysis(
        template=template,
        spread=float(distances.mean()),
        face_crop=faces[best].crop,
        measurements=measurements,
    )
