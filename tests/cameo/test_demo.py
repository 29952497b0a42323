import pytest

from cameo.demo import DEMO_PET_HANDLE, seed_cameo_demo
from cameo.models import Cameo, CameoKind, CameoStatus, Permission
from cameo.references import conditioning_image
from social.selectors import are_mutuals

pytestmark = pytest.mark.django_db


def test_demo_enrolls_alice_and_bob_s_cat_once(make_user):
    users = {"alice": make_user("alice"), "bob": make_user("bob")}
    cameo = seed_cameo_demo(users)
    assert cameo.status == CameoStatus.ACTIVE, cameo.rejection_reason
    assert (cameo.kind, cameo.handle) == (CameoKind.PERSON, "alice")
    assert cameo.restrictions == ["politics", "alcohol"]
    assert are_mutuals(user_id=users["alice"].pk, other_id=users["bob"].pk)
    pet = Cameo.objects.get(owner=users["bob"], kind=CameoKind.CHARACTER)
    assert pet.status == CameoStatus.ACTIVE, pet.rejection_reason
    assert (pet.handle, pet.permission) == (DEMO_PET_HANDLE, Permission.EVERYONE)
    assert len(pet.reference_images) == 2 and conditioning_image(pet).size == (451, 300)
    assert seed_cameo_demo(users).pk == cameo.pk
    assert Cameo.objects.count() == 2
