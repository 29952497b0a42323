import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from cameo import enrollment, services
from cameo.identity import (
    DlibEncoder,
    check_configured_encoder,
    check_insightface_files,
    get_encoder,
    pad_template,
)
from cameo.models import CameoStatus
from tests.cameo import clips
from tests.cameo.conftest import clip


def test_missing_insightface_pack_names_the_directory_and_files(tmp_path):
    with pytest.raises(ImproperlyConfigured) as raised:
        check_insightface_files(tmp_path, "buffalo_l")
    message = str(raised.value)
    assert str(tmp_path / "models" / "buffalo_l") in message
    assert "det_10g.onnx" in message and "w600k_r50.onnx" in message


def test_insightface_pack_with_its_files_passes_the_check(tmp_path):
    pack = tmp_path / "models" / "buffalo_l"
    pack.mkdir(parents=True)
    (pack / "det_10g.onnx").write_bytes(b"x")
    with pytest.raises(ImproperlyConfigured, match="missing: w600k_r50.onnx"):
        check_insightface_files(tmp_path, "buffalo_l")
    (pack / "w600k_r50.onnx").write_bytes(b"x")
    check_insightface_files(tmp_path, "buffalo_l")


def test_configured_insightface_without_its_directory_stops_startup(settings, tmp_path):
    settings.IDENTITY_ENCODER = "insightface"
    settings.INSIGHTFACE_MODEL_DIR = str(tmp_path / "absent")
    with pytest.raises(ImproperlyConfigured, match="absent"):
        check_configured_encoder()
    settings.INSIGHTFACE_MODEL_DIR = None
    with pytest.raises(ImproperlyConfigured, match="INSIGHTFACE_MODEL_DIR"):
        check_configured_encoder()
    settings.IDENTITY_ENCODER = "something"
    with pytest.raises(ImproperlyConfigured, match="dlib or insightface"):
        check_configured_encoder()


def test_get_encoder_is_one_instance_per_process():
    encoder = get_encoder()
    assert encoder is get_encoder()
    assert (encoder.name, encoder.dim) == ("dlib-resnet", 128)


def test_faces_carry_box_landmarks_unit_embedding_and_crop():
    faces = DlibEncoder().embed(np.asarray(clips.portrait()))
    assert len(faces) == 1
    face = faces[0]
    assert face.embedding.dtype == np.float32 and face.embedding.shape == (128,)
    assert abs(float(np.linalg.norm(face.embedding)) - 1) < 1e-5
    assert face.landmarks.shape == (5, 2) and face.score > 0 and face.size > 60
    assert face.crop is not None and face.crop.shape[2] == 3
    assert face.live_score is None


class LivenessScoringEncoder:
    """dlib's real faces with a live score set, as insightface's liveness add-on reports one."""

    name, version, dim = "dlib-resnet", "test", 128

    def __init__(self, live_score: float):
        self.inner, self.live_score = DlibEncoder(), live_score

    def embed(self, image_rgb):
        faces = self.inner.embed(image_rgb)
        for face in faces:
            face.live_score = self.live_score
        return faces


@pytest.mark.parametrize(("live_score", "rejection"), [(0.1, "liveness_failed"), (0.97, None)])
def test_a_liveness_model_score_decides_too(tmp_path, live_score, rejection):
    path = tmp_path / "clip.mp4"
    path.write_bytes(clip("enrollment_clip"))
    frames = enrollment.sample_frames(path, 6)
    analysis = enrollment.analyse_frames(frames, LivenessScoringEncoder(live_score))
    assert analysis.rejection == rejection
    assert analysis.measurements["median_live_score"] == pytest.approx(live_score)


@pytest.mark.django_db
def test_likeness_search_can_walk_the_hnsw_index(user, enrolled_cameo):
    cameo = enrolled_cameo(user)
    assert cameo.status == CameoStatus.ACTIVE
    query = services.Cameo.objects.filter(status=CameoStatus.ACTIVE, encoder=cameo.encoder).order_by(
        services.CosineDistance("template_vector", pad_template(cameo.template))
    )[:4]
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        # Too few rows for the planner to prefer the index by cost; without a sort it must use it.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "cameo_template_hnsw" in plan
    nearest = services.nearest_claimed_likeness(
        template=cameo.template, encoder_name=cameo.encoder, exclude_owner_id=None
    )
    assert nearest.pk == cameo.pk and nearest.distance < 1e-4
    assert (
        services.nearest_claimed_likeness(
            template=cameo.template, encoder_name="insightface", exclude_owner_id=None
        )
        is None
    )
    other_version = services.nearest_claimed_likeness(
        template=cameo.template, encoder_name=cameo.encoder, encoder_version="v0", exclude_owner_id=None
    )
    assert other_version is None
    same_version = services.nearest_claimed_likeness(
        template=cameo.template,
        encoder_name=cameo.encoder,
        encoder_version=cameo.encoder_version,
        exclude_owner_id=None,
    )
    assert same_version.pk == cameo.pk
