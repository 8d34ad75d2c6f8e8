"""pytest plugin (entry point ``pytest11``): visitor fixtures and the visitor marker.

Installing privguard enables it. It provides:

* ``privguard_visitor`` -- a factory fixture: ``privguard_visitor(country="DE", gpc=True)``
  returns a :class:`~privguard.testing.Visitor` (headers, cookies, environ).
* ``@pytest.mark.privguard_visitor(...)`` -- same arguments; each marker adds one
  visitor, given to the test as the ``visitor`` fixture (several markers
  parametrise the test, one id per visitor: ``test_home[DE-gpc]``).
* ``privguard_settings`` -- the app's :class:`~privguard.Settings`, used to sign
  consent cookies and name the country header. Override it in ``conftest.py``,
  or set the ini option ``privguard_settings = "package.module:SETTINGS"``.

Marker arguments are checked by binding them to the factory's real signature,
so a typo fails collection with Python's own message. Nothing of privguard is
imported until a test uses the plugin.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from privguard.settings import Settings
    from privguard.testing.visitors import Visitor

MARKER = "privguard_visitor"
_MARKER_HELP = (
    "privguard_visitor(country='DE', state=None, gpc=False, dnt=False, language='en', "
    "age_status=None, consent=None, policy_version=None, bot=False, https=False): "
    "run the test as this visitor (the `visitor` fixture); several markers parametrise it."
)
_SETTINGS_INI = "privguard_settings"


class _PluginState:
    """Per-session state: the settings named by the ini option, loaded once."""

    def __init__(self, spec: str | None) -> None:
        self.spec = spec
        self.settings: Settings | None = None


_STATE = pytest.StashKey[_PluginState]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        _SETTINGS_INI,
        "module:attribute of the privguard Settings (or a callable returning them) that "
        "test visitors are built for; a `privguard_settings` fixture overrides it",
        default=None,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _MARKER_HELP)
    config.stash[_STATE] = _PluginState(config.getini(_SETTINGS_INI) or None)


def _marker_kwargs(mark: pytest.Mark) -> dict[str, Any]:
    """Validate the marker's arguments against the factory's signature."""
    from privguard.testing.visitors import visitor_signature

    try:
        bound = visitor_signature().bind(*mark.args, **mark.kwargs)
    except TypeError as exc:
        raise TypeError(f"@pytest.mark.{MARKER}: {exc}") from None
    return dict(bound.arguments)


def _closest_marks(metafunc: pytest.Metafunc) -> list[pytest.Mark]:
    """The markers of the closest node that has any (function over class over module)."""
    closest = None
    marks: list[pytest.Mark] = []
    for node, mark in metafunc.definition.iter_markers_with_node(MARKER):
        if closest is None:
            closest = node
        if node is not closest:
            break
        marks.append(mark)
    if isinstance(closest, pytest.Module):
        return marks  # a `pytestmark = [...]` list is already in source order
    return marks[::-1]  # decorators apply bottom-up: back to source order


def _param_id(kwargs: dict[str, Any]) -> str:
    """The test id of a visitor (as :attr:`Visitor.id`, computed without settings)."""
    from privguard.testing.visitors import visitor_id

    return visitor_id(**kwargs)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marks = _closest_marks(metafunc)
    if not marks:
        return
    params = [_marker_kwargs(mark) for mark in marks]
    if "visitor" not in metafunc.fixturenames:
        return
    metafunc.parametrize("visitor", params, ids=[_param_id(p) for p in params], indirect=True)


def _load_settings(config: pytest.Config) -> Settings:
    from privguard.errors import ConfigError
    from privguard.settings import Settings

    state = config.stash[_STATE]
    if state.settings is not None:
        return state.settings
    if not state.spec:
        raise ConfigError(
            "settings",
            "privguard test visitors need the app's Settings. Define a fixture in conftest.py:\n"
            "    @pytest.fixture\n"
            "    def privguard_settings():\n"
            "        return privguard.Settings(secret_key=..., country_header='CF-IPCountry',\n"
            "                                  trusted_proxies=['127.0.0.1'])\n"
            f"or set the ini option {_SETTINGS_INI} = 'package.module:SETTINGS'",
        )
    import importlib

    module_name, _, attr = state.spec.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in (attr or "").split("."):
        if part:
            obj = getattr(obj, part)
    if callable(obj) and not isinstance(obj, Settings):
        obj = obj()
    if not isinstance(obj, Settings):
        raise ConfigError("settings", f"ini {_SETTINGS_INI}={state.spec!r} is not a Settings")
    state.settings = obj
    return obj


@pytest.fixture
def privguard_settings(pytestconfig: pytest.Config) -> Settings:
    """The app's privguard Settings. Override this fixture in your conftest.py."""
    return _load_settings(pytestconfig)


@pytest.fixture
def privguard_visitor(request: pytest.FixtureRequest) -> Callable[..., Visitor]:
    """Factory: ``privguard_visitor(country="DE", gpc=True, consent="all", ...)`` → Visitor.

    Uses the ``privguard_settings`` fixture unless ``settings=`` is passed.
    """
    from privguard.testing.visitors import make_visitor

    def factory(*args: Any, **kwargs: Any) -> Visitor:
        if kwargs.get("settings") is None:
            kwargs["settings"] = request.getfixturevalue("privguard_settings")
        return make_visitor(*args, **kwargs)

    return factory


@pytest.fixture
def visitor(request: pytest.FixtureRequest) -> Visitor:
    """The visitor of the test's ``@pytest.mark.privguard_visitor(...)`` marker."""
    params = getattr(request, "param", None)
    if params is None:
        pytest.fail(
            f"the `visitor` fixture comes from @pytest.mark.{MARKER}(country=..., ...); "
            f"add the marker to {request.node.nodeid}, or call the `privguard_visitor` "
            "factory fixture instead",
            pytrace=False,
        )
    factory = request.getfixturevalue("privguard_visitor")
    return factory(**params)  # type: ignore[no-any-return]
