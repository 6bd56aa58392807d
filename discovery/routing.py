from django.urls import path

from discovery.consumers import VirtualDeviceConsumer

websocket_urlpatterns = [
    path("ws/virtual-devices/", VirtualDeviceConsumer.as_asgi()),
]
