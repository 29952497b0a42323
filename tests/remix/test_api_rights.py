"""Rights holders and IP through HTTP: status codes, refusals, and who may not call."""

import pytest

from remix.models import IpPolicy, RightsHolderMember
from tests.conftest import client_for

POLICY = {
    "status": "opted_in",
    "allow_cameos": True,
    "disallowed_themes": ["politics"],
    "revenue_share_bps": 1000,
}


@pytest.fixture
def admin(make_user):
    return make_user("holder_admin")


@pytest.fixture
def holder_id(admin, staff):
    created = client_for(admin).post("/api/v1/rights-holders", {"name": "Lantern Films"}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["verified"] is False
    holder_id = created.json()["id"]
    assert client_for(staff).post(f"/api/v1/rights-holders/{holder_id}/verify").status_code == 200
    return holder_id


def create_ip(client, holder_id, **overrides):
    body = {
        "rights_holder_id": holder_id,
        "name": "Lantern Girl",
        "aliases": ["灯笼女孩", "Lantern Kid"],
        "description": "a girl carrying a glowing paper lantern through a misty bamboo forest",
        "policy": POLICY,
    } | overrides
    return client.post("/api/v1/ip", body, format="json")


def test_creating_a_rights_holder_makes_the_caller_its_admin(admin, holder_id):
    assert RightsHolderMember.objects.get(rights_holder_id=holder_id).role == "admin"
    again = client_for(admin).post("/api/v1/rights-holders", {"name": "lantern films"}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "name_taken"


def test_only_staff_verify(make_user, admin):
    holder_id = client_for(admin).post("/api/v1/rights-holders", {"name": "X Co"}, format="json").json()["id"]
    assert client_for(admin).post(f"/api/v1/rights-holders/{holder_id}/verify").status_code == 403
    assert client_for(make_user()).post("/api/v1/rights-holders/999999/verify").status_code == 403


def test_anonymous_callers_are_refused(api):
    assert api.post("/api/v1/rights-holders", {"name": "Anon"}, format="json").status_code == 401
    assert api.post("/api/v1/ip", {}, format="json").status_code == 401


def test_members_are_managed_by_admins_only(admin, holder_id, make_user):
    member, outsider = make_user("member_m"), make_user("outsider_o")
    url = f"/api/v1/rights-holders/{holder_id}/members/{member.username}"
    added = client_for(admin).put(url, {"role": "member"}, format="json")
    assert added.status_code == 200 and added.json()["role"] == "member"
    assert (
        client_for(member)
        .put(f"/api/v1/rights-holders/{holder_id}/members/{outsider.username}", {}, format="json")
        .status_code
        == 403
    )
    assert client_for(outsider).put(url, {"role": "admin"}, format="json").status_code == 403
    assert (
        client_for(admin)
        .put(f"/api/v1/rights-holders/{holder_id}/members/nobody_here", {}, format="json")
        .status_code
        == 404
    )
    assert client_for(admin).put(url, {"role": "owner"}, format="json").status_code == 400
    demote_self = client_for(admin).put(
        f"/api/v1/rights-holders/{holder_id}/members/{admin.username}", {"role": "member"}, format="json"
    )
    assert demote_self.status_code == 409 and demote_self.json()["error"]["code"] == "last_admin"
    assert client_for(admin).delete(url).status_code == 204


def test_ip_registration_needs_an_admin_of_a_verified_holder(admin, holder_id, make_user):
    unverified = (
        client_for(admin)
        .post("/api/v1/rights-holders", {"name": "Unverified Co"}, format="json")
        .json()["id"]
    )
    refused = create_ip(client_for(admin), unverified)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "rights_holder_unverified"
    assert create_ip(client_for(make_user()), holder_id).status_code == 403
    too_much = create_ip(client_for(admin), holder_id, policy=POLICY | {"revenue_share_bps": 5001})
    assert too_much.status_code == 400
    unknown = create_ip(client_for(admin), holder_id, colour="red")
    assert unknown.status_code == 400 and "colour" in unknown.json()["error"]["details"]
    created = create_ip(client_for(admin), holder_id)
    assert created.status_code == 201
    body = created.json()
    assert body["policy"]["version"] == 1 and body["policy"]["revenue_share_bps"] == 1000
    assert body["rights_holder"] == {"id": holder_id, "name": "Lantern Films"}


def test_catalogue_lists_opted_in_ip_and_searches_names_and_aliases(
    admin, holder_id, api, django_assert_num_queries
):
    client = client_for(admin)
    create_ip(client, holder_id)
    create_ip(client, holder_id, name="Hidden One", aliases=[], policy=POLICY | {"status": "opted_out"})
    for n in range(3):
        create_ip(client, holder_id, name=f"Extra {n}", aliases=[])
    listing = api.get("/api/v1/ip").json()
    assert "Hidden One" not in [item["name"] for item in listing["results"]]
    assert [item["name"] for item in api.get("/api/v1/ip?q=ＬＡＮＴＥＲＮ").json()["results"]] == [
        "Lantern Girl"
    ]
    assert [item["name"] for item in api.get("/api/v1/ip?q=灯笼").json()["results"]] == ["Lantern Girl"]
    for limit in (1, 4):
        with django_assert_num_queries(1):
            page = api.get(f"/api/v1/ip?limit={limit}")
        assert len(page.json()["results"]) == limit
    first = api.get("/api/v1/ip?limit=2").json()
    second = api.get(f"/api/v1/ip?limit=2&cursor={first['next_cursor']}").json()
    assert not {i["id"] for i in first["results"]} & {i["id"] for i in second["results"]}


def test_ip_detail_and_versioned_patch(admin, holder_id, make_user, api):
    ip_id = create_ip(client_for(admin), holder_id).json()["id"]
    assert api.get(f"/api/v1/ip/{ip_id}").status_code == 200
    outsider = make_user()
    assert (
        client_for(outsider).patch(f"/api/v1/ip/{ip_id}", {"name": "Mine"}, format="json").status_code == 403
    )
    patched = client_for(admin).patch(
        f"/api/v1/ip/{ip_id}", {"policy": {"status": "opted_out"}, "aliases": ["Lamp Girl"]}, format="json"
    )
    assert patched.status_code == 200
    assert patched.json()["policy"]["version"] == 2
    assert patched.json()["policy"]["revenue_share_bps"] == 1000  # untouched fields carry over
    assert list(
        IpPolicy.objects.filter(ip_id=ip_id).order_by("version").values_list("status", flat=True)
    ) == [
        "opted_in",
        "opted_out",
    ]
    # Opted out: members still see it, everyone else gets a 404.
    assert api.get(f"/api/v1/ip/{ip_id}").status_code == 404
    assert (
        client_for(outsider).patch(f"/api/v1/ip/{ip_id}", {"name": "Mine"}, format="json").status_code == 404
    )
    assert client_for(admin).get(f"/api/v1/ip/{ip_id}").status_code == 200
    assert api.get("/api/v1/ip/not-a-number").status_code == 404


def test_usage_is_for_members_with_a_pinned_query_count(
    admin, holder_id, make_user, make_post, django_assert_num_queries
):
    from remix import services
    from remix.ip import check_ip_use

    ip_id = create_ip(client_for(admin), holder_id).json()["id"]
    creator = make_user()
    for _ in range(4):
        post = make_post(creator)
        services.record_licences(
            post=post, uses=check_ip_use(user=creator, prompt="Lantern Girl walks", has_cameos=False)
        )
    assert client_for(creator).get(f"/api/v1/ip/{ip_id}/usage").status_code == 403
    client = client_for(admin)
    for limit in (1, 3):
        with django_assert_num_queries(4):  # user, IP, role, page
            page = client.get(f"/api/v1/ip/{ip_id}/usage?limit={limit}")
        assert len(page.json()["results"]) == limit
    item = page.json()["results"][0]
    assert item["policy_version"] == 1 and item["author"]["username"] == creator.username


def test_ids_that_cannot_exist_are_404_not_500(admin, holder_id, api):
    huge = "9" * 30
    client = client_for(admin)
    assert api.get(f"/api/v1/ip/{huge}").status_code == 404
    assert client.patch(f"/api/v1/ip/{huge}", {"name": "x"}, format="json").status_code == 404
    assert client.get("/api/v1/ip/-1/usage").status_code == 404
    assert client.get(f"/api/v1/rights-holders/{huge}/statement").status_code == 404
    assert (
        client.put(f"/api/v1/rights-holders/{huge}/members/{admin.username}", {}, format="json").status_code
        == 404
    )
    assert api.get("/api/v1/ip?q=%00lantern").status_code == 200
