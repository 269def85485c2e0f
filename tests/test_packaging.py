"""The repository keeps its promises: one dependency list in two formats, clean notebooks, a true README."""

import ast
import importlib.util
import json
import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
# conda-forge names that differ from PyPI's
CONDA_TO_PYPI = {"pytorch": "torch"}
CONDA_ONLY = {"python", "pip"}


def requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0].lower()


def requirement_versions(requirement: str) -> str:
    return re.sub(r"\s|;.*$", "", requirement)[len(requirement_name(requirement)):]


def pyproject_dependencies() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {requirement_name(r): requirement_versions(r) for r in project["dependencies"]}


def environment_dependencies() -> dict[str, str]:
    """The conda packages of environment.yml (top-level '  - name>=x' lines; the pip section excluded)."""
    packages = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("\ndependencies:\n", 1)[1].splitlines():
        match = re.match(r"^  - ([A-Za-z0-9_.\-]+)(.*)$", line)
        if match and match.group(1) not in CONDA_ONLY:
            name = CONDA_TO_PYPI.get(match.group(1).lower(), match.group(1).lower())
            packages[name] = match.group(2).strip()
    return packages


def test_pyproject_and_environment_name_the_same_packages_and_versions():
    assert pyproject_dependencies() == environment_dependencies()


def test_environment_uses_conda_forge_and_installs_the_course():
    text = (ROOT / "environment.yml").read_text()
    channels = text.split("\nchannels:\n", 1)[1].split("\ndependencies:\n", 1)[0]
    assert [line.strip() for line in channels.splitlines()] == ["- conda-forge"], "conda-forge only (the pytorch channel is deprecated)"
    assert "--editable ." in text


def test_torch_is_never_the_preinstalled_cpu_build():
    torch_versions = pyproject_dependencies()["torch"]
    assert torch_versions == ">=2.14", "torch must come from the registry (>=2.14), with a matching torchvision"


def test_committed_notebooks_carry_no_outputs():
    notebooks = sorted(ROOT.glob("lectures/*.ipynb")) + sorted(ROOT.glob("solutions/*.ipynb")) + sorted(ROOT.glob("exercises/*.ipynb"))
    assert notebooks
    dirty = []
    for path in notebooks:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code" and (cell["outputs"] or cell["execution_count"] is not None):
                dirty.append(path.name)
                break
    assert dirty == [], f"clear the outputs of {dirty}"


