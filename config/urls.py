from django.contrib import admin
from django.urls import path

admin.site.site_header = "TODO lists: debug"
admin.site.site_title = "TODO lists"

urlpatterns = [
    path("admin/", admin.site.urls),
]
