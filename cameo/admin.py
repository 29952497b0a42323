from django import forms
from django.contrib import admin

from cameo import services
from cameo.models import ProtectedLikeness, ReleasedHandle
from core.errors import ApiError


class ProtectedLikenessForm(forms.ModelForm):
    """The reference photo is checked (one face, by content) when the form is cleaned; the save
    goes through the services, which store it in the private storage under a random name."""

    reference_photo = forms.FileField(
        required=False, help_text="a photo showing exactly one face; replaces the current reference"
    )

    class Meta:
        model = ProtectedLikeness
        fields = ("name", "aliases", "reason")

    def clean_reference_photo(self):
        upload = self.cleaned_data.get("reference_photo")
        if not upload:
            return None
        try:
            return services.read_reference_face(upload)
        except ApiError as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from exc


@admin.register(ProtectedLikeness)
class ProtectedLikenessAdmin(admin.ModelAdmin):
    form = ProtectedLikenessForm
    list_display = ("id", "name", "reason", "alias_list", "has_reference", "created_at")
    list_filter = ("reason",)
    search_fields = ("name",)
    readonly_fields = ("has_reference", "created_at", "updated_at")

    @admin.display(description="aliases")
    def alias_list(self, likeness):
        return ", ".join(likeness.aliases)

    @admin.display(boolean=True, description="reference")
    def has_reference(self, likeness):
        return likeness.has_reference

    def get_queryset(self, request):
        return super().get_queryset(request).defer("template_vector")

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        fields = {
            "name": data["name"],
            "aliases": data["aliases"],
            "reason": data["reason"],
            "reference": data["reference_photo"],
        }
        if change:
            saved = services.update_protected_likeness(actor=request.user, likeness=obj, **fields)
        else:
            saved = services.create_protected_likeness(actor=request.user, **fields)
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        services.delete_protected_likeness(actor=request.user, likeness=obj)

    def delete_queryset(self, request, queryset):
        for likeness in queryset:
            services.delete_protected_likeness(actor=request.user, likeness=likeness)


@admin.register(ReleasedHandle)
class ReleasedHandleAdmin(admin.ModelAdmin):
    """Handles reserved to their last owner for 30 days after release. Staff may delete an entry
    to free a handle early (an impersonation report); nothing else is edited here."""

    list_display = ("handle", "owner", "released_at")
    search_fields = ("handle",)
    readonly_fields = ("handle", "owner", "released_at")

    def has_add_permission(self, request):
        return False
