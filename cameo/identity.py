"""Identity encoders: find faces in an image and embed each into an identity vector.

Two encoders sit behind one interface:
- `InsightFaceEncoder`: insightface's `FaceAnalysis` (detection + ArcFace, 512 dimensions), loaded
  from a model directory (`INSIGHTFACE_MODEL_DIR`, containing `models/<pack>/*.onnx`, and
  optionally its liveness add-on `addons/liveness.onnx`). Production.
- `DlibEncoder`: dlib's HOG face detector, 5-point landmarks and ResNet face recognition model (128
  dimensions), whose weights ship in the `face-recognition-models` wheel. The embedded default and
  the tests use it, as insightface's model packs cannot be downloaded here.

Every template records the encoder's name and version; templates from different encoders are never
compared (their spaces are unrelated).
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

TEMPLATE_DIMENSIONS = 512  # the widest encoder; narrower embeddings are zero-padded for storage


@dataclass
class Face:
    box: tuple[int, int, int, int]  # left, top, right, bottom in pixels
    landmarks: np.ndarray  # (5, 2): eyes, nose, mouth corners (order per encoder)
    embedding: np.ndarray  # L2-normalised float32
    score: float  # detector confidence
    crop: np.ndarray | None = None  # aligned face crop, RGB
    live_score: float | None = None  # probability of a live face, from encoders with a liveness model

    @property
    def size(self) -> int:
        left, top, right, bottom = self.box
        return min(right - left, bottom - top)


class IdentityEncoder:
    name: str = ""
    version: str = ""
    dim: int = 0

    def embed(self, image_rgb: np.ndarray) -> list[Face]:
        raise NotImplementedError


def _normalise(vector) -> np.ndarray:
    array = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(array))
    return array / norm if norm > 0 else array


def pad_template(embedding: np.ndarray) -> list[float]:
    padded = np.zeros(TEMPLATE_DIMENSIONS, dtype=np.float32)
    padded[: embedding.shape[0]] = embedding
    return padded.tolist()


def face_recognition_models_dir() -> Path:
    """The weights of `face-recognition-models`, found without importing it (it needs pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImproperlyConfigured(
            "The dlib identity encoder needs the face-recognition-models package (pip install "
            "face-recognition-models dlib-bin)."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


class DlibEncoder(IdentityEncoder):
    name = "dlib-resnet"
    version = "dlib_face_recognition_resnet_model_v1"
    dim = 128
    REQUIRED = ("dlib_face_recognition_resnet_model_v1.dat", "shape_predictor_5_face_landmarks.dat")

    def __init__(self, model_dir: Path | None = None):
        import dlib

        directory = Path(model_dir) if model_dir else face_recognition_models_dir()
        missing = [name for name in self.REQUIRED if not (directory / name).exists()]
        if missing:
            raise ImproperlyConfigured(
                f"The dlib identity encoder's directory {directory} lacks {', '.join(missing)}."
            )
        self._detector = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(str(directory / "shape_predictor_5_face_landmarks.dat"))
        self._recognizer = dlib.face_recognition_model_v1(
            str(directory / "dlib_face_recognition_resnet_model_v1.dat")
        )
        self._lock = threading.Lock()  # dlib's models are not safe to share across threads

    def embed(self, image_rgb: np.ndarray) -> list[Face]:
        import dlib

        image = np.ascontiguousarray(image_rgb[:, :, :3], dtype=np.uint8)
        faces: list[Face] = []
        with self._lock:
            # One upsampling finds faces down to about 40 px, which is all the enrollment accepts.
            detections, scores, _ = self._detector.run(image, 1, 0.0)
            for rect, score in zip(detections, scores, strict=False):
                shape = self._shape(image, rect)
                descriptor = self._recognizer.compute_face_descriptor(image, shape, 0)
                chip = dlib.get_face_chip(image, shape, size=256, padding=0.35)
                landmarks = np.array([[point.x, point.y] for point in shape.parts()], dtype=np.float32)
                height, width = image.shape[:2]
                box = (
                    max(0, rect.left()),
                    max(0, rect.top()),
                    min(width, rect.right()),
                    min(height, rect.bottom()),
                )
                faces.append(
                    Face(
                        box=box,
                        landmarks=landmarks,
                        embedding=_normalise(descriptor),
                        score=float(score),
                        crop=np.asarray(chip),
                    )
                )
        return faces


# The files each known insightface pack needs for detection and recognition; other packs need at
# least one ONNX file (or an insightface manifest.json) in their directory.
INSIGHTFACE_PACK_FILES = {
    "buffalo_l": ("det_10g.onnx", "w600k_r50.onnx"),
    "buffalo_m": ("det_2.5g.onnx", "w600k_r50.onnx"),
    "buffalo_s": ("det_500m.onnx", "w600k_mbf.onnx"),
    "antelopev2": ("scrfd_10g_bnkps.onnx", "glintr100.onnx"),
}
LIVENESS_ADDON = Path("addons") / "liveness.onnx"


def insightface_pack_dir(model_dir: str | Path, pack: str) -> Path:
    return Path(model_dir) / "models" / pack


def check_insightface_files(model_dir: str | Path | None, pack: str) -> None:
    """Raises ImproperlyConfigured naming the directory and the files it lacks; loads nothing."""
    if not model_dir:
        raise ImproperlyConfigured(
            "IDENTITY_ENCODER=insightface needs INSIGHTFACE_MODEL_DIR: a directory holding "
            f"models/{pack}/ with {_pack_files_text(pack)}."
        )
    pack_dir = insightface_pack_dir(model_dir, pack)
    required = INSIGHTFACE_PACK_FILES.get(pack)
    if required:
        missing = [name for name in required if not (pack_dir / name).is_file()]
    else:
        present = pack_dir.is_dir() and (
            any(pack_dir.glob("*.onnx")) or (pack_dir / "manifest.json").is_file()
        )
        missing = [] if present else ["*.onnx"]
    if missing:
        raise ImproperlyConfigured(
            f"The insightface identity encoder needs {pack_dir} with {_pack_files_text(pack)}; "
            f"missing: {', '.join(missing)} (INSIGHTFACE_MODEL_DIR={model_dir}, INSIGHTFACE_PACK={pack}). "
            "Model packs are not downloaded at run time: copy them there."
        )


def _pack_files_text(pack: str) -> str:
    required = INSIGHTFACE_PACK_FILES.get(pack)
    if required:
        return " and ".join(required)
    return "the pack's ONNX files (a detection and a recognition model)"


def check_configured_encoder() -> None:
    """Startup check of the configured encoder's files (see CameoConfig.ready)."""
    choice = settings.IDENTITY_ENCODER
    if choice == "dlib":
        directory = face_recognition_models_dir()
        missing = [name for name in DlibEncoder.REQUIRED if not (directory / name).exists()]
        if missing:
            raise ImproperlyConfigured(
                f"The dlib identity encoder's directory {directory} lacks {', '.join(missing)}."
            )
    elif choice == "insightface":
        check_insightface_files(settings.INSIGHTFACE_MODEL_DIR, settings.INSIGHTFACE_PACK)
    else:
        raise ImproperlyConfigured(f"IDENTITY_ENCODER must be dlib or insightface, not {choice!r}.")


def _live_score(face) -> float | None:
    result = face.get("liveness") if hasattr(face, "get") else getattr(face, "liveness", None)
    if result is None:
        return None
    score = result.get("live_score") if hasattr(result, "get") else getattr(result, "live_score", None)
    return None if score is None else float(score)


class InsightFaceEncoder(IdentityEncoder):
    """insightface's FaceAnalysis (SCRFD detection, ArcFace recognition) from a local directory:
    `<model_dir>/models/<pack>/`. With `<model_dir>/addons/liveness.onnx` present, its liveness
    add-on scores every face (observe mode: the embedding is computed either way and enrollment
    decides, see CAMEO_MIN_LIVE_SCORE)."""

    name = "insightface"
    dim = 512

    def __init__(self, model_dir: str | Path, pack: str = "buffalo_l"):
        check_insightface_files(model_dir, pack)
        from insightface.app import FaceAnalysis

        root = Path(model_dir)
        self.has_liveness = (root / LIVENESS_ADDON).is_file()
        # The pack names the recognition model, hence the embedding space; liveness does not change it.
        self.version = pack
        # The pack's own directory as `name`: FaceAnalysis then never tries to download it.
        self._app = FaceAnalysis(
            name=str(insightface_pack_dir(root, pack)),
            root=str(root),
            allowed_modules=["detection", "recognition"],
            providers=["CPUExecutionProvider"],
            addons=["liveness"] if self.has_liveness else (),
            liveness_mode="observe",
        )
        self._app.prepare(ctx_id=-1, det_size=(640, 640))
        self._lock = threading.Lock()

    def embed(self, image_rgb: np.ndarray) -> list[Face]:
        from insightface.utils import face_align

        bgr = np.ascontiguousarray(image_rgb[:, :, ::-1])
        with self._lock:
            found = self._app.get(bgr)
        faces = []
        for face in found:
            if face.normed_embedding is None:
                continue
            crop = face_align.norm_crop(bgr, landmark=face.kps, image_size=224)[:, :, ::-1]
            left, top, right, bottom = (int(value) for value in face.bbox)
            faces.append(
                Face(
                    box=(max(0, left), max(0, top), right, bottom),
                    landmarks=np.asarray(face.kps, dtype=np.float32),
                    embedding=_normalise(face.normed_embedding),
                    score=float(face.det_score),
                    crop=np.ascontiguousarray(crop),
                    live_score=_live_score(face),
                )
            )
        return faces


@cache
def get_encoder() -> IdentityEncoder:
    """The configured encoder, loaded once per process (IDENTITY_ENCODER: dlib | insightface)."""
    choice = settings.IDENTITY_ENCODER
    if choice == "dlib":
        return DlibEncoder()
    if choice == "insightface":
        return InsightFaceEncoder(settings.INSIGHTFACE_MODEL_DIR, pack=settings.INSIGHTFACE_PACK)
    raise ImproperlyConfigured(f"IDENTITY_ENCODER must be dlib or insightface, not {choice!r}.")
