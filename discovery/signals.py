"""Business-logic hooks.

``virtual_object_changed`` is sent after every accepted change to a virtual object, from
any source, once it is persisted and acknowledged. Receivers run in a worker thread (the
ORM is safe to use there); one that raises is logged and never affects the write::

    from django.dispatch import receiver
    from discovery.signals import virtual_object_changed

    @receiver(virtual_object_changed)
    def on_change(sender, event, **kwargs):
        if event["object_name"].endswith("Temperature_Setpoint"):
            ...

``event`` is the same dictionary the websocket clients receive (see ``notifier``).
"""

from django.dispatch import Signal

virtual_object_changed = Signal()
