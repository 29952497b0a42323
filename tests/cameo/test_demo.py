import pytest

from cameo.demo import seed_cameo_demo
from cameo.models import Cameo, CameoStatus
from social.selectors import are_mutuals

pytestmark = pytest.mark.django_db


def test_demo_enrolls_alice_once(make_user):
    users = {"alice": make_user("alice"), "bob": make_user("bob")}
    cameo = seed_cameo_demo(users)
    assert cameo.status == CameoStatus.ACTIVE, cameo.rejection_reason
    assert cameo.restrictions == ["politics", "alcohol"]
    assert are_mutuals(user_id=users["alice"].pk, other_id=users["bob"].pk)
    assert seed_cameo_demo(users).pk == cameo.pk
    assert Cameo.objects.count() == 1
