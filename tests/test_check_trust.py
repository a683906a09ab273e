"""``acuse check-config`` loads each provider's trust roots and reports its policies."""

from pathlib import Path

from tests.acuse_process import run_acuse
from tests.test_quarantine_cli import write_config
from tests.trust_pki import invented_pki


def test_check_config_reports_trust(tmp_path: Path) -> None:
    root = invented_pki().ca.write_pem(tmp_path / "ca.pem")
    config = write_config(tmp_path, f'[providers.lleida]\ntrust_roots = ["{root}"]\n')

    result = run_acuse(config, "--lang", "en", "check-config")

    assert result.returncode == 0, result.stderr
    assert "TDP2: DKIM require, PDF signature require, 1 trust root certificate." in result.stdout


def test_check_config_names_missing_trust_root(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[providers.lleida]\ntrust_roots = ["trust/missing.pem"]\n')

    result = run_acuse(config, "--lang", "en", "check-config")

    assert result.returncode == 2
    assert "missing.pem" in result.stderr


def test_ingest_with_missing_trust_root_is_config_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[providers.lleida]\ntrust_roots = ["trust/missing.pem"]\n')
    (tmp_path / "mail").mkdir()

    result = run_acuse(
        config, "--lang", "en", "ingest", str(tmp_path / "mail"), "--project", "TDP2"
    )

    assert result.returncode == 2
    assert "Cannot read the trust root file" in result.stderr
