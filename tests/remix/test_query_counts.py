"""Every list endpoint of the remix app costs a fixed number of queries, whatever its length."""

from datetime import UTC, datetime, time, timedelta

import pytest

from remix import ledger, services
from remix.ip import LicenceUse
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

ROWS = 12  # more than the largest page asked for below, so that every paged list has a next page
FIRST_DAY = (datetime.now(UTC) - timedelta(days=ROWS + 2)).date()


def noon(day: int) -> datetime:
    return datetime.combine(FIRST_DAY + timedelta(days=day), time(12), tzinfo=UTC)


def licence_use(ip, holder) -> LicenceUse:
    return LicenceUse(
        ip_id=ip.pk,
        ip_name=ip.name,
        rights_holder_id=holder.pk,
        rights_holder_name=holder.name,
        policy_id=ip.current_policy_id,
        policy_version=1,
        how="alias",
        score=1.0,
    )


@pytest.fixture
def busy_world(make_user, make_post, make_holder, make_ip):
    """A verified studio with ROWS opted-in IPs; ROWS remixes of one post by three remixers, each
    licensing the studio's first IP and one IP of its own; one ad event a day on each remix."""
    studio_admin, origin_author = make_user("studio_chief"), make_user("origin_teller")
    remixers = [make_user(f"remixer{n}") for n in range(3)]
    holder = make_holder(studio_admin, name="Harbour Pictures")
    ips = [make_ip(holder, name=f"Harbour Hero {n}", revenue_share_bps=500) for n in range(ROWS)]
    source = make_post(origin_author)
    for n in range(ROWS):
        remix = make_post(remixers[n % 3], remix_of=source)
        own = [licence_use(ips[n], holder)] if n else []  # the first remix's own IP is the shared one
        services.record_licences(post=remix, uses=[licence_use(ips[0], holder), *own])
        ledger.record_revenue_event(
            event_id=f"ad-{n}",
            post_id=remix.pk,
            amount_minor=10_000,
            currency="USD",
            kind="ad",
            occurred_at=noon(n),
        )
    return {
        "studio_admin": studio_admin,
        "origin_author": origin_author,
        "holder": holder,
        "ips": ips,
        "source": source,
    }


# (path, who calls, queries, rows available). Authenticated calls start with the JWT's user.
PAGED_ENDPOINTS = [
    # the page, with its rights holder and current policy joined in.
    ("/api/v1/ip", "anonymous", 1, ROWS),
    ("/api/v1/ip?q=harbour", "anonymous", 1, ROWS),
    # user, the page.
    ("/api/v1/ip", "studio_admin", 2, ROWS),
    # user, the IP (with holder and policy), the viewer's role in its holder, the page with each
    # licence's post, author and policy version joined in.
    ("/api/v1/ip/{ip}/usage", "studio_admin", 4, ROWS),
    # user, the source post, the page (authors joined, the viewer's likes as an EXISTS column;
    # IP and cameos are denormalised on the post).
    ("/api/v1/posts/{source}/remixes", "origin_author", 3, ROWS),
]


@pytest.mark.parametrize(("path", "who", "queries", "available"), PAGED_ENDPOINTS)
@pytest.mark.parametrize("limit", [1, 10])
def test_paged_list_query_count_does_not_grow_with_page_size(
    busy_world, api, django_assert_num_queries, path, who, queries, available, limit
):
    client = api if who == "anonymous" else client_for(busy_world[who])
    url = path.format(ip=busy_world["ips"][0].pk, source=busy_world["source"].pk)
    url += ("&" if "?" in url else "?") + f"limit={limit}"
    with django_assert_num_queries(queries):
        response = client.get(url)
    assert response.status_code == 200
    assert len(response.json()["results"]) == min(limit, available)
    assert response.json()["next_cursor"]
    with django_assert_num_queries(queries):
        following = client.get(url + f"&cursor={response.json()['next_cursor']}")
    assert following.status_code == 200
    assert len(following.json()["results"]) == min(limit, available - limit)


# Not paged: one event's day against all ROWS days.
# (path, who calls, queries, lines of the first day, lines of all days)
PERIOD_ENDPOINTS = [
    # user, the lines (one GROUP BY post, role, currency); the totals are summed from the lines.
    # The origin's author earns the remix royalty of each remix: a line per remix.
    ("/api/v1/me/earnings", "origin_author", 2, 1, ROWS),
    # user, the rights holder, the viewer's role in it, the lines (one GROUP BY IP, post, currency),
    # the names of the lines' IPs (postings keep a bare ip_id) in one IN query.
    # A line for the shared IP on every remix and one for each later remix's own IP.
    ("/api/v1/rights-holders/{holder}/statement", "studio_admin", 5, 1, 2 * ROWS - 1),
]


@pytest.mark.parametrize(("path", "who", "queries", "few_lines", "many_lines"), PERIOD_ENDPOINTS)
def test_period_list_query_count_does_not_grow_with_its_lines(
    busy_world, django_assert_num_queries, path, who, queries, few_lines, many_lines
):
    client = client_for(busy_world[who])
    url = path.format(holder=busy_world["holder"].pk)
    one_day = f"{url}?from={FIRST_DAY}&to={FIRST_DAY + timedelta(days=1)}"
    every_day = f"{url}?from={FIRST_DAY}&to={FIRST_DAY + timedelta(days=ROWS)}"
    with django_assert_num_queries(queries):
        few = client.get(one_day).json()
    with django_assert_num_queries(queries):
        many = client.get(every_day).json()
    assert len(few["lines"]) == few_lines
    assert len(many["lines"]) == many_lines
    assert [total["currency"] for total in many["totals"]] == ["USD"]


def test_statement_as_csv_costs_the_same_queries(busy_world, django_assert_num_queries):
    client = client_for(busy_world["studio_admin"])
    url = f"/api/v1/rights-holders/{busy_world['holder'].pk}/statement?format=csv"
    with django_assert_num_queries(5):  # as the JSON statement
        response = client.get(f"{url}&from={FIRST_DAY}&to={FIRST_DAY + timedelta(days=ROWS)}")
    assert response.status_code == 200
    assert len(response.content.decode().strip().splitlines()) == 1 + 2 * ROWS - 1  # header and lines


def test_an_empty_period_costs_no_more_queries(busy_world, django_assert_num_queries):
    client = client_for(busy_world["studio_admin"])
    url = f"/api/v1/rights-holders/{busy_world['holder'].pk}/statement?from=2020-01-01&to=2020-01-02"
    with django_assert_num_queries(4):  # no lines, so no IP names to read
        assert client.get(url).json()["lines"] == []


def test_lineage_query_count_does_not_grow_with_depth(make_user, make_post, django_assert_num_queries):
    tellers = [make_user(f"chain_teller{n}") for n in range(3)]
    chain = [make_post(tellers[0])]
    for n in range(1, ROWS + 1):
        chain.append(make_post(tellers[n % 3], remix_of=chain[-1]))
    client = client_for(make_user("chain_reader"))
    for post in (chain[1], chain[-1]):
        # user, the post, the recursive walk up `remix_of`, the visible ancestors with their authors.
        with django_assert_num_queries(4):
            body = client.get(f"/api/v1/posts/{post.pk}/lineage").json()
        assert len(body["ancestors"]) == body["depth"] == post.depth
    assert body["depth"] == ROWS
