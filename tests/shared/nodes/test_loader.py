from __future__ import annotations

import logging
import sys
import uuid
from pathlib import Path

import pytest

from shared.nodes import NodeRegistry, NodeSpec, load_registry

CORE_TYPES = [
    "delay",
    "filter",
    "http_request",
    "log",
    "switch",
    "transform",
    "wait_for_callback",
]

GOOD = """
from pydantic import BaseModel
from shared.nodes import NodeSpec

class Params(BaseModel):
    text: str

def run(ctx, params):
    return {"text": params.text}

NODE = NodeSpec(type="{type}", version=2, description="test node", params_model=Params, run=run)
"""


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A throwaway package on sys.path: good, broken and odd plugin files."""
    name = f"plugins_{uuid.uuid4().hex[:8]}"
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "alpha.py").write_text(GOOD.replace("{type}", "alpha"))
    (package / "broken.py").write_text("raise RuntimeError('plugin exploded at import')\n")
    (package / "exits.py").write_text("import sys\nsys.exit(3)\n")
    (package / "no_node.py").write_text("VALUE = 1\n")
    (package / "not_a_spec.py").write_text("NODE = 42\n")
    (package / "zeta_duplicate.py").write_text(GOOD.replace("{type}", "alpha"))
    (package / "_private.py").write_text("raise RuntimeError('must not be imported')\n")
    (package / "notes.txt").write_text("not python")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path, name
    for module in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
        del sys.modules[module]


def _write_entry_point(root: Path, group: str, target: str) -> None:
    dist = root / "automateos_test_plugin-1.0.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: automateos-test-plugin\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(f"[{group}]\n{target}\n")


class TestCoreNodes:
    def test_discovers_the_core_nodes(self):
        registry = load_registry()
        assert registry.types() == CORE_TYPES
        assert registry.errors == {}

    def test_catalogue_lists_schemas_sorted_by_type(self):
        catalogue = load_registry().catalogue()
        assert [entry["type"] for entry in catalogue] == CORE_TYPES
        http = catalogue[2]
        assert http["version"] == 1
        assert "url" in http["params_schema"]["properties"]
        assert "json" in http["params_schema"]["properties"]
        assert set(http["settings_schema"]["properties"]) == {
            "retry",
            "timeout_s",
            "continue_on_fail",
            "if",
            "after",
            "join",
            "for_each",
            "concurrency",
        }

    def test_catalogue_copies_can_be_mutated_safely(self):
        registry = load_registry()
        registry.catalogue()[0]["params_schema"].clear()
        assert registry.catalogue()[0]["params_schema"]

    def test_get_unknown_type_is_none(self):
        assert load_registry().get("nope") is None


class TestBrokenPlugins:
    def test_good_plugin_loads_beside_broken_ones(self, plugin_dir):
        _, name = plugin_dir
        registry = load_registry(nodes_package=name, entry_point_group="automateos.none")
        assert registry.types() == ["alpha"]
        spec = registry.get("alpha")
        assert spec is not None
        assert spec.version == 2

    def test_import_error_is_recorded_with_its_message(self, plugin_dir):
        _, name = plugin_dir
        registry = load_registry(nodes_package=name, entry_point_group="automateos.none")
        assert "plugin exploded at import" in registry.errors[f"{name}.broken"]

    def test_sys_exit_at_import_is_recorded(self, plugin_dir):
        _, name = plugin_dir
        registry = load_registry(nodes_package=name, entry_point_group="automateos.none")
        assert f"{name}.exits" in registry.errors

    def test_module_without_node_is_recorded(self, plugin_dir):
        _, name = plugin_dir
        registry = load_registry(nodes_package=name, entry_point_group="automateos.none")
        assert "no NODE" in registry.errors[f"{name}.no_node"]

    def test_node_that_is_not_a_spec_is_recorded(self, plugin_dir):
        _, name = plugin_dir
        registry = load_registry(nodes_package=name, entry_point_group="automateos.none")
        assert "expected a NodeSpec" in registry.errors[f"{name}.not_a_spec"]

    def test_duplicate_type_keeps_the_first(self, plugin_dir):
        _, name = plugin_dir
        registry = load_registry(nodes_package=name, entry_point_group="automateos.none")
        assert "duplicate node type 'alpha'" in registry.errors[f"{name}.zeta_duplicate"]

    def test_private_modules_are_not_imported(self, plugin_dir):
        _, name = plugin_dir
        registry = load_registry(nodes_package=name, entry_point_group="automateos.none")
        assert f"{name}._private" not in registry.errors
        assert f"{name}._private" not in sys.modules

    def test_failures_are_logged_with_traceback(self, plugin_dir, caplog):
        _, name = plugin_dir
        with caplog.at_level(logging.ERROR, logger="shared.nodes.loader"):
            load_registry(nodes_package=name, entry_point_group="automateos.none")
        broken = [r for r in caplog.records if f"{name}.broken" in r.getMessage()]
        assert broken
        assert broken[0].exc_info is not None

    def test_missing_package_is_recorded_not_raised(self):
        registry = load_registry(nodes_package="no_such_package_xyz", entry_point_group="x.none")
        assert registry.types() == []
        assert "no_such_package_xyz" in registry.errors


class TestEntryPoints:
    def test_entry_point_spec_is_loaded(self, plugin_dir):
        root, name = plugin_dir
        group = f"automateos.test.{name}"
        (root / name / "beta.py").write_text(GOOD.replace("{type}", "beta"))
        _write_entry_point(root, group, f"beta = {name}.beta:NODE")
        registry = load_registry(nodes_package="no_such_package_xyz", entry_point_group=group)
        assert registry.types() == ["beta"]

    def test_broken_entry_point_is_recorded(self, plugin_dir):
        root, name = plugin_dir
        group = f"automateos.test.{name}"
        _write_entry_point(root, group, f"boom = {name}.broken:NODE")
        registry = load_registry(nodes_package="no_such_package_xyz", entry_point_group=group)
        assert registry.types() == []
        [message] = [v for k, v in registry.errors.items() if "boom" in k]
        assert "plugin exploded at import" in message

    def test_entry_point_duplicating_a_folder_node_loses(self, plugin_dir):
        root, name = plugin_dir
        group = f"automateos.test.{name}"
        (root / name / "other_log.py").write_text(GOOD.replace("{type}", "log"))
        _write_entry_point(root, group, f"log = {name}.other_log:NODE")
        registry = load_registry(entry_point_group=group)
        spec = registry.get("log")
        assert spec is not None
        assert spec.description != "test node"
        assert any("duplicate node type 'log'" in v for v in registry.errors.values())


class TestRegistry:
    def test_registry_can_be_built_from_specs(self):
        spec = load_registry().get("transform")
        assert isinstance(spec, NodeSpec)
        registry = NodeRegistry([spec])
        assert registry.types() == ["transform"]
        assert "transform" in registry
