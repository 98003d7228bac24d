from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self) -> None:
        # Django's idiom: the checks register themselves once the apps are loaded.
        from accounts import checks  # noqa: F401  (registers the system checks)
