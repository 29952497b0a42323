from remix import ledger
from remix.demo import seed_remix_demo
from remix.models import IpLicence, JournalEntry
from social.demo import seed_social_demo
from social.models import Post


def test_the_demo_has_a_remix_chain_a_licensed_character_with_revenue_and_is_idempotent(
    db, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path)
    seed_social_demo()
    first = seed_remix_demo()
    counts = (Post.objects.count(), JournalEntry.objects.count(), IpLicence.objects.count())
    again = seed_remix_demo()
    assert (Post.objects.count(), JournalEntry.objects.count(), IpLicence.objects.count()) == counts
    assert first == again
    chain = Post.objects.filter(pk__in=first["chain"]).order_by("depth")
    assert [post.depth for post in chain] == [0, 1, 2]
    licensed = IpLicence.objects.get()
    assert licensed.ip.name == "Mochi" and licensed.policy.status == "opted_in"
    assert Post.objects.get(pk=licensed.post_id).ip_refs[0]["name"] == "Mochi"
    assert JournalEntry.objects.count() == 5
    assert ledger.balances(owner_type="rights_holder", owner_id=licensed.ip.rights_holder_id)["USD"] == 1875
    assert ledger.check_books().balanced
