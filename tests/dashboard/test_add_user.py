"""`shadowlab dashboard add-user FILE NAME --role R`: a bcrypt hash into the dashboard's users file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dashboard.auth import User, authenticate, load_users


def add_user(users: Path, *args: str, password: str = "correct horse") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "dashboard", "add-user", str(users), *args],
        input=f"{password}\n", capture_output=True, text=True, cwd=users.parent, timeout=60, check=False,
    )  # fmt: skip


def test_add_user_creates_the_file_and_the_dashboard_signs_them_in(tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    first = add_user(users, "erin", "--role", "decider", password="erin's pass")
    second = add_user(users, "pat", password="pat's pass")
    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert first.stdout.strip() == f"added erin (decider) in {users}"
    accounts = load_users(users)
    assert authenticate(accounts, "erin", "erin's pass") == User("erin", "decider")
    assert authenticate(accounts, "pat", "pat's pass") == User("pat", "viewer")
    text = users.read_text(encoding="utf-8")
    assert "erin's pass" not in text and "pat's pass" not in text and text.count("$2b$") == 2
    assert not list(tmp_path.glob(".*.partial"))


def test_an_existing_user_is_replaced_only_when_asked(tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    assert add_user(users, "erin", password="old pass").returncode == 0
    users.chmod(0o640)
    again = add_user(users, "erin", "--role", "decider", password="new pass")
    assert again.returncode == 2
    assert again.stderr.strip() == (
        f"error: {users}: user 'erin' exists: pass --replace to change their password or role"
    )
    assert authenticate(load_users(users), "erin", "old pass") == User("erin", "viewer")
    replaced = add_user(users, "erin", "--role", "decider", "--replace", password="new pass")
    assert replaced.returncode == 0, replaced.stderr
    assert replaced.stdout.strip().startswith("updated erin (decider)")
    accounts = load_users(users)
    assert list(accounts) == ["erin"]
    assert authenticate(accounts, "erin", "new pass") == User("erin", "decider")
    assert users.stat().st_mode & 0o777 == 0o640  # an existing file keeps its mode


def test_a_bad_role_or_a_malformed_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    bad_role = add_user(users, "erin", "--role", "admin")
    assert bad_role.returncode == 2
    assert bad_role.stderr.strip() == "error: --role: expected one of viewer, decider, found 'admin'"
    assert not users.exists()
    users.write_text("users: {erin: decider}\n", encoding="utf-8")
    malformed = add_user(users, "pat")
    assert malformed.returncode == 2 and "expected a top-level `users:` list" in malformed.stderr
    assert "Traceback" not in malformed.stderr
    assert users.read_text(encoding="utf-8") == "users: {erin: decider}\n"


def test_the_example_users_file_becomes_a_real_one(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "deploy" / "users.example.yaml"
    users = tmp_path / "users.yaml"
    users.write_text(example.read_text(encoding="utf-8"), encoding="utf-8")
    assert load_users(users) == {}
    assert add_user(users, "erin", "--role", "decider").returncode == 0
    assert authenticate(load_users(users), "erin", "correct horse") == User("erin", "decider")
