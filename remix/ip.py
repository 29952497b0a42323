"""Finding registered IP in prompts, and deciding whether a use is licensed.

Only IP of verified rights holders is looked for: an unverified organisation cannot make a common
word unusable by registering it as an alias.

A prompt mentions an IP when

1. alias: the IP's name or one of its aliases occurs in the prompt, ignoring case and full/half
   width (both sides go through `core.themes.normalize_text`), on word boundaries where the script
   has them ("Mochi" does not match "Mochizuki") and as a plain substring next to scripts that do
   not separate words ("ピカチュウが走る" matches "ピカチュウ", "我和Zorbulon一起跳舞" "Zorbulon"); or
2. semantic: the cosine similarity of the prompt (or one of its clauses) to the IP's description,
   both embedded with all-MiniLM-L6-v2, reaches IP_SIMILARITY_THRESHOLD.

The threshold, 0.6, was measured on four made-up characters (a caped space superhero, a chubby
cartoon cat, a 1940s Shanghai detective, a robot dog on wheels), each with two prompts that describe
the character without naming it, against twelve everyday prompts chosen to be near them ("a
superhero costume party with friends", "a toy robot dancing on a table", "a detective movie poster
in black and white", "white kitten playing with yarn"). Describing prompts scored 0.706-0.929
against their own character and at most 0.343 against the others; the everyday prompts scored at
most 0.426. 0.6 sits in the gap, nearer the near misses than the hits, since a miss there is caught
by the alias stage when the prompt names the character.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.conf import settings

from core.errors import RuleRefusal
from core.themes import clauses, match_theme, normalize_text, term_pattern
from remix.models import IntellectualProperty, IpPolicy, PolicyStatus, RightsHolderMember


@dataclass(frozen=True)
class IpMention:
    ip: IntellectualProperty
    how: str  # "alias" or "semantic"
    score: float
    evidence: str = ""


@dataclass(frozen=True)
class LicenceUse:
    """An accepted use of an IP under one policy version; generation keeps it on the job."""

    ip_id: int
    ip_name: str
    rights_holder_id: int
    rights_holder_name: str
    policy_id: int
    policy_version: int
    how: str
    score: float

    def as_dict(self) -> dict:
        return {
            "ip_id": str(self.ip_id),
            "ip_name": self.ip_name,
            "rights_holder_id": str(self.rights_holder_id),
            "rights_holder": self.rights_holder_name,
            "policy_id": str(self.policy_id),
            "policy_version": self.policy_version,
            "how": self.how,
            "score": self.score,
        }

    @classmethod
    def from_dict(cls, data: dict) -> LicenceUse:
        return cls(
            ip_id=int(data["ip_id"]),
            ip_name=data["ip_name"],
            rights_holder_id=int(data["rights_holder_id"]),
            rights_holder_name=data["rights_holder"],
            policy_id=int(data["policy_id"]),
            policy_version=int(data["policy_version"]),
            how=data.get("how", ""),
            score=float(data.get("score", 0)),
        )


def embed_description(text: str) -> list[float] | None:
    from core.text_embeddings import embed_text

    text = text.strip()
    return embed_text(text).tolist() if text else None


def _alias_hit(normalized_prompt: str, ip: IntellectualProperty) -> str | None:
    for term in [ip.name, *ip.aliases]:
        if term and term.strip() and term_pattern(term).search(normalized_prompt):
            return term
    return None


def detect_ip(prompt: str, *, threshold: float | None = None) -> list[IpMention]:
    """The registered IP that `prompt` mentions, by alias or by meaning; one query."""
    if not prompt or not prompt.strip():
        return []
    limit = settings.IP_SIMILARITY_THRESHOLD if threshold is None else threshold
    catalogue = list(
        IntellectualProperty.objects.filter(rights_holder__verified=True)
        .select_related("current_policy", "rights_holder")
        .order_by("id")
    )
    if not catalogue:
        return []
    normalized = normalize_text(prompt)
    mentions: dict[int, IpMention] = {}
    for ip in catalogue:
        term = _alias_hit(normalized, ip)
        if term is not None:
            mentions[ip.pk] = IpMention(ip=ip, how="alias", score=1.0, evidence=term)
    described = [ip for ip in catalogue if ip.pk not in mentions and ip.description_embedding is not None]
    if described:
        from core.text_embeddings import embed_texts

        pieces = clauses(prompt)
        prompt_vectors = embed_texts(pieces)
        descriptions = np.stack([np.asarray(ip.description_embedding, dtype=np.float32) for ip in described])
        scores = prompt_vectors @ descriptions.T  # clauses x IP
        best_clause = scores.argmax(axis=0)
        for column, ip in enumerate(described):
            score = float(scores[best_clause[column], column])
            if score >= limit:
                mentions[ip.pk] = IpMention(
                    ip=ip, how="semantic", score=round(score, 4), evidence=pieces[best_clause[column]]
                )
    return sorted(mentions.values(), key=lambda mention: mention.ip.pk)


def _refuse(ip: IntellectualProperty, reason: str, **extra) -> RuleRefusal:
    return RuleRefusal(
        f"The prompt uses “{ip.name}”, which is not licensed for this use.",
        code="ip_not_licensed",
        details={"ip": str(ip.pk), "name": ip.name, "reason": reason, **extra},
    )


def check_ip_use(*, user, prompt: str, has_cameos: bool) -> list[LicenceUse]:
    """The licences a generation with `prompt` needs, or 422 `ip_not_licensed`.

    A mentioned IP is refused when its current policy is `opted_out` (reason `opted_out`; members of
    its rights holder may still use their own IP), when the generation uses cameos and the policy
    does not allow them (`cameos_not_allowed`), or when the prompt touches one of the policy's
    disallowed themes (`disallowed_theme`, with the theme). Details always carry the IP's id.
    """
    mentions = detect_ip(prompt)
    if not mentions:
        return []
    holder_ids = {mention.ip.rights_holder_id for mention in mentions}
    member_of = set()
    if user is not None and getattr(user, "is_authenticated", False):
        member_of = set(
            RightsHolderMember.objects.filter(user=user, rights_holder_id__in=holder_ids).values_list(
                "rights_holder_id", flat=True
            )
        )
    uses = []
    for mention in mentions:
        ip = mention.ip
        policy: IpPolicy | None = ip.current_policy
        if policy is None:
            raise _refuse(ip, "opted_out")
        if policy.status != PolicyStatus.OPTED_IN and ip.rights_holder_id not in member_of:
            raise _refuse(ip, "opted_out")
        if has_cameos and not policy.allow_cameos:
            raise _refuse(ip, "cameos_not_allowed")
        theme = match_theme(prompt, list(policy.disallowed_themes))
        if theme is not None:
            raise _refuse(ip, "disallowed_theme", theme=theme.theme)
        uses.append(
            LicenceUse(
                ip_id=ip.pk,
                ip_name=ip.name,
                rights_holder_id=ip.rights_holder_id,
                rights_holder_name=ip.rights_holder.name,
                policy_id=policy.pk,
                policy_version=policy.version,
                how=mention.how,
                score=mention.score,
            )
        )
    return uses
