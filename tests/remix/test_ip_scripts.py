"""IP aliases written next to scripts without spaces (Chinese, Japanese, Thai) are still found."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import ApiError
from remix.ip import check_ip_use

# Letters that NFKC leaves alone, from Han, Hiragana, Katakana and Thai.
SPACELESS_LETTERS = st.one_of(
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
    st.characters(min_codepoint=0x3041, max_codepoint=0x3096),
    st.characters(min_codepoint=0x30A1, max_codepoint=0x30FA),
    st.characters(min_codepoint=0x0E01, max_codepoint=0x0E30),
)


@pytest.fixture
def zorbulon(make_user, make_holder, make_ip):
    holder = make_holder(make_user("zorbulon_admin"), name="Zorbulon Pictures")
    # No description: the IP can only be found by its name, so these tests see the alias stage alone.
    return make_ip(holder, name="Zorbulon", status="opted_out")


def refusal(user, prompt):
    with pytest.raises(ApiError) as refused:
        check_ip_use(user=user, prompt=prompt, has_cameos=False)
    assert (refused.value.status_code, refused.value.code) == (422, "ip_not_licensed")
    return refused.value.details


@pytest.mark.parametrize(
    "prompt",
    ["我和Zorbulon一起跳舞", "Zorbulonと踊る", "ฉันเต้นกับZorbulon", "Zorbulon dancing", "ZORBULON跳舞"],
)
def test_an_opted_out_name_is_refused_whatever_script_surrounds_it(zorbulon, user, prompt):
    details = refusal(user, prompt)
    assert (details["ip"], details["reason"]) == (str(zorbulon.pk), "opted_out")


@pytest.mark.parametrize("prompt", ["Zorbulonia is a city", "我去了Zorbulonia", "the zorbulons are here"])
def test_a_longer_latin_word_is_not_the_name(zorbulon, user, prompt):
    assert check_ip_use(user=user, prompt=prompt, has_cameos=False) == []


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    left=st.text(alphabet=SPACELESS_LETTERS, min_size=1, max_size=8),
    right=st.text(alphabet=SPACELESS_LETTERS, min_size=1, max_size=8),
    side=st.sampled_from(["left", "right", "both"]),
)
def test_the_name_is_refused_next_to_any_text_without_spaces(zorbulon, user, left, right, side):
    prompt = (left if side != "right" else "") + "Zorbulon" + (right if side != "left" else "")
    assert refusal(user, prompt)["ip"] == str(zorbulon.pk)
