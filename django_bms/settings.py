"""Django settings for Django BMS. Every value can be overridden by an environment variable."""

from __future__ import annotations

from pathlib import Path

import dj_database_url

from django_bms.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    # A random key per process is safe but logs everyone out on restart: set SECRET_KEY in production.
    from django.core.management.utils import get_random_secret_key

    SECRET_KEY = get_random_secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "discovery",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "django_bms.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = None
ASGI_APPLICATION = "django_bms.asgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=0,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web pages read while the BACnet service writes; the timeout rides out
    # short lock waits between the service and a management command.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )

REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

# --- BACnet -------------------------------------------------------------------------------
# Address/prefix the stack binds, e.g. "192.168.1.20/24"; empty = the host's primary interface.
BACNET_ADDRESS = env_str("BACNET_ADDRESS", "")
BACNET_DEFAULT_PORT = env_int("BACNET_DEFAULT_PORT", 47808, minimum=1, maximum=65535)
BACNET_DEVICE_ID = env_int("BACNET_DEVICE_ID", 8888, minimum=0, maximum=4194302)
BACNET_DEVICE_NAME = env_str("BACNET_DEVICE_NAME", "Django_BMS")
BACNET_VENDOR_ID = env_int("BACNET_VENDOR_ID", 999, minimum=0, maximum=65535)
BACNET_VENDOR_NAME = env_str("BACNET_VENDOR_NAME", "Django BMS Project")
# The port legacy virtual devices ran on before the unified service.
BACNET_LEGACY_VIRTUAL_PORT = 47809
# How often (seconds) a running service looks for virtual devices changed by other processes.
BACNET_DB_WATCH_INTERVAL = float(env_str("BACNET_DB_WATCH_INTERVAL", "0.5"))
USE_UNIFIED_BACNET_SERVICE = env_bool("USE_UNIFIED_BACNET_SERVICE", True)
# Client side: how the stack talks to other devices.
BACNET_APDU_TIMEOUT_MS = env_int("BACNET_APDU_TIMEOUT_MS", 2000, minimum=100, maximum=60000)
BACNET_APDU_RETRIES = env_int("BACNET_APDU_RETRIES", 1, minimum=0, maximum=10)
BACNET_MAX_IN_FLIGHT = env_int("BACNET_MAX_IN_FLIGHT", 4, minimum=1, maximum=64)
BACNET_POINT_READ_DEVICES = env_int("BACNET_POINT_READ_DEVICES", 4, minimum=1, maximum=64)
# UDP receive buffer of the stack's socket: answers to many requests in flight arrive at once.
BACNET_RECEIVE_BUFFER_BYTES = env_int(
    "BACNET_RECEIVE_BUFFER_BYTES", 4 * 1024 * 1024, minimum=65536, maximum=256 * 1024 * 1024
)
BACNET_DISCOVERY_TIMEOUT = float(env_str("BACNET_DISCOVERY_TIMEOUT", "3"))
BACNET_DISCOVERY_CACHE_SECONDS = float(env_str("BACNET_DISCOVERY_CACHE_SECONDS", "300"))
BACNET_DEFAULT_WRITE_PRIORITY = env_int("BACNET_DEFAULT_WRITE_PRIORITY", 16, minimum=1, maximum=16)
# Poll intervals (seconds) of the point classes, and the COV subscription lifetime.
BACNET_POLL_FAST = float(env_str("BACNET_POLL_FAST", "5"))
BACNET_POLL_NORMAL = float(env_str("BACNET_POLL_NORMAL", "30"))
BACNET_POLL_SLOW = float(env_str("BACNET_POLL_SLOW", "300"))
BACNET_POLLING = env_bool("BACNET_POLLING", True)
BACNET_COV_LIFETIME = env_int("BACNET_COV_LIFETIME", 300, minimum=10, maximum=86400)
# Control socket through which management commands ask a running service to do the work.
# empty = run/bacnet-<address>-<port>.sock in the project directory
BACNET_CONTROL_SOCKET = env_str("BACNET_CONTROL_SOCKET", "")

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "discovery": {"level": LOG_LEVEL},
        "django_bms": {"level": LOG_LEVEL},
        # bacpypes3 logs every unanswered/odd packet at WARNING; keep them visible but not noisy.
        "bacpypes3": {"level": env_str("BACPYPES_LOG_LEVEL", "ERROR").upper()},
    },
}
