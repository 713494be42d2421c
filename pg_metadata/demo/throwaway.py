"""A throwaway PostgreSQL cluster on a loopback port: for the demo command and the test suite.

Needs the PostgreSQL server binaries (Debian package `postgresql`). PostgreSQL refuses to run
as root, so as root the cluster runs as the `postgres` OS user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from pg_metadata.errors import PgMetadataError

OS_USER = "postgres"
DEFAULT_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "lc_messages": "C",
}


def find_bindir() -> Path:
    """The newest PostgreSQL server binaries on this machine."""
    candidates: list[Path] = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    versions.sort(key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0)
    candidates += [Path(p) for p in reversed(versions)]
    for cand in candidates:
        if (cand / "initdb").exists() and (cand / "pg_ctl").exists():
            return cand
    raise PgMetadataError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found; install the Debian package "
        "`postgresql` (apt-get install postgresql)"
    )


class ThrowawayServer:
    """initdb into a temp dir, start on a free loopback port, stop and delete on exit."""

    def __init__(
        self,
        admin_user: str = "pgm_admin",
        admin_password: str = "admin-secret",
        settings: dict[str, str] | None = None,
        hba_lines: list[str] | None = None,
    ) -> None:
        self.admin_user, self.admin_password = admin_user, admin_password
        self.hba_lines = list(hba_lines or [])
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self.host = "127.0.0.1"
        self.port = 0
        self.workdir: Path | None = None
        self.bindir: Path | None = None

    @property
    def log_path(self) -> Path:
        """The server log file."""
        assert self.workdir is not None
        return self.workdir / "server.log"

    def __enter__(self) -> ThrowawayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ThrowawayServer:
        """Create and start the cluster."""
        self.bindir = find_bindir()
        self._as_root = os.geteuid() == 0
        if self._as_root:
            _ensure_os_user()
        self._make_workdir("pg_metadata_cluster_")
        try:
            self._initdb()
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def standby(self) -> ThrowawayServer:
        """A hot standby of this running server (pg_basebackup -R, streaming replication) on
        its own port: a read replica, as extractors are often pointed at."""
        assert self.workdir is not None
        replica = ThrowawayServer(self.admin_user, self.admin_password)
        replica.bindir, replica._as_root = self.bindir, self._as_root
        replica._make_workdir("pg_metadata_standby_")
        try:
            replica._run(
                "pg_basebackup",
                "-D",
                replica.workdir / "data",
                "-R",
                "-X",
                "stream",
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                self.admin_user,
                "--no-sync",
                "--checkpoint=fast",  # the default spread checkpoint waits minutes
                env={"PGPASSWORD": self.admin_password},
            )
            with (replica.workdir / "data" / "postgresql.conf").open("a") as conf:
                conf.write(f"unix_socket_directories = '{replica.workdir}'\n")
            replica._start()
        except BaseException:
            replica.stop()
            raise
        return replica

    def restart(self, mode: str = "immediate") -> None:
        """Restart the server on the same port; "immediate" is a crash: every session dies at
        once, mid-statement, and the server recovers on start."""
        assert self.workdir is not None
        self._run(
            "pg_ctl",
            "-D",
            self.workdir / "data",
            "-l",
            self.log_path,
            "-m",
            mode,
            "-w",
            "-t",
            "60",
            "restart",
        )

    def _make_workdir(self, prefix: str) -> None:
        """A temp dir the server's OS user owns (data dir, socket, log)."""
        self.workdir = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
        self.workdir.chmod(0o755)
        if self._as_root:
            shutil.chown(self.workdir, user=OS_USER)

    def stop(self) -> None:
        """Stop the server and delete its files."""
        if self.workdir is None:
            return
        if (self.workdir / "data" / "postmaster.pid").exists():
            self._run(
                "pg_ctl", "-D", self.workdir / "data", "-m", "fast", "-w", "stop", check=False
            )
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir = None

    def _initdb(self) -> None:
        assert self.workdir is not None
        pwfile = self.workdir / "pwfile"
        pwfile.write_text(self.admin_password + "\n")
        if self._as_root:
            shutil.chown(pwfile, user=OS_USER)
        locale = ["--locale=C.UTF-8"] if _c_utf8_available() else ["--no-locale"]
        self._run(
            "initdb",
            "-D",
            self.workdir / "data",
            "-U",
            self.admin_user,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "-E",
            "UTF8",
            *locale,
            "--no-sync",
        )
        pwfile.unlink()
        settings = {**self.settings, "unix_socket_directories": str(self.workdir)}
        with (self.workdir / "data" / "postgresql.conf").open("a") as conf:
            conf.write("\n# pg_metadata throwaway cluster\n")
            conf.writelines(f"{k} = '{v}'\n" for k, v in settings.items())
        if self.hba_lines:  # first match wins, so extra lines go first
            hba = self.workdir / "data" / "pg_hba.conf"
            hba.write_text("\n".join(self.hba_lines) + "\n" + hba.read_text())

    def _start(self) -> None:
        assert self.workdir is not None
        for _attempt in range(3):  # the free port may be taken between probe and bind
            self.port = _free_port()
            proc = self._run(
                "pg_ctl",
                "-D",
                self.workdir / "data",
                "-l",
                self.log_path,
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {self.port}",
                "start",
                check=False,
            )
            if proc.returncode == 0:
                return
        log = self.log_path.read_text() if self.log_path.exists() else proc.stderr
        raise PgMetadataError(f"could not start a throwaway PostgreSQL server: {log[-500:]}")

    def _run(
        self,
        tool: str,
        *args: str | Path,
        check: bool = True,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess:
        assert self.bindir is not None and self.workdir is not None
        cmd = [str(self.bindir / tool), *map(str, args)]
        if self._as_root:
            cmd = ["runuser", "-u", OS_USER, "--", *cmd]
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("PG")}, **(env or {})}
        env["LC_MESSAGES"] = "C"
        proc = subprocess.run(cmd, cwd=self.workdir, env=env, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise PgMetadataError(f"{tool} failed: {' '.join(proc.stderr.split())[-500:]}")
        return proc


def _ensure_os_user() -> None:
    try:
        pwd.getpwnam(OS_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", OS_USER], check=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _c_utf8_available() -> bool:
    out = subprocess.run(["locale", "-a"], capture_output=True, text=True, check=False)
    return any(loc.lower() in ("c.utf8", "c.utf-8") for loc in out.stdout.split())
