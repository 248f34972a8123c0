"""The README's aws CLI tour, run command by command against a live server,
so the README stays true. Skipped when the aws CLI is not installed
(STRATA_AWS_CLI names it; tests/run.sh installs it)."""
import os
import re
import subprocess

import pytest

from conftest import ROOT


def tour_commands():
    readme = open(os.path.join(ROOT, "README.md")).read()
    block = readme.split("<!-- tour -->", 1)[1].split("<!-- /tour -->", 1)[0]
    body = block.split("```sh", 1)[1].split("```", 1)[0]
    return [line for line in body.strip().splitlines() if line.strip()]


def test_readme_tour_runs(endpoint):
    aws = os.environ.get("STRATA_AWS_CLI")
    if not aws:
        pytest.skip("STRATA_AWS_CLI not set")
    script = "\n".join(["set -e", f'aws() {{ "{aws}" "$@"; }}'] + [re.sub(r"http://127\.0\.0\.1:8000", endpoint, c) for c in tour_commands()])
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert '"N": "2"' in out.stdout, "the update returned the incremented play count"
    assert "refused, as it should be" in out.stdout
    assert "ConditionalCheckFailedException" in out.stderr
