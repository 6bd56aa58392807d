from django.contrib import admin
from django.urls import path

from discovery import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/status/", views.service_status, name="service_status"),
]
