"""The simulator's config file: the example loads, bad files say where and what, flags apply on top."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetplane.sim.config import ConfigError, default_config, load_config
from fleetplane.sim.server import effective_config

EXAMPLE = """\
seed: 42
models:
  gpt-sim:
    output_tokens: {mean: 120, stddev: 40, min: 10, max: 1000}
    ttft_ms: {median: 300, p95: 900}
    tps: {mean: 70, jitter: 10}
    limits: {rpm: 500, tpm: 200000}
    faults: {error_rate: 0.01, error_status: 503}
  claude-sim:
    owned_by: anthropic
    limits: {rpm: 50, input_tpm: 40000, output_tpm: 8000}
    faults: {overloaded_rate: 0.02}
  embed-sim:
    kind: embedding
    dimensions: 256
outages:
  - {model: gpt-sim, start_s: 60, duration_s: 30, status: 503}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sim.yaml"
    path.write_text(text)
    return path


def test_example_config_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, EXAMPLE))
    assert config.seed == 42
    assert list(config.models) == ["gpt-sim", "claude-sim", "embed-sim"]
    assert config.models["gpt-sim"].limits.rpm == 500
    assert config.models["claude-sim"].limits.output_tpm == 8000
    assert config.models["embed-sim"].kind == "embedding"
    assert config.outages[0].duration_s == 30


def test_the_example_in_the_docs_loads(tmp_path: Path) -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "sim.md"
    block = docs.read_text().split("```yaml\n", 1)[1].split("```", 1)[0]
    config = load_config(write(tmp_path, block))
    assert len(config.models) >= 3
    assert config.outages


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "models:\n  m:\n    ttft_ms: {median: fast}\n",
            "sim.yaml:3: models.m.ttft_ms.median: Input should be a valid number, unable to parse string "
            "as a "
            "number (got 'fast')",
        ),
        (
            "models:\n  m:\n    tps:\n      mean: -1\n",
            "sim.yaml:4: models.m.tps.mean: Input should be greater than or equal to 0 (got -1)",
        ),
        (
            "models:\n  m:\n    kind: image\n",
            "sim.yaml:3: models.m.kind: Input should be 'chat' or 'embedding' (got 'image')",
        ),
        (
            "models:\n  m:\n    colour: red\n",
            "sim.yaml:3: models.m.colour: Extra inputs are not permitted (got 'red')",
        ),
        (
            "models:\n  m:\n    output_tokens: {min: 10, max: 5}\n",
            "sim.yaml:3: models.m.output_tokens: min (10) must not exceed max (5)",
        ),
        (
            "models:\n  m: {}\noutages:\n  - {model: n, duration_s: 5}\n",
            "sim.yaml:1: (top level): outage names model 'n', which is not under `models`",
        ),
        (
            "outages:\n  - {start_s: 5}\n",
            "sim.yaml:2: outages.0.duration_s: Field required",
        ),
        ("models: [\n", "sim.yaml:2:1: not valid YAML: expected the node content, but found '<stream end>'"),
        ("- a\n- b\n", "sim.yaml:1: expected a mapping at the top level (seed, models, outages, ...)"),
    ],
)
def test_bad_config_files_name_file_line_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{tmp_path}/{message}"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")
    assert (
        str(caught.value) == f"{tmp_path}/nope.yaml: cannot read the config file: No such file or directory"
    )


def test_empty_file_is_an_empty_config(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")).models == {}


def test_default_config_serves_the_built_in_models() -> None:
    config = default_config()
    assert list(config.models) == ["sim-large", "sim-medium", "sim-small", "sim-claude", "sim-embed"]
    assert config.models["sim-embed"].kind == "embedding"


def test_flags_apply_over_the_file(tmp_path: Path) -> None:
    config = effective_config(
        write(tmp_path, EXAMPLE),
        seed=9,
        require_key="k",
        models=["extra", "text-embed-x", "gpt-sim"],
        instant=True,
    )
    assert (config.seed, config.require_key, config.instant) == (9, "k", True)
    assert config.models["extra"].kind == "chat"
    assert config.models["text-embed-x"].kind == "embedding"
    # Naming a configured model keeps its configuration.
    assert config.models["gpt-sim"].limits.rpm == 500
    assert effective_config().models.keys() == default_config().models.keys()
