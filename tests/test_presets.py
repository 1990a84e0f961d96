"""QMLE presets, the bang-off-bang share of the uniform proposal, bf16 by capability, and the
device the networks are on."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from tianshou.data import Collector
from tianshou.env import DummyVectorEnv

from tests.conftest import load_script, make_qmle
from tianshou_qmle import QMLEPolicy, utils
from tianshou_qmle.algorithm import qmle as qmle_module
from tianshou_qmle.data.buffer import ARGMAX_PRIOR_KEY, make_replay_buffer
from tianshou_qmle.experiment import presets
from tianshou_qmle.experiment.qmle_factory import build_qmle_agent, qmle_config
from tianshou_qmle.net.critic import AUTO_BF16_MIN_CANDIDATES
from tianshou_qmle.net.qmle_net import build_qmle_network
from tianshou_qmle.search.proposals import draw_candidates

BOX = gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
OBS = gym.spaces.Box(-np.inf, np.inf, shape=(5,), dtype=np.float32)


def example_args(*argv: str):
    return load_script("examples/dmc_qmle.py").build_parser().parse_args(list(argv))


def test_paper_preset_is_table_1_flag_by_flag():
    args = example_args("--preset", "paper")
    table1 = {"m_target": 100, "m_greedy": 1000, "ratios": (0.9, 0.01, 0.09), "delta_std": 0.05,
              "hidden": 128, "lr": 5e-4, "gamma": 0.99, "n_step": 1, "batch_size": 256,
              "update_every": 10, "target_update_env_steps": 2000, "buffer_size": 1_000_000,
              "uniform_replay": False, "alpha": 0.6, "beta": 0.2, "eps": 0.1, "uniform_grid_share": 0.0}
    assert {k: getattr(args, k) for k in table1} == table1
    assert set(presets.PAPER.values) == set(presets.EFFICIENT.values)  # every preset sets every key


def test_flags_given_override_the_preset_wherever_they_stand():
    efficient = presets.EFFICIENT.values
    args = example_args("--m-target", "7", "--preset", "efficient")
    assert args.m_target == 7 and args.update_every == efficient["update_every"]
    assert example_args("--preset", "efficient").m_target == efficient["m_target"]
    # a later parse with another preset resets every preset value
    assert example_args("--preset", "paper").update_every == 10
    assert example_args().preset == presets.DEFAULT_QMLE_PRESET


def test_the_efficient_presets_compiled_scoring_can_be_switched_off():
    assert example_args("--preset", "efficient").compile_scoring is True
    assert example_args("--preset", "efficient", "--no-compile-scoring").compile_scoring is False
    assert example_args("--compile-scoring", "--preset", "paper").compile_scoring is True


def test_help_shows_the_defaults_of_the_preset_given(capsys):
    with pytest.raises(SystemExit):
        example_args("--preset", "efficient", "--help")
    text = capsys.readouterr().out
    assert f"(default: {presets.EFFICIENT.values['m_greedy']})" in text and "efficient: ours" in text


def test_unknown_preset_is_refused_with_the_choices(capsys):
    with pytest.raises(SystemExit):
        example_args("--preset", "fast")
    assert "invalid choice: 'fast'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="preset must be one of paper, efficient, got 'fast'"):
        qmle_config("fast")


def test_python_api_builds_the_preset_with_overrides():
    env = gym.make("Pendulum-v1")
    algorithm, buffer, schedule = build_qmle_agent(env, "efficient", seed=3, m_target=9)
    values = presets.EFFICIENT.values
    assert algorithm.m_target == 9 and algorithm.policy.m_greedy == values["m_greedy"]
    assert algorithm.n_step_return_horizon == values["n_step"]
    assert schedule.env_steps_per_collect == values["update_every"]
    assert algorithm.target_update_freq == values["target_update_env_steps"] // values["update_every"]
    assert buffer.maxsize == values["buffer_size"]
    with pytest.raises(ValueError, match="no QMLE setting named m_targt"):
        qmle_config("paper", m_targt=3)


def test_harness_entries_use_the_presets_of_the_example():
    from benchmarks.harness.algorithms import entry_for

    env = gym.make("Pendulum-v1")
    for name, preset in (("qmle", presets.PAPER), ("qmle-efficient", presets.EFFICIENT)):
        agent = entry_for(name).build(env=env, seed=0, device="cpu", buffer_size=5000)
        for key, value in preset.values.items():
            expected = min(value, 5000) if key == "buffer_size" else value
            assert agent.hyperparameters[key] == expected, (name, key)
    variant = entry_for("qmle-efficient+m-target=11+uniform-grid-share=0.5")
    agent = variant.build(env=env, seed=0, device="cpu", buffer_size=5000)
    assert agent.algorithm.m_target == 11 and agent.algorithm.policy.uniform_grid_share == 0.5
    assert agent.algorithm.policy.m_greedy == presets.EFFICIENT.values["m_greedy"]
    for bad, message in (("qmle+m-targt=3", "no flag --m-targt"), ("td3+lr=1", "unknown algorithm"),
                         ("qmle+m-target=x", "expected an integer ≥ 1")):
        with pytest.raises(ValueError, match=message):
            entry_for(bad)


def test_a_variant_builds_the_same_networks_as_its_preset_with_the_same_flags():
    from benchmarks.harness.algorithms import entry_for

    env = gym.make("Pendulum-v1")
    torch.manual_seed(0)
    plain = entry_for("qmle-efficient").build(env=env, seed=0, device="cpu", buffer_size=100)
    torch.manual_seed(0)
    same = entry_for("qmle-efficient+m-target=20").build(env=env, seed=0, device="cpu", buffer_size=100)
    for a, b in zip(plain.algorithm.state_dict().values(), same.algorithm.state_dict().values(), strict=True):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b)


# ---------------------------------------------------------------------------------------------
# the bang-off-bang share of the uniform proposal


def test_grid_share_puts_that_share_of_uniform_samples_on_the_grid():
    torch.manual_seed(0)
    cands = draw_candidates(torch.zeros(64, 8), [], (10,), 3, grid_share=0.5)
    on_grid = torch.isin(cands, torch.tensor([-1.0, 0.0, 1.0])).all(dim=-1)
    assert on_grid.shape == (64, 10)
    assert torch.all(on_grid[:, 5:]) and not torch.any(on_grid[:, :5])  # box first, then the grid
    corners = cands[:, 5:].reshape(-1, 3)
    assert set(torch.unique(corners).tolist()) == {-1.0, 0.0, 1.0}
    # none by default (the paper)
    assert not draw_candidates(torch.zeros(64, 8), [], (10,), 3).abs().eq(1.0).any()


def test_grid_share_reaches_the_policy_and_the_target_search():
    model = build_qmle_network(obs_dim=5, action_space=BOX)
    policy = QMLEPolicy(model=model, action_space=BOX, m_greedy=40, uniform_grid_share=1.0,
                        proposal_ratios=(1.0, 0.0, 0.0))
    actions = policy.greedy_actions(torch.randn(16, 5))
    assert torch.isin(actions, torch.tensor([-1.0, 0.0, 1.0])).all()
    # the target search: every refined arg max is a grid point, or the stored prior it kept
    torch.manual_seed(0)
    np.random.seed(0)
    algo = make_qmle(obs_dim=3, act_dim=1, ratios=(1.0, 0.0, 0.0), m_target=8)
    algo.policy.uniform_grid_share = 1.0
    buf = make_replay_buffer(size=200, num_envs=1, prioritized=False, seed=0)
    envs = DummyVectorEnv([lambda: gym.make("Pendulum-v1")])
    collector = Collector(algo, envs, buf, exploration_noise=True)
    collector.reset()
    collector.collect(n_step=100, random=True)  # continuous priors, never on the grid
    before = buf._meta[ARGMAX_PRIOR_KEY].copy()
    batch, idx = buf.sample(32)
    algo._preprocess_batch(batch, buf, idx)
    _, refined, _ = algo._argmax_targets
    on_grid = torch.isin(refined, torch.tensor([-1.0, 0.0, 1.0])).all(dim=-1)
    kept = (refined == torch.as_tensor(before[idx])).all(dim=-1)
    assert torch.all(on_grid | kept) and on_grid.any()


@pytest.mark.parametrize("bad", [-0.1, 1.5, "half", True])
def test_grid_share_outside_zero_one_is_refused(bad):
    model = build_qmle_network(obs_dim=5, action_space=BOX)
    with pytest.raises(ValueError, match="uniform_grid_share must be a number in"):
        QMLEPolicy(model=model, action_space=BOX, uniform_grid_share=bad)


def test_grid_share_is_refused_for_finite_spaces():
    space = gym.spaces.MultiDiscrete([3, 3])
    model = build_qmle_network(obs_dim=5, action_space=space)
    with pytest.raises(ValueError, match="uniform_grid_share applies to continuous Box"):
        QMLEPolicy(model=model, action_space=space, uniform_grid_share=0.5)


# ---------------------------------------------------------------------------------------------
# scoring precision by capability


def test_auto_scoring_is_bf16_exactly_where_the_cpu_has_native_bf16(monkeypatch):
    model = build_qmle_network(obs_dim=5, action_space=BOX)
    policy = QMLEPolicy(model=model, action_space=BOX)
    assert policy.scoring_dtype_setting == "auto"
    for flags, expected in (({"avx512f", "avx512_bf16"}, torch.bfloat16), ({"amx_bf16"}, torch.bfloat16),
                            ({"avx512f", "avx2"}, None), (set(), None)):
        monkeypatch.setattr(utils, "cpu_flags", lambda flags=flags: frozenset(flags))
        assert policy.scoring_dtype == expected
    explicit = QMLEPolicy(model=model, action_space=BOX, scoring_dtype=torch.float32)
    assert explicit.scoring_dtype == torch.float32


def test_auto_scoring_keeps_small_searches_in_float32(monkeypatch):
    monkeypatch.setattr(utils, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    model = build_qmle_network(obs_dim=5, action_space=BOX)
    auto = QMLEPolicy(model=model, action_space=BOX, m_greedy=200)
    assert auto.scoring_dtype_for(AUTO_BF16_MIN_CANDIDATES - 1) is None
    assert auto.scoring_dtype_for(AUTO_BF16_MIN_CANDIDATES) == torch.bfloat16
    forced = QMLEPolicy(model=model, action_space=BOX, scoring_dtype=torch.bfloat16)
    assert forced.scoring_dtype_for(1) == torch.bfloat16
    calls: list[torch.dtype | None] = []
    real = qmle_module.approximate_argmax

    def recording(*args, scoring_dtype=None, **kwargs):
        calls.append(scoring_dtype)
        return real(*args, scoring_dtype=scoring_dtype, **kwargs)

    monkeypatch.setattr(qmle_module, "approximate_argmax", recording)
    auto.greedy_actions(np.zeros((1, 5), np.float32))  # 1 × 200: float32
    auto.greedy_actions(np.zeros((10, 5), np.float32))  # 10 × 200: bf16
    assert calls == [None, torch.bfloat16]
    with pytest.raises(ValueError, match="scoring_dtype must be 'auto'"):
        QMLEPolicy(model=model, action_space=BOX, scoring_dtype=torch.float64)


def test_cpu_flags_come_from_proc_cpuinfo():
    flags = utils.cpu_flags()
    assert isinstance(flags, frozenset)
    if flags:  # Linux
        assert "fpu" in flags or "avx" in " ".join(flags) or "sse2" in flags


# ---------------------------------------------------------------------------------------------
# the device is read from the parameters


def test_model_moved_after_building_reports_and_uses_its_new_device():
    model = build_qmle_network(obs_dim=5, action_space=BOX, device="cpu")
    model.to("meta")
    assert model.device == torch.device("meta") == model.critic.device
    features = model.critic.features(np.zeros((4, 5), dtype=np.float32))  # no device mismatch
    assert features.device == torch.device("meta") and features.shape == (4, model.critic.feature_dim)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_acting_after_moving_the_model_to_cuda():
    model = build_qmle_network(obs_dim=5, action_space=BOX, device="cpu").to("cuda")
    policy = QMLEPolicy(model=model, action_space=BOX, m_greedy=16)
    actions = policy.greedy_actions(np.zeros((4, 5), dtype=np.float32))
    assert actions.device.type == "cuda" and actions.shape == (4, 3)


def test_compiled_scoring_falls_back_to_eager_with_one_warning_when_compiling_fails(monkeypatch):
    from tianshou_qmle.net import critic as critic_module

    def broken():
        def fail(*args):
            raise RuntimeError("no C++ compiler found")
        return fail

    monkeypatch.setattr(critic_module, "compiled_score_block", broken)
    monkeypatch.setattr(critic_module, "_compile_failure", None)
    model = build_qmle_network(obs_dim=5, action_space=BOX)
    model.critic.compile_scoring = True
    features = model.critic.features(torch.randn(64, 5))
    actions = torch.rand(64, 16, 3) * 2 - 1
    with pytest.warns(RuntimeWarning, match="could not build the scoring kernel.*no C\\+\\+ compiler"):
        first = model.critic.score_candidates(features, actions)
    second = model.critic.score_candidates(features, actions)  # no second warning, eager from here on
    model.critic.compile_scoring = False
    torch.testing.assert_close(first, model.critic.score_candidates(features, actions))
    torch.testing.assert_close(second, first)
