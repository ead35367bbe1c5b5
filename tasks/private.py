"""onward's files are the person's alone: ONWARD_HOME and everything under it is 0700
(folders) / 0600 (files), whoever created the folder and with whatever mode."""

from __future__ import annotations

import os
from pathlib import Path


def secure_home(home: Path) -> None:
    """Create ``home`` private, or make an existing one private again, with what is in it.

    The folder's 0700 is what keeps others out of anything created in it later; the
    process umask is left alone (it is the whole process's, tests and servers included).
    """
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    _private(home, is_dir=True)
    for root, dirs, files in os.walk(home):
        for name in dirs:
            _private(Path(root) / name, is_dir=True)
        for name in files:
            _private(Path(root) / name, is_dir=False)


def _private(path: Path, *, is_dir: bool) -> None:
    try:
        st = path.lstat()
        if path.is_symlink() or st.st_uid != os.getuid():
            return  # not ours to change (a link to shared data, another user's file)
        wanted = 0o700 if is_dir else (st.st_mode & 0o700) or 0o600
        if st.st_mode & 0o777 != wanted:
            os.chmod(path, wanted)
    except FileNotFoundError:
        pass  # removed meanwhile (a SQLite journal)
