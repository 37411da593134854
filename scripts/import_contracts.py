"""Custom import-linter contract types for shadowlab (registered in pyproject.toml `contract_types`).

`allowlist`: every module under `source_modules` may import only the standard library, its own package
and the `allowed_modules` (top-level external packages or internal modules). The tee needs this form:
production apps import it, so a new dependency (orjson, typer, psycopg, ...) must fail the lint rather
than pass a denylist that never named it.
"""

from __future__ import annotations

import sys
from typing import Any, cast

from grimp import ImportGraph
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


class AllowlistContract(Contract):
    type_name = "allowlist"

    source_modules = fields.SetField(subfield=fields.StringField())
    allowed_modules = fields.SetField(subfield=fields.StringField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        # import-linter's constructor replaces each field with its parsed value on the instance
        sources = cast(set[str], self.source_modules)
        allowed = cast(set[str], self.allowed_modules)
        violations: list[dict[str, Any]] = []
        for source in sorted(sources):
            if source not in graph.modules:
                raise ValueError(f"allowlist contract: module {source} is not in the graph")
            for importer in sorted({source} | graph.find_descendants(source)):
                for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                    top = imported.split(".")[0]
                    ok = top in sys.stdlib_module_names or any(
                        _within(imported, package) for package in sources | allowed
                    )
                    if not ok:
                        details = graph.get_import_details(importer=importer, imported=imported)
                        lines = sorted({d["line_number"] for d in details})
                        violations.append({"importer": importer, "imported": imported, "lines": lines})
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for violation in check.metadata["violations"]:
            lines = ", ".join(f"l.{n}" for n in violation["lines"])
            importer, imported = violation["importer"], violation["imported"]
            output.print_error(f"{importer} imports {imported} ({lines}), which is not on the allowlist")
            output.new_line()
