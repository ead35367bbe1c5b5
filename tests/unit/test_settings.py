"""Settings: packaged defaults, then the user's file, then ONWARD_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from onward.config.settings import load_settings
from onward.tasks.errors import ConfigError


def test_defaults(tmp_path: Path) -> None:
    s = load_settings(environ={"ONWARD_HOME": str(tmp_path)})
    assert s.home == tmp_path
    assert s.database_url == f"sqlite:///{tmp_path / 'onward.db'}"
    assert s.sync.max_text_bytes == 65536
    assert s.config_file is None


def test_user_file_then_environment(tmp_path: Path) -> None:
    (tmp_path / "onward.toml").write_text("[sync]\nbatch_size = 7\npoll_interval_seconds = 5\n")
    env = {"ONWARD_HOME": str(tmp_path), "ONWARD_SYNC_BATCH_SIZE": "9"}
    s = load_settings(environ=env)
    assert s.sync.batch_size == 9
    assert s.sync.poll_interval_seconds == 5
    assert s.config_file == tmp_path / "onward.toml"


def test_list_from_environment(tmp_path: Path) -> None:
    env = {"ONWARD_HOME": str(tmp_path), "ONWARD_USER_ADDRESSES": "a@x.example, b@y.example"}
    assert load_settings(environ=env).user.addresses == ("a@x.example", "b@y.example")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[sync]\nbatch_size = 'many'\n", "batch_size = 'many': Input should be a valid integer"),
        (
            "[reactions]\ncooldown_days = 9\n",
            "cooldown_days = 9: Input should be less than or equal to 7",
        ),
        ("[user]\ntimezone = 'Mars/Olympus'\n", "not an IANA time zone"),
        ("[calendar]\nevaluation_day = 'someday'\n", "evaluation_day = 'someday'"),
        ("[nope]\nx = 1\n", "unknown section"),
        ("[sync]\nbatchsize = 1\n", "unknown setting 'batchsize'"),
        ("[sync\n", "not valid TOML"),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings(path, environ={"ONWARD_HOME": str(tmp_path)})


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "absent.toml", environ={"ONWARD_HOME": str(tmp_path)})


def test_calendar_times_and_zone_from_environment(tmp_path: Path) -> None:
    env = {
        "ONWARD_HOME": str(tmp_path),
        "ONWARD_USER_TIMEZONE": "Europe/Berlin",
        "ONWARD_CALENDAR_EVALUATION_TIME": "17:30",
        "ONWARD_CALENDAR_EVALUATION_DAY": "Friday",
    }
    s = load_settings(environ=env)
    assert s.tz.key == "Europe/Berlin"
    assert (s.calendar.evaluation_time.hour, s.calendar.evaluation_time.minute) == (17, 30)
    assert s.calendar.evaluation_day == "friday"


def test_error_names_the_environment(tmp_path: Path) -> None:
    env = {"ONWARD_HOME": str(tmp_path), "ONWARD_SYNC_BATCH_SIZE": "0"}
    with pytest.raises(ConfigError, match=r"^environment \[sync\] batch_size = '0'"):
        load_settings(environ=env)
