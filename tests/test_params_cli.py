"""A corpus of malformed params files through both command lines: `python -m flows.runtime.check FILE` and
a stage's entry point (`flows.runtime.cli.main`). Each exits 2 within 2 s, names the key path and the
bad value, never calls the stage's flow, and leaves an existing workspace byte for byte as it was."""

import subprocess
import sys
import time
from pathlib import Path

import prefect
import pytest

from flows.runtime import cli
from flows.runtime.check import check
from schema.params_file import load_params

pytestmark = pytest.mark.slow  # runs flows, servers or DVC: out of the quick tier

PROJECT = Path(__file__).resolve().parents[1]

VALID = """\
data:
  dataset: digits
  test_fraction: 0.2
features:
  kind: classifier
  num_features: 16
  steps: 60
train:
  configurations:
    edm:
      noise_schedule: edm
      parameterization: edm
      weighting: edm
      network: {name: unet, options: {channels: 8, channel_mult: [1, 2], attention: false}}
      steps: 30
      batch_size: 32
      ema_decay: 0.9
      checkpoint_every: 10
    vp-eps:
      noise_schedule: vp_cosine
      parameterization: eps
      noise_sampling: uniform
      weighting: simple
      steps: 30
      ema_decay: 0.9
evaluate:
  solvers:
    - {name: euler}
    - {name: heun}
  step_schedules:
    - {name: karras, options: {rho: 7}}
  nfe: [4, 8]
  reference_nfe: 7
  num_samples: 64
mlflow:
  experiment: cli
"""


def variant(*replacements):
    """VALID with each (old, new) replaced; each `old` must occur exactly once."""
    text = VALID
    for old, new in replacements:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


