"""IP management in the Django admin writes policy versions like the API does."""

from remix.models import IntellectualProperty, IpPolicy


def test_admin_adds_ip_and_each_policy_change_is_a_new_version(make_user, make_holder, client):
    staff = make_user("admin_staff", is_staff=True, is_superuser=True)
    holder = make_holder(make_user("holder_owner"))
    client.force_login(staff)
    form = {
        "rights_holder": holder.pk,
        "name": "Comet Kid",
        "aliases": "Comet Boy,彗星小子",
        "description": "a boy riding a comet across the night sky",
        "policy_status": "opted_in",
        "allow_cameos": "on",
        "disallowed_themes": "alcohol, politics",
        "revenue_share_bps": "1200",
        "policies-TOTAL_FORMS": "0",
        "policies-INITIAL_FORMS": "0",
    }
    added = client.post("/admin/remix/intellectualproperty/add/", form)
    assert added.status_code == 302, added.content[:2000]
    ip = IntellectualProperty.objects.get(name="Comet Kid")
    assert ip.aliases == ["Comet Boy", "彗星小子"]
    assert ip.description_embedding is not None
    assert (ip.current_policy.version, ip.current_policy.disallowed_themes) == (1, ["alcohol", "politics"])
    changed = client.post(
        f"/admin/remix/intellectualproperty/{ip.pk}/change/",
        form | {"revenue_share_bps": "1500", "policies-INITIAL_FORMS": "0"},
    )
    assert changed.status_code == 302
    assert list(
        IpPolicy.objects.filter(ip=ip).order_by("version").values_list("version", "revenue_share_bps")
    ) == [
        (1, 1200),
        (2, 1500),
    ]
    assert IpPolicy.objects.get(ip=ip, version=2).created_by == staff
    assert client.get(f"/admin/remix/intellectualproperty/{ip.pk}/change/").status_code == 200
    assert client.get("/admin/remix/journalentry/").status_code == 200


def test_admin_cannot_register_ip_of_an_unverified_holder(make_user, make_holder, client):
    staff = make_user("admin_staff2", is_staff=True, is_superuser=True)
    holder = make_holder(make_user("holder_owner2"), verified=False)
    client.force_login(staff)
    form = {
        "rights_holder": holder.pk,
        "name": "  Night   Owl ",
        "aliases": "",
        "description": "an owl",
        "policy_status": "opted_in",
        "disallowed_themes": "",
        "revenue_share_bps": "0",
        "policies-TOTAL_FORMS": "0",
        "policies-INITIAL_FORMS": "0",
    }
    refused = client.post("/admin/remix/intellectualproperty/add/", form)
    assert refused.status_code == 200 and b"Verify the rights holder" in refused.content
    assert not IntellectualProperty.objects.filter(rights_holder=holder).exists()
    holder.verified = True
    holder.save(update_fields=["verified"])
    assert client.post("/admin/remix/intellectualproperty/add/", form).status_code == 302
    assert IntellectualProperty.objects.get(rights_holder=holder).name == "Night Owl"
