"""Forms of the web interface; each refuses bad input with a message and changes nothing."""

from __future__ import annotations

from django import forms
from django.conf import settings

from discovery.models import MAX_DEVICE_INSTANCE
from discovery.services import virtual_store
from discovery.services.object_templates import BACNET_OBJECT_TEMPLATES


class CreateVirtualDeviceForm(forms.Form):
    template = forms.ChoiceField(
        choices=[
            (name, f"{name} — {t['description']}") for name, t in sorted(BACNET_OBJECT_TEMPLATES.items())
        ]
    )
    name = forms.CharField(max_length=virtual_store.MAX_NAME_LENGTH)
    device_id = forms.IntegerField(
        min_value=0, max_value=MAX_DEVICE_INSTANCE, help_text=f"0 to {MAX_DEVICE_INSTANCE}, unique"
    )
    description = forms.CharField(max_length=255, required=False)

    def clean(self) -> dict:
        data = super().clean()
        if not self.errors:
            try:
                virtual_store.validate_new_device(data["template"], data["device_id"], data["name"])
            except virtual_store.VirtualDeviceError as exc:
                raise forms.ValidationError(str(exc)) from None
        return data


class WriteValueForm(forms.Form):
    value = forms.CharField(max_length=64, required=False, help_text="number, state text, active/inactive")
    priority = forms.IntegerField(min_value=1, max_value=16, initial=settings.BACNET_DEFAULT_WRITE_PRIORITY)
    relinquish = forms.BooleanField(required=False)

    def clean(self) -> dict:
        data = super().clean()
        if not self.errors and not data.get("relinquish") and not (data.get("value") or "").strip():
            raise forms.ValidationError("Enter a value, or tick relinquish.")
        return data


class ScanForm(forms.Form):
    low_limit = forms.IntegerField(min_value=0, max_value=4194303, required=False, label="From instance")
    high_limit = forms.IntegerField(min_value=0, max_value=4194303, required=False, label="To instance")
    read_points = forms.BooleanField(required=False, label="Also read every device's points")

    def clean(self) -> dict:
        data = super().clean()
        low, high = data.get("low_limit"), data.get("high_limit")
        if (low is None) != (high is None):
            raise forms.ValidationError("Give both ends of the range, or neither.")
        if low is not None and high is not None and low > high:
            raise forms.ValidationError("The range starts after it ends.")
        return data
