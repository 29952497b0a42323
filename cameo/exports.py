"""What a data export (social/exports.py) holds of a user's cameos: each cameo's record, who it is
granted to, and its audit trail, erased cameos included (their trail ends with the erasure). Never
biometrics: the verification video, face crop and template are neither read nor written; the
records are rendered by the API's own serializers, which leave them out."""

from __future__ import annotations

from cameo.models import Cameo, CameoAudit, CameoGrant
from social.exports import register_section


def _owned(user):
    return Cameo.objects.filter(owner_id=user.pk)


def cameos_of(user) -> list[dict]:
    from cameo.api.serializers import CameoSerializer

    cameos = _owned(user).select_related("owner").defer("template_vector").order_by("created_at", "id")
    return CameoSerializer(cameos, many=True).data


def grants_of(user) -> list[dict]:
    grants = (
        CameoGrant.objects.filter(cameo__owner_id=user.pk)
        .select_related("grantee")
        .order_by("created_at", "id")
    )
    return [
        {
            "cameo_id": str(grant.cameo_id),
            "grantee": {"id": str(grant.grantee_id), "username": grant.grantee.username},
            "created_at": grant.created_at,
        }
        for grant in grants
    ]


def audit_trails_of(user) -> list[dict]:
    from cameo.api.serializers import AuditEntrySerializer

    entries = CameoAudit.objects.filter(cameo_id_value__in=_owned(user).values("pk")).order_by(
        "cameo_id_value", "at", "id"
    )
    return [{"cameo_id": str(entry.cameo_id_value), **AuditEntrySerializer(entry).data} for entry in entries]


register_section(
    "cameos.json",
    describes=(
        "the account's cameos: kind (person or character), handle, name, status, permission, instructions, "
        "restrictions (no biometric data)"
    ),
    collect=cameos_of,
)
register_section(
    "cameo_grants.json", describes="who each of the account's cameos is granted to", collect=grants_of
)
register_section(
    "cameo_audit.json",
    describes="the audit trail of each of the account's cameos: who changed what about its consent, and when",
    collect=audit_trails_of,
)
