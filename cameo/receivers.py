from django.dispatch import receiver

from cameo.services import erase_all_cameos_of
from social.services import user_deleting


@receiver(user_deleting, dispatch_uid="cameo.erase_on_account_deletion")
def erase_cameos_of_deleted_user(sender, user, **kwargs):
    erase_all_cameos_of(user=user)
