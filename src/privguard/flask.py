"""Flask extension: ``PrivGuard(app)`` or ``PrivGuard()`` + ``init_app(app)``.

Use::

    from privguard.flask import PrivGuard

    guard = PrivGuard()               # keywords given here are kept for init_app
    def create_app():
        app = Flask(__name__)
        app.config.from_prefixed_env()  # env FLASK_PRIVGUARD_GEOIP_DB -> PRIVGUARD_GEOIP_DB
        guard.init_app(app)
        return app

What ``init_app`` does -- the whole integration surface:

* reads every option of :class:`~privguard.Settings` from the ``PRIVGUARD_<NAME>``
  keys of ``app.config``. Values may be native (``PRIVGUARD_TRUSTED_PROXIES = 1``)
  or strings as in the environment (lists comma-separated, mappings JSON, booleans
  ``true/false/1/0``, ``none``/empty for ``None``); ``secret_key`` falls back to
  Flask's ``SECRET_KEY``;
* **precedence**: keywords given to ``PrivGuard(...)`` or ``init_app(...)`` win over
  ``PRIVGUARD_*`` config keys, which win over ``SECRET_KEY`` and the defaults. An
  explicit keyword in code is the most specific statement a developer can make;
  config is for what changes per deployment, so leave those options out of the code;
* ``PRIVGUARD_ENABLED = False`` leaves the app untouched (no middleware, no template
  global, no CLI);
* wraps ``app.wsgi_app`` in :class:`privguard.wsgi.PrivacyMiddleware` and keeps the
  per-app state in ``app.extensions["privguard"]`` (never on the extension object,
  so one ``PrivGuard`` serves any number of apps);
* adds the template global ``privguard``: the current request's
  :class:`~privguard.PrivacyContext` (``{% if privguard.allows('marketing') %}``),
  ``None`` outside a request; and ``{{ privguard_banner() }}``, which places the
  banner where the template wants it (the middleware then injects no second one);
* adds the ``flask privguard ...`` command, which runs the ``privguard`` CLI with the
  app's ledger URL as the default ``--ledger``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from privguard.context import CONTEXT_KEY, PrivacyContext
from privguard.errors import ConfigError
from privguard.runtime import Runtime
from privguard.settings import OPTIONS, Settings, check_prefixed_names, parse_option_text
from privguard.wsgi import PrivacyMiddleware

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["PrivGuard", "PrivGuardState", "get_context", "CONFIG_PREFIX", "EXTENSION_KEY"]

#: Prefix of privguard's keys in ``app.config``.
CONFIG_PREFIX = "PRIVGUARD_"
#: Key of the per-app state in ``app.extensions``.
EXTENSION_KEY = "privguard"

F = TypeVar("F", bound=Callable[..., Any])

# kinds whose string values are parsed like environment variables
_PARSED_KINDS = frozenset({"bool", "int", "duration", "list", "mapping", "proxies"})


@dataclass(frozen=True, slots=True)
class PrivGuardState:
    """What ``init_app`` stored for one app in ``app.extensions["privguard"]``."""

    settings: Settings
    middleware: PrivacyMiddleware

    @property
    def runtime(self) -> Runtime:
        """The middleware's runtime (caches, ledger writer, banner renderer)."""
        return self.middleware.runtime


class PrivGuard:
    """privguard for Flask apps.

    :param app: the app to protect now; leave it out and call :meth:`init_app` later
        (application factories). Keywords given here are kept for every ``init_app``.
    :param settings: a ready :class:`~privguard.Settings`; config keys and keywords
        are applied over it.
    :param options: any option of :class:`~privguard.Settings`. They win over the
        ``PRIVGUARD_*`` config keys.
    """

    def __init__(
        self, app: Flask | None = None, settings: Settings | None = None, **options: Any
    ) -> None:
        self._settings = settings
        self._options = dict(options)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, **options: Any) -> None:
        """Protect ``app``; ``options`` win over the constructor's and the config's."""
        config = app.config
        if not _enabled(config.get(CONFIG_PREFIX + "ENABLED", True)):
            return
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError("privguard is already installed on this app")
        settings = self.settings_for(config, **options)
        middleware = PrivacyMiddleware(app.wsgi_app, settings)
        app.wsgi_app = middleware  # type: ignore[method-assign]
        app.extensions[EXTENSION_KEY] = PrivGuardState(settings, middleware)
        app.context_processor(_template_context)
        app.cli.add_command(_make_cli())

    def settings_for(self, config: Mapping[str, Any], **options: Any) -> Settings:
        """The Settings ``init_app`` would build from ``config`` (validated, or ConfigError)."""
        values = config_options(config)
        if "secret_key" not in values and config.get("SECRET_KEY"):
            values["secret_key"] = config["SECRET_KEY"]
        values.update(self._options)
        values.update(options)
        if self._settings is not None:
            return self._settings.replace(**values) if values else self._settings
        return Settings(**values)

    def exempt(self, view: F) -> F:
        """Decorator: no banner injection on this view's responses (cookies still filtered)."""

        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from flask import request

            request.environ["privguard.skip"] = True
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


def config_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """Options found as ``PRIVGUARD_<NAME>`` keys, strings parsed as in the environment."""
    check_prefixed_names(config, CONFIG_PREFIX, "Flask config key")
    values: dict[str, Any] = {}
    for option in OPTIONS:
        key = CONFIG_PREFIX + option.name.upper()
        if key not in config:
            continue
        value = config[key]
        if isinstance(value, str) and option.name != "secret_key":
            if option.env_kind in _PARSED_KINDS or value.strip().lower() in ("", "none"):
                value = parse_option_text(option, value)
        values[option.name] = value
    return values


def _enabled(value: Any) -> bool:
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError("enabled", f"PRIVGUARD_ENABLED={value!r} is not a boolean")
    return bool(value)


def get_context() -> PrivacyContext | None:
    """The current Flask request's :class:`~privguard.PrivacyContext` (``None`` outside)."""
    from flask import has_request_context, request

    if not has_request_context():
        return None
    ctx = request.environ.get(CONTEXT_KEY)
    return ctx if isinstance(ctx, PrivacyContext) else None


def privguard_banner(lang: str | None = None) -> str:
    """Template function: the banner here, and no injected copy before ``</body>``."""
    from flask import request

    ctx = get_context()
    if ctx is None:
        return ""
    request.environ["privguard.skip"] = True
    return ctx.banner(lang)


def _template_context() -> dict[str, Any]:
    return {"privguard": get_context(), "privguard_banner": privguard_banner}


def _make_cli() -> Any:
    import click
    from flask import current_app
    from flask.cli import with_appcontext

    @click.command(
        "privguard",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
    )
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    @with_appcontext
    def privguard_command(args: tuple[str, ...]) -> None:
        """Run the privguard CLI (audit, cookies, ledger, geoip) for this app."""
        from privguard.cli import main

        state = current_app.extensions.get(EXTENSION_KEY)
        argv = list(args)
        ledger = state.settings.ledger if isinstance(state, PrivGuardState) else None
        if (
            ledger is not None
            and len(argv) >= 2
            and argv[0] == "ledger"
            and not argv[1].startswith("-")
            and not any(a == "--ledger" or a.startswith("--ledger=") for a in argv)
        ):
            argv[2:2] = ["--ledger", ledger]
        # the app's keys check the app's ledger (not one it does not write to)
        keys = state.settings.ledger_keys if ledger is not None and state is not None else ()
        raise SystemExit(main(argv, ledger_keys=keys))

    return privguard_command
