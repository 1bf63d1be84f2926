"""The daemons' settings loader: defaults < TOML file < environment < overrides, and clear errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from secl.settings import ConfigError, load_settings


@dataclass(frozen=True)
class Example:
    name: str = "default"
    state_dir: Path = Path("/var/lib/example")
    workers: int = 2
    strict: bool = False


def load(tmp_path: Path, toml: str | None = None, environ: dict[str, str] | None = None, **overrides):
    path = tmp_path / "example.toml"
    if toml is not None:
        path.write_text(toml)
    return load_settings(
        Example(), default_path=path, env_prefix="EX_", environ=environ or {}, overrides=overrides or None
    )


def test_precedence(tmp_path: Path):
    assert load(tmp_path) == Example()
    from_file = load(tmp_path, 'name = "file"\nworkers = 4\nstate_dir = "/srv"\n')
    assert from_file == Example("file", Path("/srv"), 4)
    assert load(tmp_path, "strict = true\n").strict is True
    from_env = load(tmp_path, 'name = "file"\n', {"EX_NAME": "env", "EX_WORKERS": "8"})
    assert from_env == Example("env", Path("/var/lib/example"), 8)
    assert load(tmp_path, 'name = "file"\n', {"EX_NAME": "env"}, name="override").name == "override"


@pytest.mark.parametrize(
    ("toml", "environ", "message"),
    [
        ('nmae = "typo"\n', {}, "unknown setting(s) nmae"),
        ("workers = 0\n", {}, "workers must be positive"),
        ('workers = "many"\n', {}, "workers must be an integer"),
        ("name = 3\n", {}, "name must be a string"),
        ("name = \n", {}, "not valid TOML"),
        (None, {"EX_NMAE": "x"}, "environment: unknown setting(s) nmae"),
        ('strict = "maybe"\n', {}, "strict must be true or false"),
        ("strict = 1\n", {}, "strict must be true or false"),
        (None, {"EX_STRICT": "sure"}, "strict must be true or false"),
    ],
)
def test_errors_name_the_key_and_the_source(
    tmp_path: Path, toml: str | None, environ: dict[str, str], message: str
):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load(tmp_path, toml, environ)


@pytest.mark.parametrize(("word", "expected"), [("true", True), ("Yes", True), ("on", True), ("1", True),
                                               ("false", False), ("NO", False), ("off", False), ("0", False)])  # fmt: skip
def test_booleans_from_the_environment(tmp_path: Path, word: str, expected: bool):
    # A string "false" must not become True: bool("false") would.
    assert load(tmp_path, "strict = true\n", {"EX_STRICT": word}).strict is expected


def test_a_named_file_must_exist(tmp_path: Path):
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_settings(Example(), default_path=tmp_path / "absent.toml", env_prefix="EX_",
                      environ={"EX_CONFIG": str(tmp_path / "named.toml")})  # fmt: skip
