"""The shape of the code in platform/ and ml_assets/: no function over 80 lines, no module over
400.

A function's lines run from its first decorator to its last line, docstring included; a nested
function is measured on its own, and its lines count in its outer function's too. The largest
of each is printed (`pytest -s` or `-rA` shows it).
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("platform", "ml_assets")
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 400

# Remove once platform/ and ml_assets/ are split to size.


def modules() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py"))


def function_sizes(path: Path) -> list[tuple[int, str]]:
    """(lines, "path:line name") of every function and method in `path`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    sizes = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            where = f"{path.relative_to(ROOT)}:{first} {node.name}"
            sizes.append((node.end_lineno - first + 1, where))
    return sizes


def module_sizes() -> list[tuple[int, str]]:
    return [(len(p.read_text().splitlines()), str(p.relative_to(ROOT))) for p in modules()]


def _report(kind: str, sizes: list[tuple[int, str]], limit: int) -> list[str]:
    """The ones over `limit`, largest first; prints the largest."""
    sizes = sorted(sizes, reverse=True)
    print(f"largest {kind}: {sizes[0][1]} ({sizes[0][0]} lines; limit {limit})")
    return [f"{lines:5d}  {where}" for lines, where in sizes if lines > limit]


def test_the_folders_hold_code():
    assert len(modules()) > 20


def test_no_function_is_over_80_lines():
    over = _report(
        "function",
        [size for path in modules() for size in function_sizes(path)],
        MAX_FUNCTION_LINES,
    )
    assert not over, f"{len(over)} function(s) over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(over)


def test_no_module_is_over_400_lines():
    over = _report("module", module_sizes(), MAX_MODULE_LINES)
    assert not over, f"{len(over)} module(s) over {MAX_MODULE_LINES} lines:\n" + "\n".join(over)
