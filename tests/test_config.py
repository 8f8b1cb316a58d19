"""instance.yaml validation: defaults, unknown keys, types, regexes, required fields, line numbers."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from heliocloud.config import ConfigError, load

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "instance.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, text))
    return info.value.problems


def test_default_instance_is_valid_and_defaults_are_filled():
    config = load(REPO / "instance.yaml")
    assert config.name == "helio"
    assert config.network["nat_gateways"] == 0
    assert config.auth["self_signup"] == "off"
    assert config.tags["heliocloud:instance"] == "helio"


def test_minimal_config_gets_every_default(tmp_path):
    config = load(write(tmp_path, "instance:\n  name: tiny\n"))
    assert config.data["components"] == {"registry": True, "daskhub": True, "portal": True}
    assert config.network["cidr"] == "10.20.0.0/16"
    assert config.domain_prefix == "tiny-heliocloud"


def test_unknown_key_is_named_with_line_and_suggestion(tmp_path):
    out = problems(tmp_path, """\
        instance:
          name: helio
        network:
          nat_gatways: 1
        """)
    assert out == [f"{tmp_path / 'instance.yaml'}:4: network.nat_gatways: unknown key (did you mean 'nat_gateways'?)"]


def test_wrong_type_names_the_field_and_line(tmp_path):
    out = problems(tmp_path, """\
        instance:
          name: helio
        network:
          max_azs: "two"
        """)
    assert len(out) == 1 and out[0].endswith("network.max_azs: 'two' is not of type 'integer'")
    assert ":4:" in out[0]


def test_bad_regex_and_missing_required_field_in_a_dataset(tmp_path):
    out = problems(tmp_path, """\
        instance:
          name: helio
        registry:
          buckets:
            - name: helio-data
              datasets:
                - id: ok
                  title: fine
                  prefix: a/
                  pattern: "a(?P<year>[0-9]{4})"
                  time_format: "%Y"
                  filetype: fits
                - id: broken
                  title: broken
                  prefix: b/
                  pattern: "b(?P<year>[0-9]{4}"
                  filetype: fits
        """)
    text = "\n".join(out)
    assert "registry.buckets[0].datasets[1].pattern: not a valid regular expression" in text
    assert "registry.buckets[0].datasets[1].time_format: required key is missing" in text


def test_missing_instance_name(tmp_path):
    out = problems(tmp_path, "instance:\n  tags: {}\n")
    assert any("instance.name: required key is missing" in line for line in out)


def test_semantic_check_nat_more_than_azs(tmp_path):
    out = problems(tmp_path, "instance:\n  name: helio\nnetwork:\n  nat_gateways: 3\n  max_azs: 2\n")
    assert out == [f"{tmp_path / 'instance.yaml'}:4: network.nat_gateways: 3 NAT gateways but only 2 AZs"]


def test_existing_vpc_needs_account_and_region(tmp_path):
    out = problems(tmp_path, "instance:\n  name: helio\nnetwork:\n  vpc_id: vpc-0123456789abcdef0\n")
    assert "network.vpc_id: importing an existing VPC needs instance.account and instance.region" in out[0]


def test_yaml_syntax_error_has_a_line(tmp_path):
    out = problems(tmp_path, "instance:\n  name: [helio\n")
    assert out[0].startswith(f"{tmp_path / 'instance.yaml'}:") and "not valid YAML" in out[0]


def test_every_schema_key_has_a_description():
    from heliocloud.config import schema

    def walk(node, path):
        if isinstance(node, dict):
            for key, sub in node.get("properties", {}).items():
                assert sub.get("description"), f"{path}.{key} has no description"
                walk(sub, f"{path}.{key}")
            if isinstance(node.get("items"), dict):
                walk(node["items"], f"{path}[]")

    walk(schema(), "")


def test_cli_validate_exit_codes(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "heliocloud.cli", "validate", str(REPO / "instance.yaml")],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad = write(tmp_path, "instance:\n  name: helio\ncomponents:\n  portal: maybe\n")
    out = subprocess.run([sys.executable, "-m", "heliocloud.cli", "validate", str(bad)], capture_output=True, text=True)
    assert out.returncode == 2
    assert f"{bad}:4: components.portal: 'maybe' is not of type 'boolean'" in out.stderr


def test_app_refuses_to_synth_an_invalid_config(tmp_path):
    bad = write(tmp_path, "instance:\n  name: helio\n  colour: blue\n")
    out_dir = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=REPO, capture_output=True, text=True,
        env={**__import__("os").environ, "HELIOCLOUD_CONFIG": str(bad), "CDK_OUTDIR": str(out_dir)},
    )
    assert result.returncode == 2
    assert f"{bad}:3: instance.colour: unknown key" in result.stderr
    assert not (out_dir / "manifest.json").exists()


def test_config_context_wins_over_environment(tmp_path):
    """`cdk synth -c config=PATH` reaches app.py as context; it beats $HELIOCLOUD_CONFIG."""
    other = write(tmp_path, "instance:\n  name: other-site\n")
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=REPO, capture_output=True, text=True,
        env={**__import__("os").environ, "HELIOCLOUD_CONFIG": "/nonexistent.yaml", "CDK_OUTDIR": str(tmp_path / "o"),
             "CDK_CONTEXT_JSON": '{"config": "%s"}' % other},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "o" / "other-site-Network.template.json").exists()


@pytest.mark.parametrize("path", sorted((REPO / "instances").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_instance_file_is_valid(path):
    assert load(path).name


def test_cli_validate_runs_every_component_check(tmp_path):
    """Checks that live with a component (registry, portal) run in `heliocloud validate` too."""
    bad = write(tmp_path, """\
        instance:
          name: helio
        portal:
          volume_gb: {min: 100, default: 50}
        """)
    out = subprocess.run([sys.executable, "-m", "heliocloud.cli", "validate", str(bad)], capture_output=True, text=True)
    assert out.returncode == 2
    assert "portal.volume_gb: needs min <= default <= max" in out.stderr
