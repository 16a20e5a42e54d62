"""`python -m tools.dvc_deps`: write each dvc.yaml stage's source deps from the files its command
imports (`tasks.compute.provenance.source_files`), keeping its other deps (data, checkpoints) and
every comment; a folder all of whose Python files a stage imports is listed as the folder.
tests/test_provenance.py holds dvc.yaml to this."""

import re

import yaml

from tasks.compute.provenance import PACKAGES, PROJECT, source_files

DVC_FILE = PROJECT / "dvc.yaml"


def python_files(folder):
    """The Python files directly in `folder` (relative to the project)."""
    return {p.relative_to(PROJECT).as_posix() for p in (PROJECT / folder).glob("*.py")}


def listed(files):
    """`files` as deps, sorted: the files of a folder without subpackages listed as the folder when all are there."""
    folders = {f.rpartition("/")[0] for f in files}
    whole = {d for d in folders if not any((PROJECT / d).glob("*/__init__.py")) and python_files(d) <= files and d not in PACKAGES}
    return sorted([f for f in files if f.rpartition("/")[0] not in whole] + list(whole))


def source_deps(stage):
    """The source deps of a stage definition: what its command (`python -m <module>`) imports."""
    return listed(source_files(stage["cmd"].split()[2]))


def rewritten(text):
    """dvc.yaml's text with every stage's source deps made `source_deps`, in place of those it had."""
    stages = yaml.safe_load(text)["stages"]
    lines, out, stage, in_deps = text.splitlines(keepends=True), [], None, False
    for line in lines:
        if match := re.match(r"^  (\S+):\s*$", line):
            stage = match[1] if match[1] in stages else None
        if stage and re.match(r"^    deps:\s*$", line):
            out.append(line)
            out += [f"      - {dep}\n" for dep in source_deps(stages[stage])]
            in_deps = True
            continue
        if in_deps and (dep := re.match(r"^      - (\S+)\s*$", line)):
            if dep[1].split("/")[0] not in PACKAGES:
                out.append(line)
            continue
        in_deps = False
        out.append(line)
    return "".join(out)


if __name__ == "__main__":
    DVC_FILE.write_text(rewritten(DVC_FILE.read_text()))
