"""scripts/install.sh into a temp root, twice: the tree, the modes, idempotency, and that the
example executor configs it installs pass the real `executor check`."""

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "scripts" / "install.sh"
CHECK_UNITS = REPO / "scripts" / "check_units.sh"

BINARIES = ("preditor", "executor", "ctrader-sim")
UNITS = (
    "oracle-executor@.service",
    "oracle-preditor.service",
    "oracle-trader.target",
    "swapfile.swap",
    "oracle-trader-backup.service",
    "oracle-trader-backup.timer",
)

# path relative to the root -> mode the installer must leave
EXPECTED_DIRS = {
    "etc/oracle-trader": 0o750,
    "etc/oracle-trader/secrets": 0o700,
    "var/lib/oracle-trader": 0o750,
    "var/lib/oracle-trader/models": 0o750,
    "var/lib/oracle-trader/bars": 0o750,
    "var/log/oracle-trader": 0o750,
    "var/backups/oracle-trader": 0o700,
}
EXPECTED_FILES = {
    **{f"usr/local/bin/{b}": 0o755 for b in BINARIES},
    "usr/local/bin/oracle-trader-backup": 0o755,
    "usr/local/bin/oracle-trader-restore": 0o755,
    **{f"etc/systemd/system/{u}": 0o644 for u in UNITS},
    "usr/local/share/doc/oracle-trader/OPERATIONS.md": 0o644,
    "etc/oracle-trader/executor-live.json": 0o640,
    "etc/oracle-trader/executor-paper.json": 0o640,
    "etc/oracle-trader/executor-live.json.example": 0o640,
    "etc/oracle-trader/executor-paper.json.example": 0o640,
    "etc/oracle-trader/secrets/ipc.token": 0o600,
}


def dummy_bins(d: Path) -> Path:
    d.mkdir()
    for b in BINARIES:
        p = d / b
        p.write_text(f"#!/bin/sh\necho {b} dummy\n")
        p.chmod(0o755)
    return d


