"""A config error never quotes a secret pasted into the config, and a bare secret is not echoed."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine._diagnostics import RuleError
from engine.project import load_project
from engine.project._config import redact_config_line
from engine.secrets._redact import SecretError, read_secrets


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "tradepost.yaml"
    path.write_text("source:\n  type: file\n  path: catalog.jsonl\n" + body, encoding="utf-8")
    return path


def test_a_token_pasted_under_an_unknown_key_is_masked_in_the_quoted_line(tmp_path: Path) -> None:
    config = _config(tmp_path, "  app_token: TOPSECRETTOKEN42\nmarketplaces: {}\n")
    with pytest.raises(RuleError) as caught:
        load_project(config)
    text = str(caught.value)
    assert "TOPSECRETTOKEN42" not in text
    assert "4 |   app_token: ********" in text
    assert "unknown key 'app_token' in source" in text


def test_a_state_url_password_is_masked_but_the_error_still_points_at_its_line(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        "state: postgresql://tp:hunter2pw@db:5432/tp\nmarketplaces: {}\nbogus: 1\nstate_x: postgresql://a:b2c3d4@h/db\n",
    )
    with pytest.raises(RuleError) as caught:
        load_project(config)
    rendered = "\n".join(d.render() for d in caught.value.diagnostics)
    assert "b2c3d4" not in rendered
    assert "7 | state_x: postgresql://a:********@h/db" in rendered
    assert "unknown key 'bogus' in the top level" in rendered


def test_a_yaml_syntax_error_on_a_secret_line_does_not_quote_it(tmp_path: Path) -> None:
    config = _config(tmp_path, 'serve:\n  secret: "unterminated-S3CRET\n  port: [\n')
    with pytest.raises(RuleError) as caught:
        load_project(config)
    assert "S3CRET" not in "\n".join(d.render() for d in caught.value.diagnostics)


@pytest.mark.parametrize(
    ("line", "want"),
    [
        ("  client_secret: abc123", "  client_secret: ********"),
        ("  client_secret: env:ML_SECRET", "  client_secret: env:ML_SECRET"),
        ('  refresh_token: "file:secrets/ml"', '  refresh_token: "file:secrets/ml"'),
        ("  - api_key: k-1", "  - api_key: ********"),
        ("  password: |", "  password: |"),
        ("    rules: ../rules/google.yaml", "    rules: ../rules/google.yaml"),
        ("  base_url: https://u:p4ss@host/x", "  base_url: https://u:********@host/x"),
    ],
)
def test_redact_config_line(line: str, want: str) -> None:
    assert redact_config_line(line) == want


def test_a_pasted_secret_in_credentials_is_not_echoed_but_its_field_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(SecretError) as caught:
        read_secrets({"client_secret": "xK9-pasted.Secret"})
    assert "xK9-pasted.Secret" not in str(caught.value)
    assert str(caught.value).startswith("credentials.client_secret: ")
    monkeypatch.delenv("ML_CLIENT_SECRET", raising=False)
    with pytest.raises(
        SecretError, match=r"credentials.client_secret: environment variable ML_CLIENT_SECRET is not set"
    ):
        read_secrets({"client_secret": "ML_CLIENT_SECRET"})
