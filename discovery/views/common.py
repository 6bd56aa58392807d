"""Helpers shared by the views: permissions, the service, BACnet errors in words."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.shortcuts import render

from discovery.services.bridge import RemoteService, bridge_enabled
from discovery.services.unified_bacnet_service import UnifiedBACnetService, get_unified_bacnet_service

# Writing values, creating/deleting virtual devices and scanning need this permission.
OPERATE = "discovery.operate_bacnet"
OPERATORS_GROUP = "operators"


def running_service() -> UnifiedBACnetService | RemoteService | None:
    """The service in this process, else (scale-out, Redis layer) the service process's bridge."""
    service = get_unified_bacnet_service()
    if service.is_running:
        return service
    if bridge_enabled():
        return RemoteService()
    return None


NOT_RUNNING_MESSAGE = "The BACnet service is not running in this process: start it with `manage.py serve`."


def error_in_words(error_class: str, error_code: str) -> str:
    """'property', 'value-out-of-range' -> 'Value out of range (property error)'."""
    words = error_code.replace("-", " ").strip().capitalize() or "Error"
    return f"{words} ({error_class} error)" if error_class else words


def can_operate(user) -> bool:
    return user.has_perm(OPERATE)


# Templates read the session user and messages (database work): render them off the event loop.
arender = sync_to_async(render)