def install(root: Path, *args: str) -> subprocess.CompletedProcess:
    r = subprocess.run(
        ["bash", str(INSTALL), "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, f"install.sh failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


def snapshot(root: Path) -> dict:
    """Every path under root with its type, mode and content hash (files)."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        rel = str(p.relative_to(root))
        content = p.read_bytes() if stat.S_ISREG(st.st_mode) else None
        out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), content)
    return out


def test_install_twice_into_a_root(tmp_path):
    bins = dummy_bins(tmp_path / "bins")
    root = tmp_path / "root"
    install(root, "--bin-dir", str(bins))

    for rel, mode in EXPECTED_DIRS.items():
        p = root / rel
        assert p.is_dir(), f"{rel} not created"
        assert stat.S_IMODE(p.stat().st_mode) == mode, f"{rel}: mode {oct(p.stat().st_mode)} != {oct(mode)}"
    for rel, mode in EXPECTED_FILES.items():
        p = root / rel
        assert p.is_file(), f"{rel} not installed"
        assert stat.S_IMODE(p.stat().st_mode) == mode, f"{rel}: mode {oct(p.stat().st_mode)} != {oct(mode)}"
    for b in BINARIES:
        assert (root / "usr/local/bin" / b).read_bytes() == (bins / b).read_bytes()
    for u in UNITS:
        assert (root / "etc/systemd/system" / u).read_text() == (REPO / "systemd" / u).read_text()
    token = (root / "etc/oracle-trader/secrets/ipc.token").read_text().strip()
    assert len(token) == 64 and int(token, 16) >= 0, f"token is not 32 hex bytes: {token!r}"
    for i in ("live", "paper"):
        cfg = json.loads((root / f"etc/oracle-trader/executor-{i}.json").read_text())
        assert cfg["state_dir"] == f"/var/lib/oracle-trader/executor-{i}"
    assert not list(root.rglob("*.new")), "temporary files left behind"

    # Operator edits and an existing secret must survive a second run; binaries are upgraded.
    before = snapshot(root)
    live = root / "etc/oracle-trader/executor-live.json"
    live.write_text(live.read_text().replace('"demo.ctraderapi.com"', '"live.ctraderapi.com"'))
    (bins / "executor").write_text("#!/bin/sh\necho executor v2\n")
    second = install(root, "--bin-dir", str(bins))
    after = snapshot(root)
    assert "kept existing" in second.stdout
    assert (root / "etc/oracle-trader/secrets/ipc.token").read_text().strip() == token
    assert '"live.ctraderapi.com"' in live.read_text()
    assert (root / "usr/local/bin/executor").read_text().endswith("v2\n")
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert changed == ["etc/oracle-trader/executor-live.json", "usr/local/bin/executor"], changed

    # A third run with nothing new changes nothing at all.
    install(root, "--bin-dir", str(bins))
    assert snapshot(root) == after


def test_modes_are_converged_on_rerun(tmp_path):
    bins = dummy_bins(tmp_path / "bins")
    root = tmp_path / "root"
    install(root, "--bin-dir", str(bins))
    (root / "etc/oracle-trader/secrets").chmod(0o755)
    (root / "var/lib/oracle-trader").chmod(0o777)
    install(root, "--bin-dir", str(bins))
    assert stat.S_IMODE((root / "etc/oracle-trader/secrets").stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "var/lib/oracle-trader").stat().st_mode) == 0o750


def test_loose_secret_is_reported_not_rewritten(tmp_path):
    bins = dummy_bins(tmp_path / "bins")
    root = tmp_path / "root"
    install(root, "--bin-dir", str(bins))
    tok = root / "etc/oracle-trader/secrets/ipc.token"
    tok.chmod(0o644)
    r = install(root, "--bin-dir", str(bins))
    assert "WARNING" in r.stdout and "ipc.token has mode 644" in r.stdout, r.stdout
    assert stat.S_IMODE(tok.stat().st_mode) == 0o644


def test_dry_run_changes_nothing(tmp_path):
    bins = dummy_bins(tmp_path / "bins")
    root = tmp_path / "root"
    r = install(root, "--bin-dir", str(bins), "--dry-run")
    assert "would run:" in r.stdout
    assert "ipc.token" in r.stdout
    assert not root.exists() or not any(root.iterdir()), "dry run wrote files"


def test_prefix_rewrites_unit_paths(tmp_path):
    bins = dummy_bins(tmp_path / "bins")
    root = tmp_path / "root"
    install(root, "--bin-dir", str(bins), "--prefix", "/opt/oracle")
    assert (root / "opt/oracle/bin/executor").is_file()
    unit = (root / "etc/systemd/system/oracle-executor@.service").read_text()
    assert "ExecStart=/opt/oracle/bin/executor run" in unit
    assert "/usr/local/bin" not in unit


def test_missing_binary_is_an_error(tmp_path):
    bins = dummy_bins(tmp_path / "bins")
    (bins / "preditor").unlink()
    r = subprocess.run(
        ["bash", str(INSTALL), "--root", str(tmp_path / "root"), "--bin-dir", str(bins)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0
    assert "preditor is missing" in r.stderr


def executor_binary() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    for profile in ("debug", "release"):
        p = target / profile / "executor"
        if p.is_file():
            return p
    pytest.fail(
        f"no executor binary under {target}/{{debug,release}}: run the tests via scripts/test.sh "
        "(cargo test builds it) or set CARGO_TARGET_DIR"
    )


@pytest.mark.parametrize("instance", ["live", "paper"])
def test_example_configs_pass_executor_check(tmp_path, instance):
    """The shipped example configs, with their absolute paths moved under a temp root, are
    accepted by the real `executor check` (so they follow the executor's current schema)."""
    exe = executor_binary()
    bins = dummy_bins(tmp_path / "bins")
    root = tmp_path / "root"
    install(root, "--bin-dir", str(bins))
    secrets = root / "etc/oracle-trader/secrets"
    for name, text in (
        ("ctrader_client_secret", "example-secret\n"),
        ("ctrader_tokens.json", '{"access_token": "a", "refresh_token": "r"}\n'),
    ):
        (secrets / name).write_text(text)
        (secrets / name).chmod(0o600)
    for d in (f"var/lib/oracle-trader/executor-{instance}", f"var/log/oracle-trader/executor-{instance}"):
        (root / d).mkdir(parents=True, exist_ok=True)
    text = (root / f"etc/oracle-trader/executor-{instance}.json").read_text()
    for prefix in ("/etc/oracle-trader", "/var/lib/oracle-trader", "/var/log/oracle-trader"):
        text = text.replace(f'"{prefix}', f'"{root}{prefix}')
    cfg = root / f"etc/oracle-trader/executor-{instance}.rooted.json"
    if instance == "live":
        # Unedited, the live example must be refused: it names no real cTrader account, and its
        # client id is a placeholder.
        cfg.write_text(text)
        r = subprocess.run([str(exe), "check", "--config", str(cfg)], capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and "broker.ctrader.account_id" in r.stderr, r.stdout + r.stderr
        assert "broker.ctrader.client_id" in r.stderr and "placeholder" in r.stderr, r.stdout + r.stderr
        text = text.replace('"account_id": 0,', '"account_id": 1234567,')
        text = text.replace("REPLACE_WITH_YOUR_OPEN_API_CLIENT_ID", "1234_exampleClientId")
    cfg.write_text(text)
    r = subprocess.run([str(exe), "check", "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"executor check refused the {instance} example:\n{r.stdout}\n{r.stderr}"
    assert "OK (20 symbols" in r.stdout, r.stdout


def test_check_units_passes_and_catches_a_bad_key(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze missing: run scripts/check_units.sh as root once (it installs systemd)")
    ok = subprocess.run(["bash", str(CHECK_UNITS)], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tmp_path / "units"
    shutil.copytree(REPO / "systemd", bad)
    unit = bad / "oracle-preditor.service"
    unit.write_text(unit.read_text().replace("RestartSec=5\n", "RestartSec=5\nRestartSecs=5\n"))
    r = subprocess.run(["bash", str(CHECK_UNITS), "--units", str(bad)], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "Unknown key 'RestartSecs'" in r.stdout, r.stdout
