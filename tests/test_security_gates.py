"""Security gates over every synthesized stack: cdk-nag AwsSolutions and cfn-lint."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[1]


def test_cdk_nag_reports_no_unacknowledged_finding(default_cdk_out):
    """app.py runs AwsSolutionsChecks as a validation plugin: any finding fails synth. The
    report is there, and empty."""
    report = json.loads((default_cdk_out / "validation-report.json").read_text())
    failures = [v for r in report["pluginReports"] for v in r.get("violations", [])]
    assert failures == []


def test_cfn_lint_has_no_errors(default_cdk_out):
    templates = sorted(str(p) for p in default_cdk_out.glob("*.template.json"))
    assert templates
    # W3005 comes from CDK's own DependsOn generation; everything else counts.
    result = subprocess.run([str(Path(sys.executable).with_name("cfn-lint")), "--format", "parseable", "--ignore-checks", "W3005",
                             "--", *templates], capture_output=True, text=True)
    errors = [line for line in result.stdout.splitlines() if re.search(r":E\d{4}:", line)]
    assert errors == [], "\n".join(errors)
    assert result.returncode in (0, 4, 8, 12), result.stderr  # 2 = errors, per cfn-lint exit codes


def test_acknowledgements_all_have_reasons():
    """No blanket acknowledgement: each names one finding and gives a reason in code."""
    calls = []
    for path in (REPO / "stacks").rglob("*.py"):
        text = path.read_text()
        calls += re.findall(r'acknowledge\(\s*[^,]+,\s*"(AwsSolutions-[A-Z]+[0-9]+[^"]*)"', text)
        assert "NagSuppressions" not in text and "applyToChildren" not in text
    assert all(re.fullmatch(r"AwsSolutions-[A-Z]+\d+(\[.+\])?", c) for c in calls)


def test_a_short_reason_is_refused():
    import aws_cdk as cdk

    from stacks.security import acknowledge

    with pytest.raises(ValueError):
        acknowledge(cdk.Stack(cdk.App(), "S"), "AwsSolutions-S1", "not needed")
