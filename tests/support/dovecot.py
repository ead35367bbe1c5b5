"""A throw-away, real Dovecot IMAP server for tests.

``DovecotServer`` writes a config into a fresh temp dir, listens only on 127.0.0.1 on free
ports, runs ``dovecot -F -c <conf>`` as a child process we own (in its own process group) and
tears everything down again on ``stop()``.  It works as root (mail owned by uid/gid 65534) and
rootless (every Dovecot process runs as the invoking user).

Fault-injection and inspection helpers (``deliver``, ``kick``, ``kill_imap_processes``,
``set_uidvalidity``, ``renumber``, ``flags`` ...) use ``doveadm`` and the filesystem, never an
IMAP client, so they do not disturb the state a test is looking at.
"""

from __future__ import annotations

import atexit
import contextlib
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Collection, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType

__all__ = [
    "DovecotError",
    "DovecotServer",
    "doveadm_binary",
    "dovecot_binary",
    "live_group_members",
]

HOST = "127.0.0.1"
ROOT_MAIL_UID = 65534
ROOT_MAIL_GID = 65534
_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")

# Flags that describe the IMAP session rather than the stored message.
_SESSION_FLAGS = frozenset({"\\Recent"})


# Safety net: servers still running when the interpreter exits get stopped.
_LIVE: set[DovecotServer] = set()


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


class DovecotError(RuntimeError):
    """Dovecot or doveadm failed; the message carries stderr / the server log."""