def test_every_notebook_starts_with_the_course_setup():
    for path in sorted(ROOT.glob("lectures/*.ipynb")) + sorted(ROOT.glob("solutions/*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        first_code = next("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        assert "setup()" in first_code and "course_lib" in first_code, path.name


def test_ci_runs_the_readme_complete_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 course.py lab" in readme
    assert re.search(r"^python3 course\.py test$", readme, re.MULTILINE), "the everyday test command"
    assert re.search(r"^python3 course\.py test --complete$", readme, re.MULTILINE), "the complete test command"
    assert re.search(r"^python3 course\.py test --complete$", ci, re.MULTILINE)


def test_the_everyday_suite_leaves_out_exactly_the_grading_fixtures():
    import conftest

    assert conftest.COMPLETE_ONLY == {"test_book.py", "test_exercise_fairness.py", "test_grading_batch.py",
                                      "test_grading_budget.py", "test_grading_tricks.py", "test_lecture_scale.py",
                                      "test_nbgrader.py"}
    assert all((ROOT / "tests" / name).exists() for name in conftest.COMPLETE_ONLY)
    assert conftest.xdist_scope("lectures/07_ginfty.ipynb::Cell 4") == "lectures/07_ginfty.ipynb"
    assert conftest.xdist_scope("tests/test_exercise_fairness.py::test_x[01_batch_sgd-2-threads]") != \
        conftest.xdist_scope("tests/test_exercise_fairness.py::test_x[01_batch_sgd-1-thread]")
    assert conftest.xdist_scope("tests/test_browser.py::test_a[01.ipynb]") == conftest.xdist_scope("tests/test_browser.py::test_b")
    assert conftest.xdist_scope("tests/test_lecture_scale.py::test_x[05_residual]") != \
        conftest.xdist_scope("tests/test_lecture_scale.py::test_x[07_ginfty]")
    assert all((ROOT / prefix).exists() for prefix in conftest.SLOWEST_FIRST)
    order = ["tests/test_optim.py::test_a", "lectures/07_ginfty.ipynb::Cell 4", "tests/test_browser.py::test_b",
             "tests/test_exercise_fairness.py::test_x[02-1-thread]", "tests/test_lecture_scale.py::test_x[05]"]
    assert sorted(order, key=conftest.slowness_rank) == [order[2], order[4], order[3], order[1], order[0]]


def test_readme_lists_every_lecture():
    readme = (ROOT / "README.md").read_text()
    for path in sorted(ROOT.glob("lectures/*.ipynb")):
        assert f"lectures/{path.name}" in readme, f"README does not mention {path.name}"


def test_gpu_check_runs_every_benchmark_with_a_device_option_that_exists():
    import subprocess
    import sys

    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "maintainers/gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    scripts = {command[0] for command in gpu_check.BENCHMARKS}
    assert scripts == {f"maintainers/benchmarks/{p.name}" for p in (ROOT / "maintainers" / "benchmarks").glob("*.py")}, "every benchmark, once"
    for script in scripts:
        text = (ROOT / script).read_text()
        assert '"--device"' in text, f"{script} has no --device option"
    refused = subprocess.run([sys.executable, str(ROOT / "maintainers/gpu_check.py"), "run", "--budget-minutes", "0"],
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "--budget-minutes must be positive" in refused.stderr


def test_each_lecture_states_its_measured_times_within_the_lecture_scales_budget():
    """The times in each lecture's first cell come from results/lecture_times.json (maintainers/benchmarks/time_lectures.py
    --annotate), and the measured lecture scale keeps its budget: 5 minutes a lecture, a minute a cell or move."""
    spec = importlib.util.spec_from_file_location("time_lectures", ROOT / "maintainers" / "benchmarks" / "time_lectures.py")
    time_lectures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(time_lectures)
    measured = json.loads((ROOT / "results" / "lecture_times.json").read_text())
    for path in sorted(ROOT.glob("lectures/*.ipynb")):
        entries = [e for e in measured.values() if e["lecture"] == path.stem and e["scale"] == "lecture"]
        assert entries, f"{path.name}: no lecture-scale measurement"
        for entry in entries:
            assert not entry["errors"], f"{path.name}: cells failed while measured: {entry['errors']}"
            assert entry["top_to_bottom_s"] <= time_lectures.LECTURE_BUDGET_S, path.name
            slowest = max([entry["slowest_cell"]["seconds"]] + [m["seconds"] for m in entry["moves"]])
            assert slowest <= time_lectures.CELL_BUDGET_S, path.name
            assert entry["moves"], f"{path.name}: measured without its panel moves"
        first = json.loads(path.read_text())["cells"][0]
        note = [line for line in "".join(first["source"]).splitlines() if line.startswith(time_lectures.RUN_TIME_MARK)]
        assert len(note) == 1, f"{path.name}: its first cell should state its run time once"
        lecture = next((e for e in entries if e["machine"] in note[0]), None)
        assert lecture is not None, f"{path.name}: the run time it states names no measured machine"
        assert time_lectures.seconds_in_words(lecture["top_to_bottom_s"]) in note[0], path.name


def course_lib_imports() -> dict[str, set[str]]:
    """Each course_lib module's name → the course_lib modules it imports (at any depth of its code)."""
    modules = {}
    for path in sorted((ROOT / "course_lib").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from course_lib.grading import budget` imports the module budget, not the package's __init__
                targets = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                           for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            imported |= {target for target in targets if target in modules and target != name}
        graph[name] = imported
    return graph


def test_the_top_level_holds_the_course_and_each_topic_one_folder():
    """Maintainers' scripts live in maintainers/, no package has its experiments beside it, and the import graph of
    course_lib has no cycle and no upward arrow (a package's module never imports its own package's __init__, and
    only experiments import experiments)."""
    top_scripts = sorted(path.name for path in ROOT.glob("*.py"))
    assert top_scripts == ["conftest.py", "course.py", "nbgrader_config.py"]
    packages = {path.parent.name for path in (ROOT / "course_lib").glob("*/__init__.py")}
    beside = [path.name for path in (ROOT / "course_lib").glob("*_experiments.py")]
    assert beside == [] and {"compression", "visualization", "ginfty"} <= packages
    graph = course_lib_imports()
    for name, imported in graph.items():
        package = name.rsplit(".", 1)[0]
        assert package not in imported or package == "course_lib", f"{name} imports its own package {package}"
        if not name.endswith(".experiments"):
            assert not any(target.endswith(".experiments") for target in imported), f"{name} imports experiments"
    visiting, done = [], set()

    def visit(name):
        assert name not in visiting, f"import cycle: {' → '.join(visiting[visiting.index(name):] + [name])}"
        if name in done:
            return
        visiting.append(name)
        for target in graph[name]:
            visit(target)
        visiting.pop()
        done.add(name)

    for name in graph:
        visit(name)
