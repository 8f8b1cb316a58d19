"""The documentation site builds with no broken link or anchor, and the configuration reference
is generated from the schema and up to date with it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from heliocloud import schema_docs
from heliocloud.cli import main
from heliocloud.config import schema

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[1]


def test_site_builds_strict(tmp_path):
    """mkdocs --strict turns every warning (missing page, missing anchor, unlisted file) into a
    failure, so links cannot rot."""
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                             "--config-file", str(REPO / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    for page in ("index.html", "admin/index.html", "admin/costs/index.html", "researcher/index.html",
                 "reference/config/index.html"):
        assert (tmp_path / "site" / page).is_file(), page
    assert (tmp_path / "site" / "img" / "architecture.svg").is_file()


def test_config_reference_is_up_to_date():
    assert schema_docs.is_current(REPO), (
        f"{schema_docs.REFERENCE_PATH} does not match heliocloud/schema/: run `.venv/bin/{schema_docs.REGENERATE}` "
        "and commit the result"
    )


def _leaves(node: dict, path: str = "") -> list[str]:
    return [p for p, _, _ in schema_docs.entries(node, path)]


def test_every_schema_key_has_a_heading_with_its_description():
    page = schema_docs.render()
    for path, node, _ in schema_docs.entries(schema()):
        assert f"`{path}`\n" in page, path
        if node.get("description"):
            first_words = " ".join(node["description"].split()[:3]).split("`")[0]
            assert first_words.replace("<", "&lt;").replace(">", "&gt;") in page, path


def test_nested_objects_and_lists_of_objects_get_dotted_paths():
    paths = _leaves(schema())
    assert "network.nat_gateways" in paths
    assert "registry.buckets[].datasets[].time_format" in paths


def test_a_new_key_in_any_section_appears_with_type_default_and_bounds():
    root = {"type": "object", "properties": {"daskhub": {
        "type": "object", "description": "Section.", "properties": {
            "node_groups": {"type": "array", "description": "Groups.", "items": {
                "type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string", "description": "Group name."},
                    "max_nodes": {"type": "integer", "minimum": 0, "maximum": 50, "default": 10,
                                  "description": "Upper bound."},
                    "capacity": {"enum": ["on-demand", "spot"], "default": "spot", "description": "Market."}}}}}}}}
    page = schema_docs.render(root)
    assert "### `daskhub.node_groups`\n\n*list of object*" in page
    assert "#### `daskhub.node_groups[].name`\n\n*string* · **required**" in page
    assert "*integer* · default: `10` · 0 to 50" in page
    assert 'one of `on-demand`, `spot`' in page and "default: `spot`" in page


def test_constraints_are_written_out():
    assert schema_docs.type_of({"type": ["string", "null"]}) == "string or null"
    assert schema_docs.type_of({"type": "object", "additionalProperties": {"type": "string"}}) == "map of string"
    assert schema_docs.constraints({"type": "array", "uniqueItems": True, "items": {"type": "string", "format": "email"}}) == \
        ["no duplicates", "each item: format email"]
    assert schema_docs.constraints({"not": {"const": "0.0.0.0/0"}}) == ["not `0.0.0.0/0`"]


def test_html_looking_text_survives_outside_code():
    assert schema_docs._escape("named <id>_YYYY.csv, `<name>-Network`") == "named &lt;id&gt;_YYYY.csv, `<name>-Network`"


def test_docs_command_check(capsys):
    assert main(["docs", "--check"]) == 0
    assert "up to date" in capsys.readouterr().out