# name: (file text, fragments the message must hold: the key path and the bad value, where there is one)
MALFORMED = {
    "empty file": ("", ["the file is empty"]),
    "only a comment": ("# a study, some day\n", ["the file is empty"]),
    "yaml syntax error": (variant(("nfe: [4, 8]", "nfe: [4, 8")), ["not valid YAML at line", "column"]),
    "tab indentation": (variant(("  dataset: digits", "\tdataset: digits")), ["not valid YAML at line 2", "'\\t'"]),
    "a list, not a mapping": ("- data\n- train\n", ["expected a mapping of sections", "got list"]),
    "repeated key": (
        variant(("      steps: 30\n      batch_size", "      steps: 30\n      steps: 40\n      batch_size")),
        ["repeated key 'steps'", "line 16"],
    ),
    "repeated configuration name": (variant(("    vp-eps:", "    edm:")), ["repeated key 'edm'", "line 19"]),
    "unknown section": (variant(("mlflow:", "mlfow:")), ["mlfow: unknown key", "did you mean 'mlflow'"]),
    "unknown data key": (
        variant(("  test_fraction: 0.2", "  test_fractoin: 0.2")),
        ["data.test_fractoin: unknown key", "did you mean 'test_fraction'"],
    ),
    "unknown configuration key": (
        variant(("      batch_size: 32", "      batchsize: 32")),
        ["train.configurations.edm.batchsize: unknown key", "did you mean 'batch_size'"],
    ),
    "unknown solver-entry key": (
        variant(("{name: heun}", "{name: heun, option: {s_churn: 1}}")),
        ["evaluate.solvers.1.option: unknown key", "did you mean 'options'"],
    ),
    "missing section": (VALID[: VALID.index("evaluate:")], ["evaluate: Field required"]),
    "steps not a number": (
        variant(("      steps: 30\n      batch_size", "      steps: many\n      batch_size")),
        ["train.configurations.edm.steps", "(got 'many')"],
    ),
    "fractional batch size": (variant(("batch_size: 32", "batch_size: 32.5")), ["train.configurations.edm.batch_size", "(got 32.5)"]),
    "budget not a number": (variant(("nfe: [4, 8]", "nfe: [4, eight]")), ["evaluate.nfe.1", "(got 'eight')"]),
    "negative steps": (
        variant(("      steps: 30\n      ema_decay", "      steps: -30\n      ema_decay")),
        ["train.configurations.vp-eps.steps", "greater than 0", "(got -30)"],
    ),
    "test fraction of 1": (variant(("test_fraction: 0.2", "test_fraction: 1")), ["data.test_fraction", "less than 1", "(got 1)"]),
    "noise schedule typo": (
        variant(("schedule: vp_cosine", "schedule: vp_cosin")),
        ["train.configurations.vp-eps.noise_schedule", "(got 'vp_cosin')", "did you mean 'vp_cosine'"],
    ),
    "parameterization typo": (
        variant(("parameterization: eps", "parameterization: epsilon")),
        ["train.configurations.vp-eps.parameterization", "(got 'epsilon')", "did you mean 'eps'"],
    ),
    "weighting typo": (
        variant(("weighting: simple", "weighting: simpel")),
        ["train.configurations.vp-eps.weighting", "(got 'simpel')", "did you mean 'simple'"],
    ),
    "solver typo": (variant(("{name: heun}", "{name: huen}")), ["evaluate.solvers.1.name", "(got 'huen')", "did you mean 'heun'"]),
    "step schedule typo": (
        variant(("{name: karras,", "{name: karas,")),
        ["evaluate.step_schedules.0.name", "(got 'karas')", "did you mean 'karras'"],
    ),
    "index conditioning on a continuous schedule": (
        variant(("      weighting: edm", "      weighting: edm\n      conditioning: index")),
        ["train.configurations.edm.conditioning", "needs a discrete schedule", "(got 'index')"],
    ),
    "t uniform on EDM's schedule, where t is sigma": (
        variant(("      weighting: edm", "      weighting: edm\n      noise_sampling: uniform")),
        ["train.configurations.edm.noise_sampling", "no paper trains noise_schedule 'edm' with t uniform", "vp_cosine", "(got 'uniform')"],
    ),
    "EMA ramp-up without a half-life": (
        variant(("      ema_decay: 0.9\n      checkpoint", "      ema_decay: 0.9\n      ema_rampup: 0.05\n      checkpoint")),
        ["train.configurations.edm.ema_rampup", "ramps up ema_half_life_images", "(got 0.05)"],
    ),
    "unknown network option": (
        variant(("{channels: 8,", "{width: 8,")),
        ["train.configurations.edm.network.options", "'width'", "allowed: ['attention'"],
    ),
    "network option of the wrong type": (
        variant(("attention: false", "attention: no-thanks")),
        ["train.configurations.edm.network.options.attention", "true or false", "(got 'no-thanks')"],
    ),
    "unknown solver option": (
        variant(("{name: heun}", "{name: heun, options: {eta: 1}}")),
        ["evaluate.solvers.1.options", "'heun' does not accept option(s) ['eta']", "s_churn", "(got {'eta': 1})"],
    ),
    "solver option out of range": (
        variant(("{name: euler}", "{name: ddim, options: {eta: 2}}")),
        ["evaluate.solvers.0.options.eta", "0 <= eta <= 1", "(got 2)"],
    ),
    "solver option not among the allowed": (
        variant(("{name: euler}", "{name: unipc, options: {variant: bh3}}")),
        ["evaluate.solvers.0.options.variant", "'bh1', 'bh2'", "(got 'bh3')"],
    ),
    "unknown step-schedule option": (
        variant(("options: {rho: 7}", "options: {rho: 7, spacing: trailing}")),
        ["evaluate.step_schedules.0.options", "['spacing']", "'rho'"],
    ),
    "step-schedule option of the wrong type": (
        variant(("options: {rho: 7}", "options: {rho: seven}")),
        ["evaluate.step_schedules.0.options.rho", "a positive number", "(got 'seven')"],
    ),
    "budget below a solver's need": (
        variant(("{name: euler}", "{name: midpoint}"), ("nfe: [4, 8]", "nfe: [1, 8]")),
        ["evaluate.nfe.0", "'midpoint' needs (2)", "(got 1)"],
    ),
    "zero budget": (variant(("nfe: [4, 8]", "nfe: [4, 0]")), ["evaluate.nfe.1", "greater than 0", "(got 0)"]),
    "repeated budget": (variant(("nfe: [4, 8]", "nfe: [4, 8, 4]")), ["evaluate.nfe.2", "each budget once", "(got 4)"]),
    "duplicate solver entry": (
        variant(("    - {name: heun}", "    - {name: heun}\n    - {name: euler}")),
        ["evaluate.solvers.2", "'euler'", "twice"],
    ),
    "negative sigma_min": (
        variant(("options: {rho: 7}", "options: {rho: 7, sigma_min: -0.1}")),
        ["evaluate.step_schedules.0.options.sigma_min", "positive", "(got -0.1)"],
    ),
    "sigma range reversed": (
        variant(("options: {rho: 7}", "options: {sigma_min: 10, sigma_max: 1}")),
        ["evaluate.step_schedules.0.options", "sigma_min must be below sigma_max", "(got {'sigma_min': 10, 'sigma_max': 1})"],
    ),
    "sigma_max beyond a model's range": (
        variant(("options: {rho: 7}", "options: {sigma_max: 500}")),
        ["evaluate.step_schedules.0.options", "outside the model's range", "'edm'", "(got {'sigma_max': 500})"],
    ),
    "noise-schedule sigma range reversed": (
        variant(("      noise_schedule: edm", "      noise_schedule: {name: edm, options: {sigma_min: 5, sigma_max: 1}}")),
        ["train.configurations.edm.noise_schedule.options", "sigma_min must be below sigma_max"],
    ),
    "a 'name' key inside a configuration": (
        variant(("    vp-eps:\n", "    vp-eps:\n      name: vp\n")),
        ["train.configurations.vp-eps.name", "its key under train.configurations is its name", "(got 'vp')"],
    ),
    "names differing only in case": (variant(("    vp-eps:", "    EDM:")), ["train.configurations.EDM", "only in case", "(got 'EDM')"]),
    "two EMA settings": (
        variant(("      ema_decay: 0.9\n      checkpoint", "      ema_decay: 0.9\n      ema_half_life_images: 1000\n      checkpoint")),
        ["train.configurations.edm", "exactly one of ema_decay or ema_half_life_images", "'ema_half_life_images': 1000"],
    ),
    "ablation: unknown parent": (
        variant(("    vp-eps:\n", "    vp-eps:\n      parent: edn\n      varies: noise_schedule\n")),
        ["train.configurations.vp-eps.parent", "names parent 'edn', which is not a configuration", "(got 'edn')"],
    ),
    "ablation: parents in a cycle": (
        variant(
            (
                "    vp-eps:\n",
                "    vp-eps:\n      parent: vp-eps2\n      varies: steps\n    vp-eps2:\n      parent: vp-eps\n      varies: lr\n",
            )
        ),
        ["train.configurations.", "parents form a cycle", "allowed: a tree"],
    ),
    "ablation: an undeclared difference": (
        variant(("      parameterization: eps\n", "      parameterization: eps\n      parent: edm\n      varies: parameterization\n")),
        [
            "train.configurations.vp-eps",
            "must differ from its parent 'edm' in exactly ['parameterization']",
            "also changes",
            "noise_schedule",
        ],
    ),
    "ablation: the parent's own entry": (
        variant(
            (
                "      noise_schedule: vp_cosine\n      parameterization: eps\n      noise_sampling: uniform\n"
                "      weighting: simple\n      steps: 30\n      ema_decay: 0.9\n",
                "      parent: edm\n      varies: weighting\n      weighting: edm\n",
            )
        ),
        ["train.configurations.vp-eps", "in exactly ['weighting']", "it has the parent's ['weighting']"],
    ),
    "ablation: varies without a parent": (
        variant(("      noise_schedule: vp_cosine\n", "      noise_schedule: vp_cosine\n      varies: noise_schedule\n")),
        ["train.configurations.vp-eps.varies", "has no parent", "(got ['noise_schedule'])"],
    ),
    "ablation: varies a setting, not an axis": (
        variant(("      noise_schedule: vp_cosine\n", "      noise_schedule: vp_cosine\n      parent: edm\n      varies: lr\n")),
        ["train.configurations.vp-eps.varies.0", "'noise_schedule'", "'steps'", "(got 'lr')"],
    ),
    "unknown grid": (
        variant(("      noise_schedule: vp_cosine\n", "      noise_schedule: vp_cosine\n      grid: smal\n")),
        ["train.configurations.vp-eps.grid", "no grid 'smal'", "(got 'smal')"],
    ),
    "a grid with a key no grid has": (
        variant(("  num_samples: 64\n", "  num_samples: 64\n  grids: {small: {solver: [euler]}}\n")),
        ["evaluate.grids.small", "changes ['solver']", "allowed: keys of a grid"],
    ),
    "a grid with a bad clipping": (
        variant(("  num_samples: 64\n", "  num_samples: 64\n  grids: {small: {clipping: [none, clamp]}}\n")),
        ["evaluate.grids.small.clipping.1.name", "(got 'clamp')", "'clip'"],
    ),
    "a clipping option out of range": (
        variant(("  num_samples: 64\n", "  num_samples: 64\n  clipping: [{name: dynamic_threshold, options: {percentile: 2}}]\n")),
        ["evaluate.clipping.0.options.percentile", "0 < percentile <= 1", "(got 2)"],
    ),
    "more ODE samples than samples": (
        variant(("  num_samples: 64\n", "  num_samples: 64\n  ode_samples: 100\n")),
        ["evaluate.ode_samples", "exceeds num_samples 64", "at most num_samples", "(got 100)"],
    ),
    "a bootstrap of one resample": (
        variant(("  num_samples: 64\n", "  num_samples: 64\n  bootstrap: 1\n")),
        ["evaluate.bootstrap", "greater than or equal to 2", "(got 1)"],
    ),
    "missing data folder": (
        variant(("  dataset: digits", "  dataset: mnist\n  root: data/raw/mnist")),
        ["data.root", "no folder", "data/raw/mnist", "data.download: true", "(got 'data/raw/mnist')"],
    ),
    "data root that is a file": (
        variant(("  dataset: digits", "  dataset: cifar10\n  download: true\n  root: mlflow.db")),
        ["data.root", "is not a folder", "(got 'mlflow.db')"],
    ),
    "missing Inception weights": (
        variant(("kind: classifier", "kind: inception\n  weights_path: data/raw/inception/weights.pth")),
        ["features.weights_path", "no file", "Inception-v3", "(got 'data/raw/inception/weights.pth')"],
    ),
}

