"""No import cycle inside benchmarks/, function-level imports included: report.py (markdown) and
report_html.py (plots) read the targets and the benchmark rows from targets.py, and report_html
does not import report. The graph is read from the source by the walker of test_train_imports.py."""
from test_train_imports import find_cycles, import_graph, module_names, packages_imported_from

PACKAGE = "benchmarks"


def test_no_import_cycle_in_benchmarks():
    names = module_names(package=PACKAGE)
    packages = {n for n, path in names.items() if path.name == "__init__.py"}
    graph = import_graph(package=PACKAGE)
    for name, path in names.items():  # 'from benchmarks import x' runs the package's __init__ too
        graph[name] |= packages_imported_from(path.read_text(), name, path.name == "__init__.py", packages)
    assert not find_cycles(graph), f"import cycles in benchmarks/: {find_cycles(graph)}"


def test_report_modules_share_targets_and_html_does_not_import_report():
    graph = import_graph(package=PACKAGE)
    assert "benchmarks.targets" in graph["benchmarks.report"] & graph["benchmarks.report_html"]
    assert "benchmarks.report" not in graph["benchmarks.report_html"]
    assert not graph["benchmarks.targets"] & {"benchmarks.report", "benchmarks.report_html"}
