from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from discovery import views
from discovery.views import api

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("discovery/", views.start_discovery, name="start_discovery"),
    path("devices/<int:device_id>/", views.device_detail, name="device_detail"),
    path("devices/<int:device_id>/discover-points/", views.discover_points, name="discover_points"),
    path("devices/<int:device_id>/points/<int:pk>/write/", views.write_point, name="write_point"),
    path("devices/<int:device_id>/points/<int:pk>/history/", views.point_history, name="point_history"),
    path("virtual-devices/", views.virtual_device_list, name="virtual_device_list"),
    path("virtual-devices/create/", views.create_virtual_device, name="create_virtual_device"),
    path("virtual-devices/<int:device_id>/", views.virtual_device_detail, name="virtual_device_detail"),
    path(
        "virtual-devices/<int:device_id>/delete/", views.delete_virtual_device, name="delete_virtual_device"
    ),
    path(
        "virtual-devices/<int:device_id>/objects/<int:pk>/write/",
        views.write_virtual_object,
        name="write_virtual_object",
    ),
    path("api/status/", views.service_status, name="service_status"),
    path("api/virtual-devices/", api.api_virtual_devices, name="api_virtual_devices"),
    path("api/devices/", api.api_devices, name="api_devices"),
    path(
        "api/virtual-objects/<str:object_name>/write/",
        api.api_write_virtual_object,
        name="api_write_virtual_object",
    ),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