WORKSPACE_FILES = {
    "data/prepared/train.pt": b"prepared tensors",
    "checkpoints/edm/step-00000010.pt": b"a checkpoint",
    "results/edm/cells.json": b'[{"solver": "euler"}]',
    "mlflow.db": b"SQLite format 3\x00 some bytes",
}


@pytest.fixture
def prepared(tmp_path, monkeypatch):
    """A workspace with outputs of earlier stages, as the current directory (stages resolve data.root
    and features.weights_path against it)."""
    root = tmp_path / "workspace"
    for name, content in WORKSPACE_FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    monkeypatch.chdir(root)
    return root


def snapshot(root):
    """Every path under `root` with its bytes and modification time (None for folders)."""
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else None for p in root.rglob("*")}


def never_called():
    return prefect.flow(name="never")(lambda **keywords: pytest.fail(f"the flow ran with {keywords}"))


def test_the_corpus_starts_from_a_valid_file(prepared, tmp_path):
    (tmp_path / "params.yaml").write_text(VALID)
    assert set(load_params(tmp_path / "params.yaml").train.configurations) == {"edm", "vp-eps"}


def test_the_corpus_is_large_enough():
    assert len(MALFORMED) >= 25


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_params_file_exits_2_naming_the_problem_and_touches_nothing(case, prepared, tmp_path, capsys):
    text, fragments = MALFORMED[case]
    path = tmp_path / "params.yaml"
    path.write_text(text)
    before = snapshot(prepared)
    never = never_called()
    for command in (
        lambda: check([str(path)]),
        lambda: cli.main(never, per_configuration=True, argv=["--params", str(path), "--configuration", "edm", "--root", str(prepared)]),
        lambda: cli.main(never, argv=["--params", str(path), "--root", str(prepared)]),
    ):
        start = time.perf_counter()
        code = command()
        seconds = time.perf_counter() - start
        output = capsys.readouterr()
        assert code == 2 and seconds < 2.0, (code, seconds)
        assert output.out == "" and output.err.startswith(str(path)), output
        for fragment in fragments:
            assert fragment in output.err, f"{fragment!r} not in {output.err!r}"
    assert snapshot(prepared) == before


@pytest.mark.parametrize("case", ["solver typo", "missing Inception weights"])
def test_the_train_stage_command_exits_2_before_any_work(case, prepared, tmp_path):
    """`python -m flows.train`: the time is Python's imports (torch, Prefect, MLflow: about 8 s on 2
    busy cores); no Prefect flow starts and nothing is written."""
    path = tmp_path / "params.yaml"
    path.write_text(MALFORMED[case][0])
    before = snapshot(prepared)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "flows.train", "--params", str(path), "--configuration", "edm", "--root", str(prepared)],
        cwd=prepared,
        capture_output=True,
        text=True,
        timeout=120,
    )
    seconds = time.perf_counter() - start
    assert done.returncode == 2, done.stderr
    assert seconds < 30, seconds
    assert all(fragment in done.stderr for fragment in MALFORMED[case][1]), done.stderr
    assert snapshot(prepared) == before
