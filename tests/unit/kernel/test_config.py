from __future__ import annotations

from pathlib import Path

import pytest

from appliance.cli import main
from kernel.config import AppConfig, ConfigError, load_config

REPO = Path(__file__).resolve().parents[3]


def test_example_config_is_valid_and_matches_defaults() -> None:
    loaded = load_config(REPO / "config.example.toml")
    defaults = AppConfig().resolve_paths(REPO)
    assert loaded == defaults


def test_relative_models_root_is_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('[models]\nroot = "m"\n')
    assert load_config(tmp_path / "c.toml").models.root == tmp_path / "m"


def test_every_error_is_reported_with_its_key_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[server]\nport = 70000\nhots = "x"\n[tiers.small]\nmax_model_len = "big"\n'
                    '[limits]\ndefault_max_tokens = 5000\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = info.value.problems
    assert any(p.startswith("server.port:") for p in problems)
    assert "server.hots: unknown key" in problems
    assert any(p.startswith("tiers.small.max_model_len:") for p in problems)
    assert any(p.startswith("limits:") and "max_tokens_limit" in p for p in problems)


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "x.toml").write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "x.toml")
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "missing.toml")


def test_cli_validate_names_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('profile = "tpu"\n')
    assert main(["config", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: profile:" in err
    assert main(["config", "validate", str(REPO / "config.example.toml")]) == 0


def test_a_partial_tier_table_keeps_that_tiers_defaults(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text("[tiers.small]\nmax_model_len = 1024\n[tiers.large]\n"
                                     "max_model_len = 1024\n")
    config = load_config(tmp_path / "c.toml")
    assert config.tiers["small"].enable_lora and config.tiers["small"].max_num_seqs == 64
    assert not config.tiers["large"].enable_lora and config.tiers["large"].max_num_seqs == 32


def test_tiers_are_a_mapping_with_the_shipped_two_by_default(tmp_path: Path) -> None:
    assert list(AppConfig().tiers) == ["small", "large"]
    path = tmp_path / "c.toml"
    path.write_text("[tiers.kb]\nmax_num_seqs = 8\n[tiers.large]\nenabled = false\n"
                    "[tiers.small]\nmax_model_len = 1024\n")
    config = load_config(path)
    assert config.tier_names == ("small", "kb")
    assert config.tiers["small"].enable_lora and config.tiers["small"].max_model_len == 1024
    assert not config.tiers["kb"].enable_lora and config.tiers["kb"].max_num_seqs == 8


@pytest.mark.parametrize(("text", "engines"), [
    ("", {"small": "small", "large": "small"}),
    ('[tiers.large]\nmodel = "/opt/big-model"\n', {"small": "small", "large": "large"}),
    ('[tiers.small]\nmodel = "/opt/my-small"\n', {"small": "small", "large": "large"}),
    ('[tiers.large]\nshare_engine_with = ""\n', {"small": "small", "large": "large"}),
    ('[tiers.small]\nenabled = false\n[lora]\ntier = "large"\n', {"large": "large"}),
    ('[tiers.kb]\nshare_engine_with = "small"\n',
     {"small": "small", "large": "small", "kb": "small"}),
])
def test_the_shipped_large_tier_shares_smalls_engine_while_both_serve_one_model(
        tmp_path: Path, text: str, engines: dict[str, str]) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    config = load_config(path)
    assert {name: config.engine_tier(name) for name in config.tier_names} == engines
    assert config.engine_tiers == tuple(sorted(set(engines.values()), key=list(engines).index))


@pytest.mark.parametrize(("text", "router_engine"), [
    # The shipped small tier's engine is in the router's process wherever that is allowed.
    ("", "small"),
    ('[tiers.small]\nplacement = "router"\n', "small"),
    ('[tiers.small]\nplacement = "replica"\n', None),
    # A guest tier's placement is its engine's: large runs where small's engine does.
    ('[tiers.large]\nplacement = "router"\n', "small"),
    ('[tiers.large]\nshare_engine_with = ""\nplacement = "router"\n', "large"),
    ('[tiers.kb]\nplacement = "router"\n', "kb"),
    # Where the router placement is not allowed, the default is a replica, not an error.
    ("[tiers.small]\nnum_replicas = 2\n", None),
    ("[tiers.small]\nresources = {gpu_node = 0.01}\n", None),
    ("[tiers.small]\nnum_gpus = 1\n", None),
    ('profile = "gpu"\n', None),
])
def test_one_engine_tier_may_run_in_the_routers_process(
        tmp_path: Path, text: str, router_engine: str | None) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    assert load_config(path).router_engine == router_engine


@pytest.mark.parametrize(("text", "problem"), [
    ('[tiers.large]\nshare_engine_with = "huge"\n',
     "tiers.large.share_engine_with: 'huge' is not another configured tier"),
    ('[tiers.large]\nshare_engine_with = "large"\n', "'large' is not another configured"),
    ('[tiers.large]\nmodel = "/opt/big"\nshare_engine_with = "small"\n',
     "only tiers of one model share an engine"),
    ('[tiers.kb]\nshare_engine_with = "large"\n', "'large' itself runs on 'small'"),
    ('[tiers.small]\nshare_engine_with = "large"\n[tiers.large]\nshare_engine_with = ""\n',
     "tiers.small.share_engine_with: adapters load into this tier"),
    ("[tiers.Big]\n", "tiers.Big: a tier name"),
    ("[tiers.auto]\n", "tiers.auto: a tier name"),
    ("[lora]\ntier = \"kb\"\n", "lora.tier: 'kb' is not a configured tier"),
    ("[tiers.small]\nenabled = false\n[tiers.large]\nenabled = false\n", "at least one"),
    ("[tiers.kb]\nmax_num_seqs = 0\n", "tiers.kb.max_num_seqs"),
    ('[tiers.small]\nplacement = "router"\n[tiers.kb]\nplacement = "router"\n',
     "tiers.kb.placement: only one engine runs in the router's process, and 'small'"),
    ('[tiers.small]\nplacement = "router"\nnum_replicas = 2\n',
     "tiers.small.placement: `router` runs one engine in the one router replica"),
    ('[tiers.small]\nplacement = "router"\nresources = {gpu_node = 0.01}\n',
     "tiers.small.placement: `router` places the engine where the router is"),
    ('[tiers.small]\nplacement = "inside"\n', "tiers.small.placement"),
])
def test_bad_tier_tables_are_named(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert any(problem in p for p in err.value.problems), err.value.problems


@pytest.mark.parametrize(("text", "problem"), [
    ('[store]\nbackend = "postgresql"\n', "store.postgresql_dsn: backend \"postgresql\" needs"),
    ('[store]\nbackend = "postgresql"\npostgresql_dsn = "host=db user=x password=hunter2"\n',
     "store.postgresql_dsn: holds a password"),
    ('[store]\nbackend = "mysql"\n', "store.backend:"),
])
def test_a_postgresql_store_needs_a_dsn_without_its_password(tmp_path: Path, text: str,
                                                             problem: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert any(problem in p for p in err.value.problems), err.value.problems
    assert not any("hunter2" in p for p in err.value.problems)  # never echoed


def test_a_suggest_reply_without_its_entries_placeholder_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[knowledge]\nsuggest_zh = "以下信息供参考"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert any(p.startswith("knowledge.suggest_zh:") and "{entries}" in p
               for p in err.value.problems), err.value.problems
