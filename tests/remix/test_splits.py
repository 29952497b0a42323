"""split_revenue: API.md's rules, rounding, and properties over any input (hypothesis)."""

from hypothesis import given
from hypothesis import strategies as st

from remix.ledger import IpShare, Party, SplitRates, remix_source_bps, split_revenue

RATES = SplitRates(platform_bps=3000, cameo_bps=500, remix_bps=1000)


def amounts(splits):
    return [(split.party.type, split.party.id, split.amount_minor) for split in splits]


def test_defaults_for_a_post_with_every_kind_of_party():
    splits = split_revenue(
        amount_minor=10_000,
        rates=RATES,
        ip_shares=[IpShare(ip_id=7, rights_holder_id=70, bps=2000)],
        cameo_owner_ids=[3, 1],
        remix_sources=[5],
        creator_id=9,
    )
    assert amounts(splits) == [
        ("platform", None, 3000),
        ("rights_holder", 70, 2000),
        ("cameo_owner", 1, 500),
        ("cameo_owner", 3, 500),
        ("remix_source", 5, 1000),
        ("creator", 9, 3000),
    ]
    assert splits[1].party.ip_id == 7


def test_the_creator_is_never_paid_as_cameo_owner_or_remix_source():
    splits = split_revenue(
        amount_minor=1000, rates=RATES, cameo_owner_ids=[9], remix_sources=[9], creator_id=9
    )
    assert amounts(splits) == [("platform", None, 300), ("creator", 9, 700)]


def test_leftover_units_go_to_the_largest_remainders():
    # 7 * 30% = 2.1, 7 * 5% = 0.35 (x2), creator 7 * 60% = 4.2: floors 2+0+0+4 = 6, one unit left;
    # the largest remainder is a cameo owner's 0.35 (the first of the two, by order).
    splits = split_revenue(amount_minor=7, rates=RATES, cameo_owner_ids=[1, 2], creator_id=9)
    assert amounts(splits) == [("platform", None, 2), ("cameo_owner", 1, 1), ("creator", 9, 4)]


def test_ties_go_in_the_stated_order():
    # 1 unit, platform 50% and creator 50%: equal remainders, the platform comes first.
    rates = SplitRates(platform_bps=5000, cameo_bps=0, remix_bps=0)
    assert amounts(split_revenue(amount_minor=1, rates=rates, creator_id=9)) == [("platform", None, 1)]


def test_shares_above_the_whole_shrink_pro_rata_and_the_creator_gets_nothing():
    splits = split_revenue(
        amount_minor=1000,
        rates=RATES,
        ip_shares=[IpShare(1, 10, 5000), IpShare(2, 20, 5000)],
        remix_sources=[5],
        creator_id=9,
    )
    # 3000 + 5000 + 5000 + 1000 = 14000 bps: platform 3/14, each IP 5/14, remix 1/14.
    assert amounts(splits) == [
        ("platform", None, 214),
        ("rights_holder", 10, 357),
        ("rights_holder", 20, 357),
        ("remix_source", 5, 72),
    ]
    assert sum(split.amount_minor for split in splits) == 1000


parties = st.fixed_dictionaries(
    {
        "amount_minor": st.integers(min_value=0, max_value=10**15),
        "rates": st.builds(
            SplitRates,
            platform_bps=st.integers(0, 10_000),
            cameo_bps=st.integers(0, 10_000),
            remix_bps=st.integers(0, 10_000),
        ),
        "ip_shares": st.lists(
            st.builds(
                IpShare,
                ip_id=st.integers(1, 50),
                rights_holder_id=st.integers(1, 10),
                bps=st.integers(0, 5000),
            ),
            max_size=4,
            unique_by=lambda share: share.ip_id,
        ),
        "cameo_owner_ids": st.lists(st.integers(1, 30), max_size=6),
        "remix_sources": st.lists(st.none() | st.integers(1, 30), max_size=10),
        "creator_id": st.integers(1, 30),
    }
)


@given(parties)
def test_splits_are_non_negative_sum_exactly_and_are_deterministic(arguments):
    splits = split_revenue(**arguments)
    assert all(split.amount_minor > 0 for split in splits)
    assert sum(split.amount_minor for split in splits) == arguments["amount_minor"]
    assert split_revenue(**arguments) == splits
    shuffled = dict(arguments, cameo_owner_ids=list(reversed(arguments["cameo_owner_ids"])))
    shuffled["ip_shares"] = list(reversed(arguments["ip_shares"]))
    assert split_revenue(**shuffled) == splits


@given(parties)
def test_each_share_is_within_one_unit_of_its_exact_value(arguments):
    splits = split_revenue(**arguments)
    rates = arguments["rates"]
    creator = arguments["creator_id"]
    claims = [rates.platform_bps, *(share.bps for share in arguments["ip_shares"])]
    claims += [rates.cameo_bps] * len(set(arguments["cameo_owner_ids"]) - {creator})
    remix = remix_source_bps(remix_bps=rates.remix_bps, remix_sources=arguments["remix_sources"])
    claims += [bps for author, bps in remix.items() if author != creator]
    whole = max(10_000, sum(claims))
    paid_to_creator = sum(s.amount_minor for s in splits if s.party == Party("creator", creator))
    exact_creator = arguments["amount_minor"] * (whole - sum(claims)) / whole if whole == 10_000 else 0
    assert abs(paid_to_creator - exact_creator) < 1 + 1e-6 * max(1, exact_creator)
    if sum(claims) > 10_000:
        assert paid_to_creator == 0


def test_a_stitch_splits_the_remix_share_between_its_sources_authors():
    # Four sources: two by user 5, one by 6, one by the creator (9). 1000 bps: 500, 250, 250.
    splits = split_revenue(amount_minor=10_000, rates=RATES, remix_sources=[5, 6, 5, 9], creator_id=9)
    assert amounts(splits) == [
        ("platform", None, 3000),
        ("remix_source", 5, 500),
        ("remix_source", 6, 250),
        ("creator", 9, 6250),
    ]
    # A source deleted since earns no one: its part stays with the creator.
    splits = split_revenue(amount_minor=10_000, rates=RATES, remix_sources=[5, None], creator_id=9)
    assert amounts(splits) == [("platform", None, 3000), ("remix_source", 5, 500), ("creator", 9, 6500)]


@given(st.integers(0, 10_000), st.lists(st.none() | st.integers(1, 5), min_size=1, max_size=10))
def test_remix_points_are_whole_within_one_of_exact_and_never_more_than_the_share(remix_bps, sources):
    shares = remix_source_bps(remix_bps=remix_bps, remix_sources=sources)
    for author, bps in shares.items():
        exact = remix_bps * sources.count(author) / len(sources)
        assert exact - 1 < bps < exact + 1
    existing = sum(1 for author in sources if author is not None)
    assert sum(shares.values()) == remix_bps * existing // len(sources)