def _find(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in _SBIN_DIRS:
        candidate = Path(d) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def dovecot_binary() -> str | None:
    """Path of the ``dovecot`` master binary (PATH, then the sbin dirs), or None."""
    return _find("dovecot")


def doveadm_binary() -> str | None:
    """Path of ``doveadm`` (PATH, then the sbin dirs), or None."""
    return _find("doveadm")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ..." -- comm may contain spaces/parens, so split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1])


def live_group_members(pgid: int, exclude: int | None = None) -> list[int]:
    """PIDs in process group ``pgid`` (except ``exclude``) that are alive, i.e. not zombies."""
    pids: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == exclude:
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        state, _ppid, pgrp = stat[stat.rindex(")") + 2 :].split()[:3]
        if int(pgrp) == pgid and state not in ("Z", "X"):
            pids.append(int(entry.name))
    return pids


class DovecotServer:
    """A private Dovecot instance on 127.0.0.1.

    Use as a context manager, or call ``start()`` / ``stop()`` yourself.
    """

    host: str = HOST

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        *,
        tls: bool = False,
        idle_notify_interval: str = "2 mins",
        port: int | None = None,
        tls_port: int | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        self.users: dict[str, str] = dict(users) if users is not None else {"alice": "secret"}
        for name, password in self.users.items():
            if not name or any(c in name for c in ":/\n\t ") or "\n" in password:
                raise ValueError(f"unsupported user name/password: {name!r}")
        self.tls = tls
        self.idle_notify_interval = idle_notify_interval
        self._want_port = port
        self._want_tls_port = tls_port
        self.start_timeout = start_timeout
        self.as_root = os.geteuid() == 0
        self.port: int = 0
        self.tls_port: int | None = None
        self.cafile: str | None = None
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._seq = 0
        self._dovecot = dovecot_binary()
        self._doveadm = doveadm_binary()

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> DovecotServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """PID of our Dovecot master process."""
        return self._proc.pid if self._proc is not None else None

    @property
    def base_dir(self) -> Path:
        if self._dir is None:
            raise DovecotError("server not started")
        return self._dir

    @property
    def config_path(self) -> Path:
        return self.base_dir / "dovecot.conf"

    def start(self) -> DovecotServer:
        if self._proc is not None:
            raise DovecotError("already started")
        if self._dovecot is None or self._doveadm is None:
            raise DovecotError("dovecot-imapd not installed: apt-get install dovecot-imapd")
        attempts = 1 if self._want_port is not None else 5
        last_error: DovecotError | None = None
        for _ in range(attempts):
            self._prepare()
            try:
                self._launch()
                return self
            except DovecotError as e:  # typically a lost race for the port
                last_error = e
                self.stop()
        assert last_error is not None
        raise last_error

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM Dovecot, wait for the master, SIGKILL any leftover, remove the temp dir.

        The master runs in its own process group and SIGTERM goes to the whole group:
        signalling only the master leaves logged-in imap processes running (they are killed
        later) and costs a fixed ~1 s, because the master's shutdown ends with ``sleep(1)``
        after SIGQUITting its log process.  With the group signalled, every imap process
        sends ``* BYE Server shutting down.``; if the master is then only sleeping (no live
        process left in its group) it is SIGKILLed instead of waited for.  Returns only when
        no live process of the group remains.  Idempotent; safe on a half-started or crashed
        server.
        """
        _LIVE.discard(self)
        proc, self._proc = self._proc, None
        if proc is not None:
            pgid = proc.pid
            deadline = time.monotonic() + timeout
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGTERM)
                resend = time.monotonic() + 0.1
                while proc.poll() is None and time.monotonic() < deadline:
                    others = live_group_members(pgid, exclude=pgid)
                    if not others:
                        proc.kill()  # nothing left but the master's final sleep(1)
                        break
                    if time.monotonic() > resend:
                        # A child forked just as the group was signalled (typically a fresh
                        # imap-login) misses the SIGTERM and would hold the master for 5 s.
                        for pid in others:
                            with contextlib.suppress(ProcessLookupError, PermissionError):
                                os.kill(pid, signal.SIGTERM)
                        resend = time.monotonic() + 0.1
                    time.sleep(0.005)
                try:
                    proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            # Whatever is still in the group (e.g. processes orphaned by a crashed master)
            # is ours and must not outlive the test.
            while live_group_members(pgid) and time.monotonic() < deadline + timeout:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)
                time.sleep(0.005)
            if proc.stderr is not None:
                proc.stderr.close()
        d, self._dir = self._dir, None
        if d is not None:
            shutil.rmtree(d, ignore_errors=True)

    def _prepare(self) -> None:
        d = Path(tempfile.mkdtemp(prefix="dovecot-test-"))
        self._dir = d
        (d / "run").mkdir()
        (d / "state").mkdir()
        (d / "mail").mkdir()
        self.port = self._want_port or _free_port()
        self.tls_port = None
        self.cafile = None
        if self.tls:
            self.tls_port = self._want_tls_port or _free_port()
            while self.tls_port == self.port:
                self.tls_port = _free_port()
            self._make_cert()
        users_file = d / "users"
        users_file.write_text(
            "".join(f"{u}:{{PLAIN}}{p}\n" for u, p in self.users.items()), encoding="utf-8"
        )
        self.config_path.write_text(self._config(), encoding="utf-8")
        if self.as_root:
            # Login/auth processes drop to unprivileged users and mail runs as 65534.
            d.chmod(0o755)
            os.chown(d / "mail", ROOT_MAIL_UID, ROOT_MAIL_GID)
        (d / "dovecot.log").touch()

    def _make_cert(self) -> None:
        d = self.base_dir
        cert, key = d / "cert.pem", d / "key.pem"
        cmd = [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ]
        r = subprocess.run(cmd, capture_output=True, check=False)
        if r.returncode != 0:
            raise DovecotError(f"openssl req failed: {r.stderr.decode(errors='replace')}")
        key.chmod(0o600)
        self.cafile = str(cert)

    def _config(self) -> str:
        d = self.base_dir
        if self.as_root:
            mail_uid, mail_gid = ROOT_MAIL_UID, ROOT_MAIL_GID
            privileges = "# root: Debian's dovecot/dovenull users run the helper processes\n"
        else:
            mail_uid, mail_gid = os.getuid(), os.getgid()
            user = pwd.getpwuid(mail_uid).pw_name
            group = grp.getgrgid(mail_gid).gr_name
            privileges = (
                "# rootless: every process runs as the invoking user, no chroots\n"
                f"default_internal_user = {user}\n"
                f"default_internal_group = {group}\n"
                f"default_login_user = {user}\n"
                "service anvil {\n  chroot =\n}\n"
                "service imap-login {\n  chroot =\n}\n"
            )
        if self.tls:
            ssl = (
                "ssl = yes\n"
                f"ssl_cert = <{d / 'cert.pem'}\n"
                f"ssl_key = <{d / 'key.pem'}\n"
                # Dovecot 2.3 name; 2.4 renamed it to auth_allow_cleartext.  Keeping it "no"
                # lets tests use plain LOGIN on the 143-style port as well as STARTTLS.
                "disable_plaintext_auth = no\n"
            )
        else:
            ssl = "ssl = no\ndisable_plaintext_auth = no\n"
        mailboxes = "".join(
            f"  mailbox {name} {{\n    special_use = \\{name}\n    auto = subscribe\n  }}\n"
            for name in ("Drafts", "Sent", "Trash", "Junk")
        )
        return (
            "# generated by tests/dovecot.py -- throw-away test server\n"
            "protocols = imap\n"
            f"listen = {HOST}\n"
            f"base_dir = {d / 'run'}\n"
            f"state_dir = {d / 'state'}\n"
            f"log_path = {d / 'dovecot.log'}\n"
            f"info_log_path = {d / 'dovecot.log'}\n"
            f"debug_log_path = {d / 'dovecot.log'}\n"
            f"{ssl}"
            "auth_mechanisms = plain login\n"
            "mail_location = maildir:~/Maildir\n"
            "first_valid_uid = 0\n"
            "first_valid_gid = 0\n"
            "auth_failure_delay = 0\n"  # default 2 s per failed login; tests need no throttle
            "verbose_proctitle = yes\n"
            f"{privileges}"
            "service imap-login {\n"
            "  inet_listener imap {\n"
            f"    address = {HOST}\n"
            f"    port = {self.port}\n"
            "  }\n"
            "  inet_listener imaps {\n"
            f"    address = {HOST}\n"
            f"    port = {self.tls_port or 0}\n"
            "  }\n"
            "}\n"
            "passdb {\n"
            "  driver = passwd-file\n"
            f"  args = scheme=PLAIN username_format=%u {d / 'users'}\n"
            "}\n"
            "userdb {\n"
            "  driver = static\n"
            f"  args = uid={mail_uid} gid={mail_gid} home={d / 'mail'}/%u\n"
            "}\n"
            "namespace inbox {\n"
            "  inbox = yes\n"
            "  separator = /\n"
            f"{mailboxes}"
            "}\n"
            "protocol imap {\n"
            f"  imap_idle_notify_interval = {self.idle_notify_interval}\n"
            "}\n"
        )

    def _launch(self) -> None:
        assert self._dovecot is not None
        _LIVE.add(self)
        self._proc = subprocess.Popen(
            [self._dovecot, "-F", "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # own process group: stop() can reap every child
        )
        deadline = time.monotonic() + self.start_timeout
        ports = [self.port] + ([self.tls_port] if self.tls_port else [])
        pending = list(ports)
        while pending:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise DovecotError(
                    f"dovecot exited with {self._proc.returncode}: {err}\n{self.log()}"
                )
            if time.monotonic() > deadline:
                raise DovecotError(
                    f"dovecot did not come up in {self.start_timeout}s\n{self.log()}"
                )
            port = pending[0]
            try:
                with socket.create_connection((HOST, port), timeout=1.0) as s:
                    if port == self.port:
                        banner = s.recv(1024)
                        if not banner.startswith(b"* OK"):
                            raise DovecotError(f"unexpected banner {banner!r}")
                pending.pop(0)
            except (ConnectionRefusedError, ConnectionResetError, TimeoutError):
                time.sleep(0.005)

    # ------------------------------------------------------------------ doveadm helpers

    def doveadm(
        self, *args: str, input: bytes | None = None, ok_codes: Collection[int] = (0,)
    ) -> str:
        """Run ``doveadm -c <conf> ARGS`` and return stdout.

        Raises DovecotError (with stderr) if the exit code is not in ``ok_codes``.
        """
        if self._doveadm is None:
            raise DovecotError("doveadm not installed: apt-get install dovecot-imapd")
        r = subprocess.run(
            [self._doveadm, "-c", str(self.config_path), *args],
            input=input if input is not None else b"",
            capture_output=True,
            check=False,
        )
        if r.returncode not in ok_codes:
            raise DovecotError(
                f"doveadm {' '.join(args)} failed with {r.returncode}: "
                f"{r.stderr.decode(errors='replace').strip()}"
            )
        return r.stdout.decode("utf-8", errors="replace")

    def maildir_path(self, user: str) -> Path:
        """The user's Maildir root (the INBOX directory)."""
        return self.base_dir / "mail" / user / "Maildir"

    def folder_path(self, user: str, folder: str = "INBOX") -> Path:
        """Directory of a folder (Maildir++ layout: ``Maildir/.Sub.Folder``)."""
        root = self.maildir_path(user)
        if folder.upper() == "INBOX":
            return root
        return root / ("." + folder.replace("/", "."))

    def deliver(
        self,
        user: str,
        raw: bytes,
        folder: str = "INBOX",
        internaldate: datetime | None = None,
    ) -> None:
        """Store ``raw`` in ``folder`` without an IMAP client.

        Without ``internaldate`` this is ``doveadm save -u USER -m FOLDER`` (stdin).  With it,
        the message is delivered MDA-style instead: written to ``tmp/``, its mtime (which is
        Dovecot's maildir INTERNALDATE) set, renamed into ``new/``, then the folder is synced
        with doveadm so the UID is assigned immediately.  (Touching the file after
        ``doveadm save`` is not reliable: once any client has fetched INTERNALDATE, Dovecot
        caches the save time in dovecot.index.cache and keeps serving it.)  Naive datetimes
        are taken as local time.
        """
        if internaldate is None:
            self.doveadm("save", "-u", user, "-m", folder, input=raw)
            return
        self.doveadm("mailbox", "status", "-u", user, "messages", folder)  # autocreate
        folder_dir = self.folder_path(user, folder)
        self._seq += 1
        now = time.time()
        name = (
            f"{int(now)}.M{int(now * 1e6) % 1000000}P{os.getpid()}Q{self._seq}"
            f".{socket.gethostname().replace('/', '_').replace(':', '_')},S={len(raw)}"
        )
        tmp, final = folder_dir / "tmp" / name, folder_dir / "new" / name
        tmp.parent.mkdir(exist_ok=True)
        tmp.write_bytes(raw)
        ts = internaldate.timestamp()
        os.utime(tmp, (ts, ts))
        if self.as_root:
            os.chown(tmp, ROOT_MAIL_UID, ROOT_MAIL_GID)
        tmp.rename(final)
        self.doveadm("mailbox", "status", "-u", user, "messages", folder)  # sync -> UID

    def kick(self, user: str) -> None:
        """Disconnect all of ``user``'s sessions with ``* BYE`` (``doveadm kick``).

        No sessions is not an error (doveadm itself exits 68 then).
        """
        self.doveadm("kick", user, ok_codes=(0, 68))

    def imap_pids(self, user: str) -> list[int]:
        """PIDs of ``user``'s imap processes that are children of our master."""
        out = self.doveadm("who", "-1", user)
        pids: list[int] = []
        for line in out.splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 3 and fields[0] == user and fields[1] == "imap":
                with contextlib.suppress(ValueError):
                    pid = int(fields[2])
                    if self.pid is not None and _ppid(pid) == self.pid:
                        pids.append(pid)
        return pids

    def kill_imap_processes(self, user: str) -> list[int]:
        """SIGKILL ``user``'s imap processes (our master's children only): a silent EOF."""
        pids = self.imap_pids(user)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pids

    def set_uidvalidity(self, user: str, folder: str, value: int) -> None:
        """Change a folder's UIDVALIDITY in place (sessions with it selected get a BYE)."""
        self.doveadm("mailbox", "update", "-u", user, "--uid-validity", str(value), folder)

    def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        out = self.doveadm("-f", "flow", "mailbox", "status", "-u", user, "uidvalidity", folder)
        return int(out.strip().split("=", 1)[1])

    def renumber(self, user: str, folder: str = "INBOX", *, kick: bool = True) -> None:
        """Forget all UIDs: delete dovecot-uidlist and dovecot.index*, then force a resync.

        Messages (and their flags, which maildir keeps in file names) stay; UIDs restart at
        1 under a new UIDVALIDITY.  By default the user's sessions are kicked first (and
        awaited): a running imap process keeps the old index in memory (Dovecot caches
        closed indexes for a while) and afterwards answers SELECT with ``[SERVERBUG]``
        ("indexid changed" / "duplicate transaction log sequence") until it reconnects.
        """
        if kick and self.imap_pids(user):
            self.kick(user)
            self._wait_no_sessions(user)
        folder_dir = self.folder_path(user, folder)
        old = self.uidvalidity(user, folder)
        for p in folder_dir.iterdir():
            if p.name == "dovecot-uidlist" or p.name.startswith("dovecot.index"):
                p.unlink()
        self.doveadm("force-resync", "-u", user, folder)
        new = self.uidvalidity(user, folder)
        if new == old:
            raise DovecotError(f"renumber: UIDVALIDITY of {folder} did not change ({old})")

    def _wait_no_sessions(self, user: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self.imap_pids(user):
            if time.monotonic() > deadline:
                raise DovecotError(f"{user}'s imap processes did not exit")
            time.sleep(0.01)

    def flags(self, user: str, folder: str = "INBOX") -> dict[str, frozenset[str]]:
        """Stored flags per message, keyed by Message-ID.

        A message without Message-ID is keyed ``uid:<n>``; a repeated Message-ID gets
        ``#uid:<n>`` appended.  Read with ``doveadm fetch`` (no IMAP session involved); the
        session flag ``\\Recent`` is left out.
        """
        out = self.doveadm(
            "-f", "tab", "fetch", "-u", user, "uid hdr.message-id flags", "mailbox", folder, "all"
        )
        result: dict[str, frozenset[str]] = {}
        for line in out.splitlines()[1:]:
            if not line.strip():
                continue
            uid, msgid, flags = [*line.split("\t"), "", ""][:3]
            key = msgid.strip() or f"uid:{uid}"
            if key in result:
                key = f"{key}#uid:{uid}"
            result[key] = frozenset(flags.split()) - _SESSION_FLAGS
        return result

    def uids(self, user: str, folder: str = "INBOX") -> list[int]:
        out = self.doveadm("-f", "tab", "fetch", "-u", user, "uid", "mailbox", folder, "all")
        return [int(x) for x in out.splitlines()[1:] if x.strip()]

    def log(self) -> str:
        """The Dovecot log so far (empty if not started)."""
        if self._dir is None:
            return ""
        try:
            return (self._dir / "dovecot.log").read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def __repr__(self) -> str:
        return (
            f"DovecotServer(port={self.port}, tls_port={self.tls_port}, "
            f"pid={self.pid}, dir={self._dir})"
        )
