"""What a newcomer tries first, checked from the README's promises rather than from the code: `store:` set by
the DEFAULT document or by an override is checked as a document's own `store:` is, and `Sweep` refuses bad
arguments at once with one clear error."""
from __future__ import annotations

import pytest


STEERED_UNDER_COMPACT_DEFAULT = """\
name: DEFAULT
store: compact
path: out
---
name: s
repetitions: 1
iterations: 4
grid: {c: [0, 1, 2]}
steer: {policy: successive_halving, metric: loss, mode: min, min_iterations: 1}
"""

PLAIN = """\
name: walk
repetitions: 2
iterations: 3
path: out
"""


@pytest.mark.parametrize(("config", "overrides", "message"), [
    (STEERED_UNDER_COMPACT_DEFAULT, [], "the compact store does not hold a 'steer' campaign"),
    (PLAIN, ["++store=bogus"], "'store': must be one of folders, compact, got 'bogus'"),
    (PLAIN, ["+store=Compact"], "'store': must be one of folders, compact, got 'Compact'"),
], ids=["default-compact-under-steer", "override-unknown-store", "override-wrong-case"])
def test_store_from_default_or_override_is_checked(cli, write_config, tmp_path, config, overrides, message):
    """README: a steered campaign on the compact store is refused (one line, exit 2, nothing written), and an
    override's value is checked as the config's own; the DEFAULT document is merged under every experiment."""
    write_config(config)
    result = cli("Steered" if "steer" in config else "Deterministic", "config.yml", *overrides, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
