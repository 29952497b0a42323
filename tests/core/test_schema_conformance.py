"""Every operation answers only what `/api/schema/` documents: schemathesis against the in-process
WSGI app, signed in as one user who survives the run.

Checks: no 5xx, each status documented for the operation, its body valid against the documented
schema, its content type and headers (429's Retry-After) as documented. Cases are valid and
invalid requests (schemathesis's positive and negative modes), and valid ones aimed at things
that exist (a post, a cameo, a rights holder...) so that more than the 404 path is exercised.
Derandomized: a failure is found again by the next run.

schemathesis's own pytest integration (`from_fixture(...).parametrize()`) fails under pytest 9.2
(it sets `Function._nodeid`, which pytest no longer has), so each operation is one Hypothesis run
here, and the failures of all operations are reported together.
"""

import itertools
import os

import hypothesis
import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from rest_framework_simplejwt.tokens import RefreshToken
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cameo.models import Cameo, Permission
from remix import services as remix_services
from remix.models import RightsHolder
from social.models import Post, PostStatus
from social.services import register_user
from tests.conftest import PASSWORD, client_for

pytestmark = pytest.mark.django_db

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Enough to reach past the 404s and 400s of each operation within the suite's time; raise it
# (SCHEMA_FUZZ_EXAMPLES=100) for a deeper search by hand.
EXAMPLES_PER_OPERATION = int(os.environ.get("SCHEMA_FUZZ_EXAMPLES", "12"))
FUZZING = hypothesis.settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    database=None,
    # Every example is reported as found: shrinking one would cost many more requests.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
    report_multiple_bugs=False,
)

_throwaway_names = itertools.count(1)


def bearer(user) -> dict[str, str]:
    return {"Authorization": f"Bearer {RefreshToken.for_user(user).access_token}"}


@pytest.fixture
def wsgi_app(settings):
    """The WSGI app inside the test's transaction: as Django's test client does, requests must not
    close the database connection when they end."""
    settings.ALLOWED_HOSTS = ["localhost"]  # the host schemathesis's WSGI client sends
    signals = (request_started, request_finished)
    for signal in signals:
        signal.disconnect(close_old_connections)
    yield get_wsgi_application()
    for signal in signals:
        signal.connect(close_old_connections)


@pytest.fixture
def api_schema(wsgi_app):
    return schemathesis.openapi.from_wsgi("/api/schema/", wsgi_app)


@pytest.fixture
def fuzzer(make_user):
    return make_user("fuzzer")


@pytest.fixture
def known_ids(fuzzer, make_user) -> dict[str, list[str]]:
    """Path parameter values that name things which exist, the fuzzer's own and someone else's."""
    other = make_user("other")
    posts = [
        Post.objects.create(author=other, status=PostStatus.PUBLISHED, published_at=timezone.now()),
        Post.objects.create(author=fuzzer, status=PostStatus.DRAFT, prompt="a lighthouse"),
        Post.objects.create(author=fuzzer, status=PostStatus.PUBLISHED, published_at=timezone.now()),
    ]
    cameos = [
        Cameo.objects.create(owner=fuzzer, display_name="me"),
        Cameo.objects.create(owner=other, display_name="them", permission=Permission.EVERYONE),
    ]
    holder = remix_services.create_rights_holder(user=fuzzer, name="Fuzz Studio")
    RightsHolder.objects.filter(pk=holder.pk).update(verified=True, verified_at=timezone.now())
    ip = remix_services.register_ip(actor=fuzzer, rights_holder_id=holder.pk, name="Fuzzy")
    return {
        "post_id": [str(post.pk) for post in posts],
        "cameo_id": [str(cameo.pk) for cameo in cameos],
        "username": ["other", "fuzzer"],
        "holder_id": [str(holder.pk)],
        "ip_id": [str(ip.pk)],
    }


def cases(operation, known_ids: dict[str, list[str]]):
    """Valid and invalid requests, and valid ones naming things that exist."""
    strategies = [operation.as_strategy(mode) for mode in GenerationMode]
    names = [p.name for p in operation.path_parameters] if operation.path_parameters else []
    choices = [known_ids.get(name, [None]) for name in names]
    if any(values != [None] for values in choices):
        combinations = [
            {name: value for name, value in zip(names, values, strict=True) if value is not None}
            for values in itertools.product(*choices)
        ]
        strategies.append(
            st.sampled_from(combinations).flatmap(lambda known: operation.as_strategy(path_parameters=known))
        )
    return st.one_of(strategies)


def ends_the_account(case) -> bool:
    return case.method == "DELETE" and case.path == "/api/v1/me"


def fuzz(operation, known_ids, headers) -> None:
    @FUZZING
    @hypothesis.given(case=cases(operation, known_ids))
    def run(case):
        sent = headers
        if ends_the_account(case):
            # DELETE /me ends the account it is sent for: each call deletes a throwaway account,
            # so the fuzzer stays signed in for every other operation. (POST /auth/logout needs no
            # such care: it ends the session of the refresh token in its body, and the fuzzer's
            # refresh token is never among the generated ones.)
            throwaway = register_user(
                username=f"gone{next(_throwaway_names)}", password=PASSWORD, birth_date="1990-01-01"
            )
            sent = bearer(throwaway)
        case.call_and_validate(headers=sent, checks=CHECKS)

    run()


def documents(operation, status: int) -> bool:
    return str(status) in operation.definition.raw["responses"]


def test_every_answer_is_documented(api_schema, fuzzer, make_user, known_ids):
    """Each operation as the fuzzer; again as staff where a role may refuse the fuzzer (403), so
    that what only staff reach (the registry of protected likenesses, revenue) is fuzzed too."""
    signed_in = bearer(fuzzer)
    staff = bearer(make_user("moderator", is_staff=True))
    operations = [result.ok() for result in api_schema.get_all_operations()]
    runs = [(operation, signed_in) for operation in operations]
    runs += [(operation, staff) for operation in operations if documents(operation, 403)]
    failures = {}
    for operation, headers in runs:
        try:
            fuzz(operation, known_ids, headers)
        except (Exception, BaseExceptionGroup) as exc:  # every operation's failure is reported below
            label = f"{operation.label} (as {'staff' if headers is staff else 'a user'})"
            failures[label] = exc
    assert len(operations) > 60
    report = "\n\n".join(f"{label}:\n{exc}" for label, exc in failures.items())
    assert not failures, f"{len(failures)} operations answer what the schema does not say:\n\n{report}"


def test_a_refused_csv_statement_is_a_json_error_labelled_json(fuzzer):
    """Found by the run above: the refusal's JSON body went out as text/csv."""
    response = client_for(fuzzer).get("/api/v1/rights-holders/0/statement?format=csv")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"
